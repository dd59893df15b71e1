package stomp

import (
	"context"
	"errors"
	"testing"
)

// TestManyOutstandingReceipts: one goroutine has 10,000 receipted sends
// outstanding at once; receipts do not serialise sends.
func TestManyOutstandingReceipts(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	const n = 10000
	rs := make([]*Receipt, n)
	for i := range rs {
		if err := c.Send(ctx, "/queue/a", []byte("x"), WithReceipt(&rs[i])); err != nil {
			t.Fatal(err)
		}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = p.Expect("SEND").Header.Get("receipt")
	}
	for _, r := range rs {
		select {
		case <-r.Done():
			t.Fatal("receipt resolved before its RECEIPT")
		default:
		}
	}
	for i := n - 1; i >= 0; i-- { // answered in reverse order
		p.Send("RECEIPT", "", "receipt-id", ids[i])
	}
	for i, r := range rs {
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
		if r.ID() != ids[i] {
			t.Fatalf("receipt %d id %q, sent %q", i, r.ID(), ids[i])
		}
	}
}

func TestReceiptWaitContextAndClose(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	var r *Receipt
	if _, err := c.Subscribe(ctxT(t), "/queue/a", WithReceipt(&r)); err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait: %v", err)
	}
	if r.Err() != nil {
		t.Fatal("unresolved receipt has an error")
	}
	select {
	case <-c.Done():
		t.Fatal("a cancelled Wait ended the connection")
	default:
	}
	c.Close()
	if err := r.Wait(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestReceiptOfUnsentFrame(t *testing.T) {
	noLeaks(t)
	c, _ := connectPeer(t, V12, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var r *Receipt
	err := c.Send(ctx, "/q", nil, WithReceipt(&r))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with a cancelled context: %v", err)
	}
	if !errors.Is(r.Err(), context.Canceled) {
		t.Fatalf("receipt of an unsent frame: %v", r.Err())
	}
}
