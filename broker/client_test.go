package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/server"
)

// The project's own client (package stomp) against the broker: everything
// the client can do.

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recvMsg reads one message from sub.
func recvMsg(t *testing.T, ctx context.Context, sub *stomp.Subscription) stomp.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		return m
	case <-ctx.Done():
		t.Fatal("no message")
	}
	return stomp.Message{}
}

func TestClientEverything(t *testing.T) {
	for _, v := range []stomp.Version{stomp.V10, stomp.V11, stomp.V12} {
		t.Run(string(v), func(t *testing.T) {
			ctx := testCtx(t)
			b := newBroker(t, broker.WithUsers(map[string]string{"app": "secret"}))
			c, err := stomp.Connect(ctx, b.Pipe(), stomp.WithVersions(v), stomp.WithLogin("app", "secret"))
			if err != nil {
				t.Fatal(err)
			}
			if c.Version() != v || c.Server() != server.DefaultName || c.Session() == "" {
				t.Fatalf("version %s server %q session %q", c.Version(), c.Server(), c.Session())
			}

			var r *stomp.Receipt
			sub, err := c.Subscribe(ctx, "/queue/jobs", stomp.WithAck(stomp.AckClientIndividual), stomp.WithPrefetch(10), stomp.WithReceipt(&r))
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatalf("SUBSCRIBE receipt: %v", err)
			}
			for i := range 3 {
				err := c.Send(ctx, "/queue/jobs", []byte(fmt.Sprint("job", i)), stomp.WithContentType("text/plain"),
					stomp.WithHeader("reply-to", "/queue/answers"), stomp.WithReceipt(&r))
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatalf("SEND receipt: %v", err)
			}
			m0, m1, m2 := recvMsg(t, ctx, sub), recvMsg(t, ctx, sub), recvMsg(t, ctx, sub)
			for i, m := range []stomp.Message{m0, m1, m2} {
				if string(m.Body) != fmt.Sprint("job", i) || m.ContentType != "text/plain" || m.Header.Get("reply-to") != "/queue/answers" ||
					m.Destination != "/queue/jobs" || m.Subscription != sub.ID() || m.Redelivered {
					t.Fatalf("message %d: %+v", i, m)
				}
			}
			if err := m0.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			if v != stomp.V10 {
				if err := m1.Nack(ctx); err != nil {
					t.Fatal(err)
				}
				again := recvMsg(t, ctx, sub)
				if string(again.Body) != "job1" || !again.Redelivered {
					t.Fatalf("redelivery: %+v", again)
				}
				m1 = again
			}
			if err := m1.Ack(ctx); err != nil {
				t.Fatal(err)
			}

			// A transaction: the send and the ack take effect at COMMIT.
			err = c.Transact(ctx, func(tx *stomp.Tx) error {
				if err := tx.Send(ctx, "/queue/jobs", []byte("in tx")); err != nil {
					return err
				}
				return tx.Ack(ctx, m2)
			})
			if err != nil {
				t.Fatalf("Transact: %v", err)
			}
			if m := recvMsg(t, ctx, sub); string(m.Body) != "in tx" {
				t.Fatalf("got %+v", m)
			} else if err := m.Ack(ctx, stomp.WithReceipt(&r)); err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			// An aborted transaction sends nothing.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tx.Send(ctx, "/queue/jobs", []byte("aborted"))
			if err := tx.Abort(ctx, stomp.WithReceipt(&r)); err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatal(err)
			}

			// JSON, a topic, and Unsubscribe.
			news, err := c.Subscribe(ctx, "/topic/news", stomp.WithReceipt(&r))
			if err != nil {
				t.Fatal(err)
			}
			r.Wait(ctx)
			if err := c.SendJSON(ctx, "/topic/news", map[string]int{"n": 7}); err != nil {
				t.Fatal(err)
			}
			var got map[string]int
			if m := recvMsg(t, ctx, news); m.JSON(&got) != nil || got["n"] != 7 || m.ContentType != "application/json" {
				t.Fatalf("JSON message %+v", m)
			}
			if err := sub.Unsubscribe(ctx, stomp.WithReceipt(&r)); err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			st := b.Stats()
			if st.Sessions != 0 || len(st.Queues) != 0 || st.MessagesIn != 5 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestClientDialTCPAndWebSocket(t *testing.T) {
	ctx := testCtx(t)
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	hs := httptest.NewServer(b.Server().WebSocketHandler())
	defer hs.Close()

	tcp, err := stomp.Dial(ctx, b.URL(), stomp.WithHeartBeat(time.Second, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ws, err := stomp.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/stomp")
	if err != nil {
		t.Fatal(err)
	}
	if tcp.Version() != stomp.V12 || ws.Version() != stomp.V12 {
		t.Fatalf("versions %s %s", tcp.Version(), ws.Version())
	}
	var r *stomp.Receipt
	sub, err := ws.Subscribe(ctx, "/queue/mixed", stomp.WithAck(stomp.AckClient), stomp.WithReceipt(&r))
	if err != nil {
		t.Fatal(err)
	}
	r.Wait(ctx)
	body := []byte("binary\x00body\xff")
	if err := tcp.Send(ctx, "/queue/mixed", body); err != nil {
		t.Fatal(err)
	}
	m := recvMsg(t, ctx, sub)
	if string(m.Body) != string(body) {
		t.Fatalf("body %q", m.Body)
	}
	if err := m.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ws.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tcp.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClientRefusals(t *testing.T) {
	ctx := testCtx(t)
	b := newBroker(t, broker.WithUsers(map[string]string{"app": "secret"}), broker.WithQueueLimit(1), broker.WithQueueFullTimeout(50*time.Millisecond))
	_, err := stomp.Connect(ctx, b.Pipe(), stomp.WithLogin("app", "wrong"))
	var ce *stomp.ConnectError
	if !errors.As(err, &ce) || ce.Server == nil || ce.Server.Message != "access refused" || strings.Contains(string(ce.Server.Body), "wrong") {
		t.Fatalf("bad login: %v", err)
	}

	c, err := stomp.Connect(ctx, b.Pipe(), stomp.WithLogin("app", "secret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var r1, r2 *stomp.Receipt
	c.Send(ctx, "/queue/small", []byte("fits"), stomp.WithReceipt(&r1))
	c.Send(ctx, "/queue/small", []byte("does not"), stomp.WithReceipt(&r2))
	if err := r1.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	var se *stomp.ServerError
	if err := r2.Wait(ctx); !errors.As(err, &se) || se.Message != "queue full" || se.ReceiptID != r2.ID() {
		t.Fatalf("over the limit: %v", err)
	}
	<-c.Done()
	if !errors.As(c.Err(), &se) {
		t.Fatalf("conn error %v", c.Err())
	}
	if q, _ := b.Queue("/queue/small"); q.Depth != 1 {
		t.Fatalf("queue %+v", q)
	}
}

// A worker pool ranging over subscriptions, with producers in parallel:
// every message is processed exactly once.
func TestClientWorkerPool(t *testing.T) {
	ctx := testCtx(t)
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const workers, producers, each = 4, 4, 250
	var mu sync.Mutex
	seen := make(map[string]int)
	var processed atomic.Int64
	var wg sync.WaitGroup
	var conns []*stomp.Conn
	for w := range workers {
		c, err := stomp.Dial(ctx, b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		mode := []stomp.AckMode{stomp.AckAuto, stomp.AckClient, stomp.AckClientIndividual, stomp.AckClientIndividual}[w]
		var r *stomp.Receipt
		// Auto ack has no backpressure (the broker counts a message as
		// consumed once written): that worker gets a buffer for everything.
		sub, err := c.Subscribe(ctx, "/queue/pool", stomp.WithAck(mode), stomp.WithPrefetch(16), stomp.WithBuffer(producers*each), stomp.WithReceipt(&r))
		if err != nil {
			t.Fatal(err)
		}
		r.Wait(ctx)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range sub.C() {
				mu.Lock()
				seen[string(m.Body)]++
				mu.Unlock()
				if mode != stomp.AckAuto {
					if err := m.Ack(ctx); err != nil {
						t.Errorf("ack: %v", err)
						return
					}
				}
				processed.Add(1)
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			c, err := stomp.Dial(ctx, b.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Disconnect(ctx)
			for i := range each {
				if err := c.Send(ctx, "/queue/pool", []byte(fmt.Sprintf("%d-%d", p, i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	pwg.Wait()
	for processed.Load() < producers*each {
		select {
		case <-ctx.Done():
			t.Fatalf("processed %d of %d; stats %+v", processed.Load(), producers*each, b.Stats())
		case <-time.After(5 * time.Millisecond):
		}
	}
	for _, c := range conns {
		if err := c.Disconnect(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(seen) != producers*each {
		t.Fatalf("%d distinct messages", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s processed %d times", k, n)
		}
	}
	if st := b.Stats(); st.Acked != producers*each || st.Redelivered != 0 || len(st.Queues) != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Heart-beats both ways keep an idle connection alive. Real time: the
// client pools objects holding channels (sync.Pool), which cannot cross
// synctest bubbles, so it stays out of them.
func TestClientHeartBeats(t *testing.T) {
	ctx := testCtx(t)
	const hb = 250 * time.Millisecond
	b := newBroker(t, broker.WithServerOptions(server.WithHeartBeat(hb, hb)))
	c, err := stomp.Connect(ctx, b.Pipe(), stomp.WithHeartBeat(hb, hb), stomp.WithHeartBeatTolerance(4))
	if err != nil {
		t.Fatal(err)
	}
	if send, recv := c.HeartBeat(); send != hb || recv != hb {
		t.Fatalf("negotiated %v %v", send, recv)
	}
	time.Sleep(8 * hb)
	var r *stomp.Receipt
	if err := c.Send(ctx, "/queue/hb", nil, stomp.WithReceipt(&r)); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
}

// A client that stops sending heart-beats is dropped by the broker.
func TestClientSilentIsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustNew(t, broker.WithServerOptions(server.WithHeartBeat(0, time.Second)))
		defer b.Close()
		c := open(t, b.Pipe(), "1.2", "heart-beat", "1000,0")
		start := time.Now()
		_, err := c.r.ReadFrame() // nothing comes but the close
		if err == nil || time.Since(start) != 2*time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
		c.c.Close()
	})
}
