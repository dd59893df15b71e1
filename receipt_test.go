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

// TestReceiptSetOnEveryEarlyReturn: WithReceipt promises a future in *r
// whatever the call returns. Calls that failed (or had nothing to do)
// before queueing their frame left it nil, so r.Wait panicked.
func TestReceiptSetOnEveryEarlyReturn(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V10, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/q")
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	p.Expect("UNSUBSCRIBE")
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("BEGIN")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p.Expect("COMMIT")
	auto := Message{mode: AckAuto, conn: c, ack: "1"}
	client := Message{mode: AckClient, conn: c, ack: "1"}
	calls := []struct {
		name string
		call func(o CallOption) error
		want error // nil: the call succeeds without sending anything
	}{
		{"Ack auto", func(o CallOption) error { return auto.Ack(ctx, o) }, ErrAutoAck},
		{"Ack zero", func(o CallOption) error { return Message{}.Ack(ctx, o) }, ErrNotAckable},
		{"Nack 1.0", func(o CallOption) error { return client.Nack(ctx, o) }, ErrNackUnsupported},
		{"Ack bad option", func(o CallOption) error { return client.Ack(ctx, o, WithReceipt(nil)) }, nil},
		{"Send bad option", func(o CallOption) error { return c.Send(ctx, "/q", nil, o, WithReceipt(nil)) }, nil},
		{"SendJSON bad value", func(o CallOption) error { return c.SendJSON(ctx, "/q", func() {}, o) }, nil},
		{"Subscribe bad option", func(o CallOption) error { _, err := c.Subscribe(ctx, "/q", o, WithBuffer(-1)); return err }, nil},
		{"Unsubscribe ended", func(o CallOption) error { return sub.Unsubscribe(ctx, o) }, nil},
		{"Begin duplicate", func(o CallOption) error {
			t2, _ := c.Begin(ctx, WithID("dup"))
			p.Expect("BEGIN")
			defer t2.Abort(ctx)
			_, err := c.Begin(ctx, o, WithID("dup"))
			return err
		}, nil},
		{"Tx.Send done", func(o CallOption) error { return tx.Send(ctx, "/q", nil, o) }, ErrTxDone},
		{"Tx.SendJSON done", func(o CallOption) error { return tx.SendJSON(ctx, "/q", 1, o) }, ErrTxDone},
		{"Tx.Ack done", func(o CallOption) error { return tx.Ack(ctx, client, o) }, ErrTxDone},
		{"Tx.Commit done", func(o CallOption) error { return tx.Commit(ctx, o) }, ErrTxDone},
		{"Tx.Abort done", func(o CallOption) error { return tx.Abort(ctx, o) }, ErrTxDone},
	}
	for _, tt := range calls {
		var r *Receipt
		err := tt.call(WithReceipt(&r))
		if tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		if r == nil {
			t.Errorf("%s: receipt left nil (err %v)", tt.name, err)
			continue
		}
		if werr := r.Wait(ctx); werr != err {
			t.Errorf("%s: receipt resolved with %v, call returned %v", tt.name, werr, err)
		}
	}
	p.Expect("ABORT")
	c.Close()
	var r *Receipt
	if _, err := c.Begin(ctx, WithReceipt(&r)); !errors.Is(err, ErrClosed) || r == nil || !errors.Is(r.Err(), ErrClosed) {
		t.Fatalf("Begin on a closed conn: %v, receipt %v", err, r)
	}
}
