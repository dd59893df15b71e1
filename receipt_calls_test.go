package stomp

import (
	"context"
	"errors"
	"testing"

	"github.com/stompout/stomp/internal/stomptest"
)

// TestReceiptReturned: SendReceipt, AckReceipt and CommitReceipt return
// the future of the RECEIPT they asked for, resolved by the server's
// answer; on an early failure the future is there, resolved with the
// call's error.
func TestReceiptReturned(t *testing.T) {
	noLeaks(t)
	w := stomptest.Wire
	c, p := connectPeer(t, V12, []Option{WithHeartBeat(0, 0)})
	ctx := ctxT(t)

	r, err := c.SendReceipt(ctx, "/queue/a", []byte("x"), WithContentType("text/plain"))
	if err != nil || r == nil {
		t.Fatalf("SendReceipt: %v, %v", r, err)
	}
	p.ExpectBytes(w("SEND", "x", "destination", "/queue/a", "content-type", "text/plain", "receipt", r.ID(), "content-length", "1"))
	select {
	case <-r.Done():
		t.Fatal("resolved before the RECEIPT")
	default:
	}
	p.Send("RECEIPT", "", "receipt-id", r.ID())
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClientIndividual))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	p.Send("MESSAGE", "m", "subscription", sub.ID(), "destination", "/queue/a", "message-id", "1", "ack", "a1")
	m := recv(t, sub.C())
	ra, err := m.AckReceipt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(w("ACK", "", "id", "a1", "receipt", ra.ID()))
	p.Send("RECEIPT", "", "receipt-id", ra.ID())
	if err := ra.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("BEGIN")
	rc, err := tx.CommitReceipt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(w("COMMIT", "", "transaction", tx.ID(), "receipt", rc.ID()))
	p.Send("RECEIPT", "", "receipt-id", rc.ID())
	if err := rc.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	// Early failures: the future is there, resolved with the error.
	if r, err := m.AckReceipt(ctx); !errors.Is(err, ErrAlreadyAcked) || r == nil || !errors.Is(r.Err(), ErrAlreadyAcked) {
		t.Fatalf("second AckReceipt: %v, receipt %v", err, r)
	}
	if r, err := tx.CommitReceipt(ctx); !errors.Is(err, ErrTxDone) || r == nil || !errors.Is(r.Err(), ErrTxDone) {
		t.Fatalf("CommitReceipt of a done Tx: %v, receipt %v", err, r)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if r, err := c.SendReceipt(cctx, "/queue/a", nil); !errors.Is(err, context.Canceled) || r == nil || !errors.Is(r.Err(), context.Canceled) {
		t.Fatalf("SendReceipt with an ended ctx: %v, receipt %v", err, r)
	}
}
