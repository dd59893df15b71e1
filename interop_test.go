package stomp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stompout/stomp/reconnect"
)

// Interop tests against real brokers. They run when STOMP_INTEROP=1 (CI
// always sets it; scripts/test.sh starts the brokers); then a broker that
// cannot be reached fails the run. Addresses come from
// STOMP_RABBITMQ_ADDR, STOMP_RABBITMQ_WS and STOMP_ACTIVEMQ_ADDR;
// STOMP_BROKERS, when set, names the brokers to test.

type broker struct {
	name     string
	addr     string
	versions []Version
	// rabbit: RabbitMQ semantics (NACK requeues and redelivers at once;
	// ERROR for unknown destinations). Otherwise ActiveMQ Classic's (NACK
	// sends the message to the dead-letter queue).
	rabbit bool
}

func interopBrokers(t *testing.T) []broker {
	if os.Getenv("STOMP_INTEROP") == "" {
		t.Skip("interop tests skipped: set STOMP_INTEROP=1 (and start the brokers with scripts/brokers.sh up)")
	}
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	all := []Version{V10, V11, V12}
	bs := []broker{
		{"rabbitmq", env("STOMP_RABBITMQ_ADDR", "127.0.0.1:61613"), all, true},
		{"rabbitmq-ws", env("STOMP_RABBITMQ_WS", "ws://127.0.0.1:15674/ws"), all, true},
		{"activemq", env("STOMP_ACTIVEMQ_ADDR", "127.0.0.1:61614"), all, false},
	}
	// STOMP_BROKERS (as scripts/brokers.sh reads it) limits the run to the
	// brokers that were started: "rabbitmq" covers its Web-STOMP too.
	if only := os.Getenv("STOMP_BROKERS"); only != "" {
		names := strings.Fields(only)
		bs = slices.DeleteFunc(bs, func(b broker) bool {
			return !slices.Contains(names, strings.TrimSuffix(b.name, "-ws"))
		})
	}
	return bs
}

func uniqueQueue(t testing.TB) string {
	var b [6]byte
	rand.Read(b[:])
	return "/queue/stompout-test-" + hex.EncodeToString(b[:])
}

func TestInterop(t *testing.T) {
	for _, b := range interopBrokers(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, v := range b.versions {
				t.Run(string(v), func(t *testing.T) { testInterop(t, b, v) })
			}
		})
	}
}

func dialBroker(t testing.TB, b broker, v Version, opts ...Option) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	base := []Option{WithLogin("guest", "guest"), WithHost("/"), WithVersions(v)}
	if b.name == "rabbitmq-ws" {
		// RabbitMQ 3.10.8's Web-STOMP drops a busy connection when
		// heart-beats are on (its heart-beater crashes with
		// {unexpected_message,resume}): off unless a test asks.
		base = append(base, WithHeartBeat(0, 0))
	}
	opts = append(base, opts...)
	c, err := Dial(ctx, b.addr, opts...)
	if err != nil {
		t.Fatalf("%s at %s is not reachable (STOMP_INTEROP is set, so this fails): %v", b.name, b.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if c.Version() != v {
		t.Fatalf("negotiated %q, want %q", c.Version(), v)
	}
	return c
}

// expectNone fails if a message arrives on ch within d.
func expectNone(t testing.TB, ch <-chan Message, d time.Duration, why string) {
	t.Helper()
	select {
	case m, ok := <-ch:
		if ok {
			t.Fatalf("%s: got message %q (redelivered %v)", why, m.Body, m.Redelivered)
		}
	case <-time.After(d):
	}
}

func testInterop(t *testing.T, b broker, v Version) {
	t.Run("connected", func(t *testing.T) {
		c := dialBroker(t, b, v)
		if c.Server() == "" || c.Session() == "" {
			t.Errorf("server %q session %q", c.Server(), c.Session())
		}
		if err := c.Disconnect(ctxT(t)); err != nil {
			t.Fatalf("graceful Disconnect: %v", err)
		}
		if c.Err() != nil {
			t.Fatalf("Err after Disconnect: %v", c.Err())
		}
	})

	t.Run("order", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		const n = 200
		for i := range n {
			if err := c.Send(ctx, q, fmt.Appendf(nil, "m%d", i), WithContentType("text/plain")); err != nil {
				t.Fatal(err)
			}
		}
		for i := range n {
			m := recv(t, sub.C())
			if want := fmt.Sprintf("m%d", i); string(m.Body) != want {
				t.Fatalf("message %d: %q, want %q", i, m.Body, want)
			}
			if m.Destination != q || m.Subscription != sub.ID() || m.ID == "" {
				t.Fatalf("headers: dest %q sub %q id %q", m.Destination, m.Subscription, m.ID)
			}
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	for _, mode := range []AckMode{AckAuto, AckClient, AckClientIndividual} {
		t.Run("ack-"+string(mode), func(t *testing.T) {
			c := dialBroker(t, b, v)
			ctx, q := ctxT(t), uniqueQueue(t)
			sub, err := c.Subscribe(ctx, q, WithAck(mode), WithPrefetch(10))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := c.Send(ctx, q, fmt.Appendf(nil, "%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			var ms []Message
			for range 3 {
				ms = append(ms, recv(t, sub.C()))
			}
			switch mode {
			case AckAuto:
				if err := ms[0].Ack(ctx); !errors.Is(err, ErrAutoAck) {
					t.Fatalf("Ack in auto mode: %v", err)
				}
			case AckClient:
				// Cumulative on the wire, but the client sends an ACK only for
				// the settled prefix: the last one's ACK waits for the others,
				// then one frame covers all three.
				var r *Receipt
				if err := ms[2].Ack(ctx, WithReceipt(&r)); err != nil {
					t.Fatal(err)
				}
				select {
				case <-r.Done():
					t.Fatalf("ACK of the last message before the others: receipt %v", r.Err())
				case <-time.After(100 * time.Millisecond):
				}
				for _, m := range ms[:2] {
					if err := m.Ack(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if err := r.Wait(ctx); err != nil {
					t.Fatalf("ACK receipt: %v", err)
				}
			case AckClientIndividual:
				for _, m := range ms {
					var r *Receipt
					if err := m.Ack(ctx, WithReceipt(&r)); err != nil {
						t.Fatal(err)
					}
					if err := r.Wait(ctx); err != nil {
						t.Fatalf("ACK receipt: %v", err)
					}
				}
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			// Nothing is left to redeliver to a new consumer.
			c2 := dialBroker(t, b, v)
			sub2, err := c2.Subscribe(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			expectNone(t, sub2.C(), 500*time.Millisecond, "after acking everything")
			c2.Disconnect(ctx)
		})
	}

	t.Run("nack", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q, WithAck(AckClientIndividual))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(ctx, q, []byte("again")); err != nil {
			t.Fatal(err)
		}
		m := recv(t, sub.C())
		if v == V10 {
			if err := m.Nack(ctx); !errors.Is(err, ErrNackUnsupported) {
				t.Fatalf("1.0 Nack: %v", err)
			}
			m.Ack(ctx)
			return
		}
		var r *Receipt
		if err := m.Nack(ctx, WithReceipt(&r)); err != nil {
			t.Fatal(err)
		}
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("NACK receipt: %v", err)
		}
		if b.rabbit {
			// RabbitMQ requeues a NACKed message and redelivers it at once.
			m2 := recv(t, sub.C())
			if string(m2.Body) != "again" || !m2.Redelivered {
				t.Fatalf("redelivery: %q redelivered=%v", m2.Body, m2.Redelivered)
			}
			if err := m2.Ack(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			// ActiveMQ Classic treats a NACK as a poison ack: the message
			// goes to the dead-letter queue, not back to the consumer.
			expectNone(t, sub.C(), 500*time.Millisecond, "ActiveMQ after NACK")
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("transactions", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Transact(ctx, func(tx *Tx) error {
			for _, s := range []string{"t1", "t2"} {
				if err := tx.Send(ctx, q, []byte(s)); err != nil {
					return err
				}
			}
			expectNone(t, sub.C(), 200*time.Millisecond, "before COMMIT")
			return nil
		})
		if err != nil {
			t.Fatalf("Transact: %v", err)
		}
		for _, want := range []string{"t1", "t2"} {
			if m := recv(t, sub.C()); string(m.Body) != want {
				t.Fatalf("got %q, want %q", m.Body, want)
			}
		}
		boom := errors.New("boom")
		err = c.Transact(ctx, func(tx *Tx) error {
			tx.Send(ctx, q, []byte("aborted"))
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Transact: %v, want boom", err)
		}
		expectNone(t, sub.C(), 500*time.Millisecond, "after ABORT")
		if len(c.Transactions()) != 0 {
			t.Fatal("open transactions left")
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("receipts", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		const n = 500
		rs := make([]*Receipt, n)
		for i := range rs {
			if err := c.Send(ctx, q, []byte("r"), WithReceipt(&rs[i])); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range rs {
			if err := r.Wait(ctx); err != nil {
				t.Fatalf("receipt %d: %v", i, err)
			}
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("heart-beats", func(t *testing.T) {
		if v == V10 {
			t.Skip("STOMP 1.0 has no heart-beats: the broker sends none and expects none")
		}
		c := dialBroker(t, b, v, WithHeartBeat(time.Second, time.Second))
		send, recv := c.HeartBeat()
		if send != time.Second || recv != time.Second {
			t.Fatalf("negotiated %v,%v, want 1s,1s", send, recv)
		}
		select {
		case <-c.Done():
			t.Fatalf("idle connection died: %v", c.Err())
		case <-time.After(5 * time.Second):
		}
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Send(ctx, q, []byte("alive")); err != nil {
			t.Fatal(err)
		}
		if m := recvMsg(t, sub.C()); string(m.Body) != "alive" {
			t.Fatalf("got %q", m.Body)
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("headers", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		value := "a:b\nc:d\\e"
		if v == V10 {
			value = "a:b:c" // 1.0 cannot carry a newline in a header
		}
		if err := c.Send(ctx, q, []byte("h"), WithHeader("x-odd", value)); err != nil {
			t.Fatal(err)
		}
		m := recv(t, sub.C())
		if b.rabbit && v == V10 {
			// RabbitMQ escapes header values on the way out even in 1.0,
			// which has no escaping: the 1.0 client sees them escaped.
			value = `a\cb\cc`
		}
		if got := m.Header.Get("x-odd"); got != value {
			t.Fatalf("header round trip: %q, want %q", got, value)
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bodies", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		binary := make([]byte, 512)
		for i := range binary {
			binary[i] = byte(i)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		for _, body := range [][]byte{binary, big, {}} {
			if err := c.Send(ctx, q, body); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, sub.C()).Body; !bytes.Equal(got, body) {
				t.Fatalf("body of %d bytes came back as %d bytes", len(body), len(got))
			}
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("json", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		type order struct {
			ID    int      `json:"id"`
			Items []string `json:"items"`
		}
		if err := c.SendJSON(ctx, q, order{7, []string{"a", "b"}}); err != nil {
			t.Fatal(err)
		}
		m := recv(t, sub.C())
		var got order
		if err := m.JSON(&got); err != nil || got.ID != 7 || len(got.Items) != 2 {
			t.Fatalf("JSON: %v %+v", err, got)
		}
		if !strings.HasPrefix(m.ContentType, "application/json") {
			t.Fatalf("content-type %q", m.ContentType)
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("temp-queue-reply", func(t *testing.T) {
		c := dialBroker(t, b, v)
		ctx, q := ctxT(t), uniqueQueue(t)
		sub, err := c.Subscribe(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !b.rabbit {
			// ActiveMQ keeps reply-to as it is and delivers replies only to
			// a subscription the client makes to the temporary queue.
			t.Log("ActiveMQ: no implicit reply subscription; checking an explicit one")
			replies, err := c.Subscribe(ctx, "/temp-queue/replies")
			if err != nil {
				t.Fatal(err)
			}
			c.Send(ctx, q, []byte("ping"), WithHeader("reply-to", "/temp-queue/replies"))
			m := recv(t, sub.C())
			c.Send(ctx, m.Header.Get("reply-to"), []byte("pong"))
			if r := recv(t, replies.C()); string(r.Body) != "pong" {
				t.Fatalf("reply %q", r.Body)
			}
			expectNone(t, c.Unrouted(), 100*time.Millisecond, "ActiveMQ reply")
			return
		}
		// RabbitMQ makes a temporary queue for the reply-to and delivers
		// replies with subscription:/temp-queue/replies, which no SUBSCRIBE
		// made: they arrive on Unrouted.
		if err := c.Send(ctx, q, []byte("ping"), WithHeader("reply-to", "/temp-queue/replies")); err != nil {
			t.Fatal(err)
		}
		m := recv(t, sub.C())
		replyTo := m.Header.Get("reply-to")
		if replyTo == "" {
			t.Fatal("no reply-to on the request")
		}
		if err := c.Send(ctx, replyTo, []byte("pong")); err != nil {
			t.Fatal(err)
		}
		r := recv(t, c.Unrouted())
		if string(r.Body) != "pong" || r.Subscription != "/temp-queue/replies" {
			t.Fatalf("reply %q on subscription %q", r.Body, r.Subscription)
		}
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	})

	// An ERROR frame ends the transport: without reconnect the Conn ends
	// with the *ServerError; by default it reconnects and goes on.
	bad := func(c *Conn, ctx context.Context) *Receipt {
		var r *Receipt
		var err error
		if b.rabbit {
			err = c.Send(ctx, "/bogus/x", []byte("x"), WithReceipt(&r))
		} else {
			err = c.Send(ctx, "/queue/x", []byte("x"), WithHeader("transaction", "no-such-tx"), WithReceipt(&r))
		}
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Run("server-error", func(t *testing.T) {
		c := dialBroker(t, b, v, WithReconnect(reconnect.Never()))
		ctx := ctxT(t)
		var se *ServerError
		if err := bad(c, ctx).Wait(ctx); !errors.As(err, &se) || !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("receipt: %v, want a *ServerError (and ErrConnectionLost)", err)
		}
		<-c.Done()
		if !errors.As(c.Err(), &se) || se.Message == "" {
			t.Fatalf("Err = %v, want a *ServerError with a message", c.Err())
		}
		t.Logf("%s says: %v", b.name, se)
	})
	t.Run("server-error-reconnects", func(t *testing.T) {
		lost := make(chan error, 4)
		c := dialBroker(t, b, v, WithStateListener(func(e StateChange) {
			if e.State == StateLost {
				lost <- e.Err
			}
		}))
		ctx := ctxT(t)
		var se *ServerError
		if err := bad(c, ctx).Wait(ctx); !errors.As(err, &se) {
			t.Fatalf("receipt: %v, want a *ServerError", err)
		}
		if err := <-lost; !errors.As(err, &se) {
			t.Fatalf("lost with %v", err)
		}
		var r *Receipt
		if err := c.Send(ctx, uniqueQueue(t), []byte("after"), WithReceipt(&r)); err != nil {
			t.Fatal(err)
		}
		if err := r.Wait(ctx); err != nil || c.Err() != nil {
			t.Fatalf("after the ERROR: receipt %v, Err %v", err, c.Err())
		}
	})
}

// recvMsg is recv with a longer wait, for brokers that batch deliveries.
func recvMsg(t testing.TB, ch <-chan Message) Message { t.Helper(); return recv(t, ch) }
