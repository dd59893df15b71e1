package stomp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	embedded "github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/stomptest"
)

// pairs lists a frame's headers as key, value, ... in wire order.
func pairs(h frame.Header) []string {
	var kv []string
	for k, v := range h.All() {
		kv = append(kv, k, v)
	}
	return kv
}

// synced has the peer send frames, then a RECEIPT for a frame of the
// client's: once the receipt resolves, the client's reader has handled the
// frames before it.
func synced(t *testing.T, c *Conn, p *stomptest.Peer, frames func()) {
	t.Helper()
	var r *Receipt
	ctx := ctxT(t)
	if err := c.Send(ctx, "/queue/sync", nil, WithReceipt(&r)); err != nil {
		t.Fatal(err)
	}
	p.Expect("SEND")
	frames()
	p.Send("RECEIPT", "", "receipt-id", r.ID())
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// Against RabbitMQ a Request names the connection's /temp-queue/ and needs
// no subscription; the reply, whose subscription header is the temp
// queue's name, goes to the Request, not to Unrouted; a late one is
// dropped and counted.
func TestRequestRabbitWire(t *testing.T) {
	noLeaks(t)
	c2, p2 := rabbitPeer(t)
	ctx := ctxT(t)
	res := async(func() error {
		m, err := c2.Request(ctx, "/queue/svc", []byte("ping"), WithContentType("text/plain"),
			WithHeader("reply-to", "/queue/ignored"))
		if err == nil && (string(m.Body) != "pong" || m.ID != "r1") {
			err = fmt.Errorf("reply %q %q", m.Body, m.ID)
		}
		return err
	})
	f := p2.Expect("SEND")
	corr := f.Header.Get("correlation-id")
	got := strings.Join(pairs(f.Header), " ")
	want := "destination /queue/svc content-type text/plain reply-to /temp-queue/stompout.replies correlation-id " +
		corr + " reply-to /queue/ignored content-length 4"
	if got != want || !strings.Contains(corr, "-") || string(f.Body) != "ping" {
		t.Fatalf("SEND headers\n%s, want\n%s", got, want)
	}
	p2.Send("MESSAGE", "pong", "subscription", "/temp-queue/stompout.replies", "destination", "/queue/amq.gen-x",
		"message-id", "r1", "correlation-id", corr)
	if err := waitErr(t, res); err != nil {
		t.Fatal(err)
	}
	synced(t, c2, p2, func() {
		p2.Send("MESSAGE", "late", "subscription", "/temp-queue/stompout.replies", "destination", "/queue/amq.gen-x",
			"message-id", "r2", "correlation-id", corr)
	})
	select {
	case m := <-c2.Unrouted():
		t.Fatalf("reply on Unrouted: %q", m.Body)
	default:
	}
	if n := c2.LateReplies(); n != 1 {
		t.Fatalf("LateReplies %d", n)
	}
	if subs := c2.Subscriptions(); len(subs) != 0 {
		t.Fatalf("subscriptions %v", subs)
	}
}

// rabbitPeer connects to a scripted peer that says it is RabbitMQ.
func rabbitPeer(t *testing.T) (*Conn, *stomptest.Peer) {
	t.Helper()
	client, p := stomptest.Pipe(t)
	type result struct {
		c   *Conn
		err error
	}
	rc := make(chan result, 1)
	go func() {
		c, err := Connect(context.Background(), client)
		rc <- result{c, err}
	}()
	p.Accept(V12, "session", "s", "server", "RabbitMQ/3.10.8")
	r := <-rc
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, p
}

// Elsewhere the first Request subscribes to a private reply queue; a
// Request whose ctx ends gives up, and its reply is then dropped.
func TestRequestPrivateQueueWire(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	var got Message
	res := async(func() error {
		m, err := c.Request(ctx, "/queue/svc", []byte("ping"))
		if err == nil && string(m.Body) != "pong" {
			err = fmt.Errorf("reply %q", m.Body)
		}
		got = m
		return err
	})
	sf := p.Expect("SUBSCRIBE")
	dest, id := sf.Header.Get("destination"), sf.Header.Get("id")
	if !strings.HasPrefix(dest, "/queue/stompout.reply.") || !strings.HasPrefix(id, "stompout-reply-") || sf.Header.Get("ack") != "auto" {
		t.Fatalf("SUBSCRIBE %v", sf.Header)
	}
	f := p.Expect("SEND")
	corr := f.Header.Get("correlation-id")
	if f.Header.Get("reply-to") != dest || corr == "" {
		t.Fatalf("SEND %v", f.Header)
	}
	p.Send("MESSAGE", "pong", "subscription", id, "destination", dest, "message-id", "r1", "correlation-id", corr)
	if err := waitErr(t, res); err != nil {
		t.Fatal(err)
	}

	if err := got.Ack(ctx); !errors.Is(err, ErrAutoAck) {
		t.Fatalf("Ack of a reply: %v", err) // an ACK would be an ERROR
	}

	// Given up on: ctx ends before the reply.
	cctx, cancel := context.WithCancel(ctx)
	res = async(func() error {
		_, err := c.Request(cctx, "/queue/svc", []byte("ping"))
		return err
	})
	f = p.Expect("SEND") // the subscription is reused
	cancel()
	if err := waitErr(t, res); err != context.Canceled {
		t.Fatalf("Request after cancel: %v", err)
	}
	synced(t, c, p, func() {
		p.Send("MESSAGE", "late", "subscription", id, "destination", dest, "message-id", "r2",
			"correlation-id", f.Header.Get("correlation-id"))
	})
	if n := c.LateReplies(); n != 1 {
		t.Fatalf("LateReplies %d", n)
	}
	select {
	case m := <-c.Unrouted():
		t.Fatalf("reply on Unrouted: %q", m.Body)
	default:
	}
}

// serveReplies answers every request on dest with "re:" and its body, from
// a Pool of 8 handlers on its own connection.
func serveReplies(t *testing.T, server *Conn, dest string) *Pool {
	t.Helper()
	ctx := ctxT(t)
	sub, err := server.Subscribe(ctx, dest, WithAck(AckClientIndividual), WithPrefetch(64))
	if err != nil {
		t.Fatal(err)
	}
	pool, err := sub.Serve(ctx, 8, func(ctx context.Context, m Message) error {
		return server.Reply(ctx, m, append([]byte("re:"), m.Body...))
	}, WithErrorFunc(func(m Message, err error) { t.Errorf("reply to %s: %v", m.Body, err) }))
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// concurrentRequests runs n Requests at once and checks each reply.
func concurrentRequests(t *testing.T, client *Conn, dest string, n int) {
	t.Helper()
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprint("q", i)
			m, err := client.Request(ctx, dest, []byte(body))
			if err != nil {
				errs <- err
				return
			}
			if string(m.Body) != "re:"+body {
				errs <- fmt.Errorf("request %s: reply %q", body, m.Body)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := client.LateReplies(); n != 0 {
		t.Errorf("LateReplies %d", n)
	}
	select {
	case m := <-client.Unrouted():
		t.Errorf("unrouted %q", m.Body)
	default:
	}
}

// The test: 1,000 concurrent requests against the embedded broker.
func TestRequestConcurrentEmbedded(t *testing.T) {
	noLeaks(t)
	b, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxT(t)
	server, err := Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pool := serveReplies(t, server, "/queue/svc")
	concurrentRequests(t, client, "/queue/svc", 1000)
	if err := pool.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// The same against the real brokers: RabbitMQ's /temp-queue/, ActiveMQ's
// private reply queue.
func TestInteropRequestConcurrent(t *testing.T) {
	for _, b := range interopBrokers(t) {
		t.Run(b.name, func(t *testing.T) {
			server := dialBroker(t, b, V12, append(noLoss(t), wsHeartBeatWorkaround(b)...)...)
			client := dialBroker(t, b, V12, append(noLoss(t), wsHeartBeatWorkaround(b)...)...)
			q := uniqueQueue(t)
			pool := serveReplies(t, server, q)
			concurrentRequests(t, client, q, 1000)
			if err := pool.Stop(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			for _, s := range client.Subscriptions() {
				if b.rabbit {
					t.Errorf("subscription %s against RabbitMQ", s.Destination())
				}
			}
		})
	}
}
