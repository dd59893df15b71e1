package stomp

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stompout/stomp/internal/stomptest"
)

// TestResubscribeBeforeQueuedFrames: on a new transport the client
// subscribes again, with the same ids, destinations and headers, oldest
// first, before any frame that was queued during the outage; a
// subscription undone during the outage is not made again, and its
// UNSUBSCRIBE is not sent to a server that never had it.
func TestResubscribeBeforeQueuedFrames(t *testing.T) {
	noLeaks(t)
	w := stomptest.Wire
	peers := make(chan *stomptest.Peer, 4)
	redial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		client, p := stomptest.Pipe(t)
		peers <- p
		return client, nil
	}
	first, p1 := stomptest.Pipe(t)
	done := make(chan *Conn, 1)
	lostC := make(chan struct{}, 4)
	listen := WithStateListener(func(e StateChange) {
		if e.State == StateLost {
			lostC <- struct{}{}
		}
	})
	go func() {
		c, err := Connect(context.Background(), first, WithRedial(redial), WithHeartBeat(0, 0), listen)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	p1.Accept(V12)
	c := <-done
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	ctx := ctxT(t)
	a, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClient), WithPrefetch(5), WithHeader("selector", "x=1"))
	if err != nil {
		t.Fatal(err)
	}
	p1.Expect("SUBSCRIBE")
	gone, err := c.Subscribe(ctx, "/queue/gone")
	if err != nil {
		t.Fatal(err)
	}
	p1.Expect("SUBSCRIBE")
	b, err := c.Subscribe(ctx, "/queue/b")
	if err != nil {
		t.Fatal(err)
	}
	p1.Expect("SUBSCRIBE")
	p1.Send("MESSAGE", "m", "subscription", a.ID(), "destination", "/queue/a", "message-id", "1", "ack", "1")
	m := recv(t, a.C())

	p1.Close() // the transport is lost
	p2 := <-peers
	p2.Accept(V12, "heart-beat", "0,0")
	// The subscriptions come back first, oldest first, as they were.
	p2.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/a", "id", a.ID(), "ack", "client",
		"prefetch-count", "5", "activemq.prefetchSize", "5", "selector", "x=1"))
	p2.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/gone", "id", gone.ID(), "ack", "auto"))
	p2.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/b", "id", b.ID(), "ack", "auto"))
	if err := c.Send(ctx, "/queue/a", []byte("after")); err != nil {
		t.Fatal(err)
	}
	p2.ExpectBytes(w("SEND", "after", "destination", "/queue/a", "content-length", "5"))
	if err := m.Ack(ctx); !errors.Is(err, ErrStaleMessage) {
		t.Fatalf("Ack of a message of the lost transport = %v", err)
	}
	if err := gone.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	p2.ExpectBytes(w("UNSUBSCRIBE", "", "id", gone.ID()))

	// A third transport: a and b only, and the frame queued meanwhile after them.
	p2.Close()
	<-lostC
	<-lostC // the first loss, then this one
	sent := async(func() error { return c.Send(ctx, "/queue/b", []byte("queued")) })
	p3 := <-peers
	p3.Accept(V12)
	p3.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/a", "id", a.ID(), "ack", "client",
		"prefetch-count", "5", "activemq.prefetchSize", "5", "selector", "x=1"))
	p3.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/b", "id", b.ID(), "ack", "auto"))
	p3.ExpectBytes(w("SEND", "queued", "destination", "/queue/b", "content-length", "6"))
	if err := waitErr(t, sent); err != nil {
		t.Fatal(err)
	}
	p3.Send("MESSAGE", "again", "subscription", b.ID(), "destination", "/queue/b", "message-id", "2")
	if m := recv(t, b.C()); string(m.Body) != "again" {
		t.Fatalf("got %q", m.Body)
	}
}
