package stomp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	slow, _ := c.Subscribe(ctx, "/queue/slow", WithBuffer(2), WithAck(AckClientIndividual), WithOverflow(OverflowUnsubscribe))
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
	// The overflowing message and the later ones are in Unrouted, readable;
	// acking them is refused locally (the server has them back after the
	// UNSUBSCRIBE and would answer an ERROR).
	for i := 2; i < 5; i++ {
		m := recv(t, c.Unrouted())
		if string(m.Body) != fmt.Sprint("s", i) || m.Subscription != slow.ID() {
			t.Fatalf("unrouted %q", m.Body)
		}
		if err := m.Nack(ctx); !errors.Is(err, ErrSubscriptionEnded) {
			t.Fatalf("Nack of an overflowed message = %v, want ErrSubscriptionEnded", err)
		}
	}
	// Nothing was written for them: the next frame is the next call's.
	c.Send(ctx, "/q", nil)
	p.Expect("SEND")
	if len(c.Subscriptions()) != 1 {
		t.Fatalf("Subscriptions() = %v", c.Subscriptions())
	}
	if err := slow.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCancelledContextEndsOnlyTheWait: while the writer is blocked, Sends
// are buffered up to a bound in bytes and return; past it a Send waits,
// and one whose context ends returns, is not sent, and the connection goes
// on.
func TestCancelledContextEndsOnlyTheWait(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	c := rawConnect(t, client, server)
	ctx := ctxT(t)

	if err := c.Send(ctx, "/q", []byte("1")); err != nil { // the writer blocks on it: nobody reads
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("b"), 1<<10)
	buffered := 0
	for {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := c.Send(short, "/q", big)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if buffered++; buffered > 200 {
			t.Fatal("Send never waited: the buffer is not bounded")
		}
	}
	if buffered < 8 {
		t.Fatalf("only %d Sends buffered while the writer was blocked", buffered)
	}
	p := stomptest.New(t, server) // start reading
	if err := c.Send(ctx, "/q", []byte("3")); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("SEND", "1", "destination", "/q", "content-length", "1"))
	for range buffered {
		p.ExpectBytes(stomptest.Wire("SEND", string(big), "destination", "/q", "content-length", "1024"))
	}
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

// countedConnect connects a client over a net.Pipe whose writes it counts;
// the test answers on server by hand (see rawConnect).
func countedConnect(t testing.TB) (*Conn, *countingConn, net.Conn) {
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	cc := &countingConn{Conn: client}
	return rawConnect(t, cc, server), cc, server
}

// TestWriterBatches: frames queued while the writer is busy go out in one
// write and one flush.
func TestWriterBatches(t *testing.T) {
	noLeaks(t)
	c, cc, server := countedConnect(t)
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
	_, err := c.Subscribe(ctxT(t), "/q") // returns once flushed
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Subscribe: %v, want a timeout", err)
	}
	<-c.Done()
	if !errors.As(c.Err(), &ne) {
		t.Fatalf("Err = %v", c.Err())
	}
}

// TestCancelWhileWriterBlocked: a server that reads nothing, no write
// timeout, no heart-beats. The writer is stuck flushing the caller's own
// frame; the caller's ctx must still end its wait (it used to wait for
// the flush forever), the connection goes on, and what was already
// buffered goes out once the server reads again. A SUBSCRIBE or BEGIN
// given up on that way is undone after it.
func TestCancelWhileWriterBlocked(t *testing.T) {
	noLeaks(t)
	stuck := func(t *testing.T) (*Conn, net.Conn) {
		client, server := net.Pipe()
		t.Cleanup(func() { server.Close() })
		return rawConnect(t, client, server), server
	}
	w := stomptest.Wire

	t.Run("Send", func(t *testing.T) {
		c, server := stuck(t)
		var r *Receipt
		err := cancelWhileWriting(t, server, func(ctx context.Context) error {
			return c.Send(ctx, "/q", []byte("1"), WithReceipt(&r))
		})
		// A SEND returns once it is in the write buffer: the stuck write
		// does not hold it (either answer is right, by when ctx ended).
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("Send: %v, want nil or Canceled", err)
		}
		select {
		case <-r.Done():
			t.Fatalf("receipt of a frame still being written resolved: %v", r.Err())
		default:
		}
		p := stomptest.New(t, server)
		p.ExpectBytes(w("SEND", "1", "destination", "/q", "receipt", r.ID(), "content-length", "1")[1:])
		p.Send("RECEIPT", "", "receipt-id", r.ID())
		if err := r.Wait(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if err := c.Send(ctxT(t), "/q", []byte("2")); err != nil {
			t.Fatal(err)
		}
		p.ExpectBytes(w("SEND", "2", "destination", "/q", "content-length", "1"))
	})
	t.Run("Subscribe", func(t *testing.T) {
		c, server := stuck(t)
		err := cancelWhileWriting(t, server, func(ctx context.Context) error {
			_, err := c.Subscribe(ctx, "/q")
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe: %v, want Canceled", err)
		}
		if n := len(c.Subscriptions()); n != 0 {
			t.Fatalf("%d subscriptions", n)
		}
		p := stomptest.New(t, server)
		p.ExpectBytes(w("SUBSCRIBE", "", "destination", "/q", "id", "sub-1", "ack", "auto")[1:])
		p.ExpectBytes(w("UNSUBSCRIBE", "", "id", "sub-1"))
	})
	t.Run("Begin", func(t *testing.T) {
		c, server := stuck(t)
		err := cancelWhileWriting(t, server, func(ctx context.Context) error {
			_, err := c.Begin(ctx)
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Begin: %v, want Canceled", err)
		}
		if n := len(c.Transactions()); n != 0 {
			t.Fatalf("%d transactions", n)
		}
		p := stomptest.New(t, server)
		p.ExpectBytes(w("BEGIN", "", "transaction", "tx-1")[1:])
		p.ExpectBytes(w("ABORT", "", "transaction", "tx-1"))
	})
	t.Run("Disconnect", func(t *testing.T) {
		c, server := stuck(t)
		if err := cancelWhileWriting(t, server, c.Disconnect); !errors.Is(err, context.Canceled) {
			t.Fatalf("Disconnect: %v, want Canceled", err)
		}
		<-c.Done()
	})
}

// cancelWhileWriting starts call, waits until the writer is in the middle
// of writing its frame (the server has read its first byte, and reads no
// more), cancels call's ctx and returns what call returns.
func cancelWhileWriting(t *testing.T, server net.Conn, call func(context.Context) error) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := async(func() error { return call(ctx) })
	if _, err := server.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	cancel()
	return waitErr(t, done)
}

// stuckOn starts a Send whose write stays stuck: the server reads its
// first byte and no more. It returns the bytes the server has still to
// read of it.
func stuckOn(t *testing.T, c *Conn, server net.Conn) string {
	t.Helper()
	go c.Send(ctxT(t), "/q", []byte("block"))
	if _, err := server.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return stomptest.Wire("SEND", "block", "destination", "/q", "content-length", "5")[1:]
}

// readRaw reads one frame's bytes from the server end, up to its NUL.
func readRaw(t *testing.T, server net.Conn) string {
	t.Helper()
	var b []byte
	buf := make([]byte, 1)
	for {
		if _, err := server.Read(buf); err != nil {
			t.Fatal(err)
		}
		if buf[0] == 0 {
			return string(b)
		}
		b = append(b, buf[0])
	}
}

// waitQueued waits until n requests wait in the writer's queue.
func waitQueued(t *testing.T, c *Conn, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(c.writeq) != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", len(c.writeq), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestUnsubscribeConcurrentAndCancelled: while one Unsubscribe is queued
// behind a stuck writer, a second one used to return nil at once, though
// the first could still fail and leave the subscription live. And when
// the subscription overflowed meanwhile, the overflow left the
// UNSUBSCRIBE to the queued call; if that call's ctx then ended, no
// UNSUBSCRIBE was ever sent and the server went on sending.
func TestUnsubscribeConcurrentAndCancelled(t *testing.T) {
	noLeaks(t)
	var sendBlock string
	setup := func(t *testing.T) (*Conn, net.Conn, *Subscription) {
		client, server := net.Pipe()
		t.Cleanup(func() { server.Close() })
		c := rawConnect(t, client, server)
		done := async(func() error {
			_, err := c.Subscribe(ctxT(t), "/q", WithBuffer(1), WithOverflow(OverflowUnsubscribe))
			return err
		})
		readRaw(t, server)
		if err := waitErr(t, done); err != nil {
			t.Fatal(err)
		}
		sendBlock = stuckOn(t, c, server)
		return c, server, c.Subscriptions()[0]
	}
	w := stomptest.Wire

	t.Run("second waits for the first", func(t *testing.T) {
		c, server, sub := setup(t)
		ctx1, cancel1 := context.WithCancel(context.Background())
		defer cancel1()
		first := async(func() error { return sub.Unsubscribe(ctx1) })
		waitQueued(t, c, 1)
		second := async(func() error { return sub.Unsubscribe(ctxT(t)) })
		time.Sleep(10 * time.Millisecond) // let it return early, if it does
		cancel1()
		if err := waitErr(t, first); !errors.Is(err, context.Canceled) {
			t.Fatalf("first Unsubscribe: %v", err)
		}
		p := stomptest.New(t, server)
		p.ExpectBytes(sendBlock)
		p.ExpectBytes(w("UNSUBSCRIBE", "", "id", sub.ID()))
		if err := waitErr(t, second); err != nil {
			t.Fatal(err)
		}
		select {
		case _, ok := <-sub.C():
			if ok {
				t.Fatal("message")
			}
		default:
			t.Fatal("second Unsubscribe returned nil with the subscription live")
		}
		if n := len(c.Subscriptions()); n != 0 {
			t.Fatalf("%d subscriptions", n)
		}
	})
	t.Run("overflow meanwhile", func(t *testing.T) {
		c, server, sub := setup(t)
		ctx1, cancel1 := context.WithCancel(context.Background())
		defer cancel1()
		first := async(func() error { return sub.Unsubscribe(ctx1) })
		waitQueued(t, c, 1)
		for i := range 2 {
			fmt.Fprintf(server, "MESSAGE\nsubscription:%s\ndestination:/q\nmessage-id:%d\n\n\x00", sub.ID(), i)
		}
		for !errors.Is(sub.Err(), ErrSlowConsumer) {
			time.Sleep(time.Millisecond)
		}
		cancel1()
		if err := waitErr(t, first); !errors.Is(err, context.Canceled) {
			t.Fatalf("Unsubscribe: %v", err)
		}
		p := stomptest.New(t, server)
		p.ExpectBytes(sendBlock)
		p.ExpectBytes(w("UNSUBSCRIBE", "", "id", sub.ID()))
	})
}

// slowHandler is a slog handler that takes its time over every record.
type slowHandler struct{ slog.Handler }

func (h slowHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h slowHandler) Handle(ctx context.Context, r slog.Record) error {
	time.Sleep(50 * time.Millisecond)
	return nil
}

// TestResubscribeAfterOverflow: once a subscription's channel is closed
// by an overflow, its id is free and the UNSUBSCRIBE is queued, so a new
// SUBSCRIBE with the same id goes out after it. The channel used to be
// closed first, then the warning logged, the id freed and the UNSUBSCRIBE
// queued: a quick resubscriber found the id in use, or its SUBSCRIBE went
// out before the UNSUBSCRIBE that then cancelled it.
func TestResubscribeAfterOverflow(t *testing.T) {
	noLeaks(t)
	logger := slog.New(slowHandler{slog.DiscardHandler})
	c, p := connectPeer(t, V12, []Option{WithLogger(logger)})
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/q", WithID("x"), WithBuffer(1), WithOverflow(OverflowUnsubscribe))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	for i := range 2 {
		p.Send("MESSAGE", "m", "subscription", "x", "destination", "/q", "message-id", fmt.Sprint(i))
	}
	for sub.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	for range sub.C() {
	}
	if _, err := c.Subscribe(ctx, "/q", WithID("x")); err != nil {
		t.Fatalf("Subscribe with the id of the overflowed one: %v", err)
	}
	if f := p.ReadFrame(); f.Command != "UNSUBSCRIBE" {
		t.Fatalf("got %v, want the UNSUBSCRIBE first", f)
	}
	p.Expect("SUBSCRIBE")
}

// TestWriteTimeoutBoundsProgress: WithWriteTimeout bounds each piece of a
// write, not a whole large body: a server that reads slowly but steadily
// gets a body that takes many times the timeout to write. The body went
// to the transport in one write under one deadline, and failed.
func TestWriteTimeoutBoundsProgress(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	c := rawConnect(t, client, server, WithWriteTimeout(200*time.Millisecond))
	const size = 1 << 20
	var total atomic.Int64
	go func() { // 16 KiB every 10 ms: 640 ms for the body, 20 ms per 32 KiB
		buf := make([]byte, 16<<10)
		for {
			n, err := server.Read(buf)
			total.Add(int64(n))
			if err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if err := c.Send(ctxT(t), "/q", make([]byte, size)); err != nil {
		t.Fatalf("Send: %v", err)
	}
	for deadline := time.Now().Add(time.Second); total.Load() < size && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if n := total.Load(); n < size {
		t.Fatalf("server read %d bytes", n)
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
}
