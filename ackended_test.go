package stomp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// TestAckAfterUnsubscribe: a message whose subscription was unsubscribed
// is not acknowledged on the wire (the broker has already taken it back
// and would answer an ERROR that ends the connection); Ack says so, the
// connection lives on, and the broker redelivers the message.
func TestAckAfterUnsubscribe(t *testing.T) {
	ctx, conn := brokerConn(t)

	for _, mode := range []stomp.AckMode{stomp.AckClient, stomp.AckClientIndividual} {
		t.Run(string(mode), func(t *testing.T) {
			dest := "/queue/ack-after-unsubscribe-" + string(mode)
			sub, err := conn.Subscribe(ctx, dest, stomp.WithAck(mode))
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Send(ctx, dest, []byte("once")); err != nil {
				t.Fatal(err)
			}
			m := <-sub.C()
			if err := sub.Unsubscribe(ctx); err != nil {
				t.Fatal(err)
			}
			var r *stomp.Receipt
			if err := m.Ack(ctx, stomp.WithReceipt(&r)); !errors.Is(err, stomp.ErrSubscriptionEnded) {
				t.Fatalf("Ack after Unsubscribe = %v, want ErrSubscriptionEnded", err)
			}
			if err := r.Wait(ctx); !errors.Is(err, stomp.ErrSubscriptionEnded) {
				t.Fatalf("its receipt resolved with %v, want ErrSubscriptionEnded", err)
			}
			if err := m.Nack(ctx); !errors.Is(err, stomp.ErrSubscriptionEnded) {
				t.Fatalf("Nack after Unsubscribe = %v, want ErrSubscriptionEnded", err)
			}

			// The connection is intact and the message comes again.
			again, err := conn.Subscribe(ctx, dest, stomp.WithAck(mode))
			if err != nil {
				t.Fatal(err)
			}
			m2 := <-again.C()
			if string(m2.Body) != "once" || !m2.Redelivered {
				t.Fatalf("redelivery: %q redelivered=%v", m2.Body, m2.Redelivered)
			}
			if err := m2.Ack(ctx, stomp.WithReceipt(&r)); err != nil {
				t.Fatal(err)
			}
			if err := r.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if err := again.Unsubscribe(ctx); err != nil {
				t.Fatal(err)
			}
			if conn.Err() != nil {
				t.Fatalf("connection ended: %v", conn.Err())
			}
		})
	}
}

// TestAckAfterOverflow: the message that overflowed a subscription reaches
// Unrouted, marked as belonging to the ended subscription, so acking it is
// refused locally instead of ending the connection.
func TestAckAfterOverflow(t *testing.T) {
	ctx, conn := brokerConn(t)

	sub, err := conn.Subscribe(ctx, "/queue/overflow", stomp.WithAck(stomp.AckClientIndividual), stomp.WithBuffer(1), stomp.WithPrefetch(10), stomp.WithOverflow(stomp.OverflowUnsubscribe))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := conn.Send(ctx, "/queue/overflow", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	var m stomp.Message
	select {
	case m = <-conn.Unrouted():
	case <-ctx.Done():
		t.Fatal("no message reached Unrouted")
	}
	for range sub.C() {
	}
	if !errors.Is(sub.Err(), stomp.ErrSlowConsumer) {
		t.Fatalf("sub.Err() = %v", sub.Err())
	}
	if err := m.Ack(ctx); !errors.Is(err, stomp.ErrSubscriptionEnded) {
		t.Fatalf("Ack of an overflowed message = %v, want ErrSubscriptionEnded", err)
	}
	var r *stomp.Receipt
	if err := conn.Send(ctx, "/queue/other", []byte("alive"), stomp.WithReceipt(&r)); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatalf("connection after the refused ack: %v", err)
	}
}

// brokerConn connects to a new embedded broker; both end with the test.
func brokerConn(t *testing.T) (context.Context, *stomp.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ctx, conn
}
