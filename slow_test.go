package stomp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompout/stomp/internal/stomptest"
)

// TestSlowSubscriptionDoesNotWedge: a subscription nobody reads overflows
// and ends with ErrSlowConsumer; other subscriptions and receipts go on.
func TestSlowSubscriptionDoesNotWedge(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	slow, _ := c.Subscribe(ctx, "/queue/slow", WithBuffer(2), WithAck(AckClientIndividual))
	fast, _ := c.Subscribe(ctx, "/queue/fast")
	p.Expect("SUBSCRIBE")
	p.Expect("SUBSCRIBE")
	for i := range 5 {
		p.Send("MESSAGE", fmt.Sprint("s", i), "subscription", slow.ID(), "destination", "/queue/slow",
			"message-id", fmt.Sprint(i), "ack", fmt.Sprint("a", i))
		p.Send("MESSAGE", fmt.Sprint("f", i), "subscription", fast.ID(), "destination", "/queue/fast",
			"message-id", fmt.Sprint(i))
	}
	var r *Receipt
	c.Send(ctx, "/q", nil, WithReceipt(&r))
	// The client unsubscribes the slow one by itself.
	if f := p.Expect("UNSUBSCRIBE"); f.Header.Get("id") != slow.ID() {
		t.Fatalf("UNSUBSCRIBE %v", f)
	}
	p.Expect("SEND")
	p.Send("RECEIPT", "", "receipt-id", r.ID())
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if m := recv(t, fast.C()); string(m.Body) != fmt.Sprint("f", i) {
			t.Fatalf("fast got %q", m.Body)
		}
	}
	// The slow one: what was buffered, then closed with ErrSlowConsumer.
	var got []string
	for m := range slow.C() {
		got = append(got, string(m.Body))
	}
	if fmt.Sprint(got) != "[s0 s1]" || !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Fatalf("slow got %v, Err %v", got, slow.Err())
	}
	// The overflowing message and the later ones are in Unrouted, still ackable.
	for i := 2; i < 5; i++ {
		m := recv(t, c.Unrouted())
		if string(m.Body) != fmt.Sprint("s", i) || m.Subscription != slow.ID() {
			t.Fatalf("unrouted %q", m.Body)
		}
		if i == 2 {
			if err := m.Nack(ctx); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes("NACK\nid:a2\n\n\x00")
		}
	}
	if len(c.Subscriptions()) != 1 {
		t.Fatalf("Subscriptions() = %v", c.Subscriptions())
	}
	if err := slow.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCancelledContextEndsOnlyTheWait: a Send whose context ends while the
// writer is blocked returns, is not sent, and the connection goes on.
func TestCancelledContextEndsOnlyTheWait(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	c := rawConnect(t, client, server)
	ctx := ctxT(t)

	first := async(func() error { return c.Send(ctx, "/q", []byte("1")) }) // blocks: nobody reads
	time.Sleep(20 * time.Millisecond)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := c.Send(short, "/q", []byte("2")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send: %v, want DeadlineExceeded", err)
	}
	p := stomptest.New(t, server) // start reading
	if err := waitErr(t, first); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/q", []byte("3")); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("SEND", "1", "destination", "/q", "content-length", "1"))
	p.ExpectBytes(stomptest.Wire("SEND", "3", "destination", "/q", "content-length", "1"))
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}

// rawConnect connects a client over client while the test answers on
// server by hand, so that nothing reads server afterwards.
func rawConnect(t testing.TB, client, server net.Conn, opts ...Option) *Conn {
	t.Helper()
	done := make(chan *Conn, 1)
	go func() {
		c, err := Connect(context.Background(), client, opts...)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	buf := make([]byte, 1)
	for buf[0] = 1; buf[0] != 0; {
		if _, err := server.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := server.Write([]byte("CONNECTED\nversion:1.2\n\n\x00")); err != nil {
		t.Fatal(err)
	}
	c := <-done
	if c == nil {
		t.FailNow()
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// countingConn counts the writes that reach the transport.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestWriterBatches: frames queued while the writer is busy go out in one
// write and one flush.
func TestWriterBatches(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	cc := &countingConn{Conn: client}
	c := rawConnect(t, cc, server)
	ctx := ctxT(t)
	before := cc.writes.Load()

	first := async(func() error { return c.Send(ctx, "/q", []byte("first")) }) // blocks the writer
	time.Sleep(20 * time.Millisecond)
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if err := c.Send(ctx, "/q", []byte("x")); err != nil {
				t.Error(err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // let them queue
	p := stomptest.New(t, server)
	wg.Wait()
	if err := waitErr(t, first); err != nil {
		t.Fatal(err)
	}
	for range n + 1 {
		p.Expect("SEND")
	}
	if w := cc.writes.Load() - before; w > 3 {
		t.Fatalf("%d frames took %d writes, want them batched", n+1, w)
	} else {
		t.Logf("%d frames in %d writes", n+1, w)
	}
}

// TestWriteTimeout: a server that reads nothing ends the connection after
// the write timeout.
func TestWriteTimeout(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	c := rawConnect(t, client, server, WithWriteTimeout(30*time.Millisecond))
	err := c.Send(ctxT(t), "/q", []byte("x"))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Send: %v, want a timeout", err)
	}
	<-c.Done()
	if !errors.As(c.Err(), &ne) {
		t.Fatalf("Err = %v", c.Err())
	}
}
