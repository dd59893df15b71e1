package stomp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/stompout/stomp/internal/stomptest"
)

func TestTransact(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	w := stomptest.Wire

	// nil: COMMIT with a receipt, and Transact waits for it.
	done := async(func() error {
		return c.Transact(ctx, func(tx *Tx) error { return tx.Send(ctx, "/q", []byte("a")) })
	})
	p.ExpectBytes(w("BEGIN", "", "transaction", "tx-1"))
	p.ExpectBytes(w("SEND", "a", "destination", "/q", "transaction", "tx-1", "content-length", "1"))
	p.ExpectBytes(w("COMMIT", "", "transaction", "tx-1", "receipt", "rcpt-1"))
	select {
	case err := <-done:
		t.Fatalf("Transact returned %v before the RECEIPT", err)
	default:
	}
	p.Send("RECEIPT", "", "receipt-id", "rcpt-1")
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}

	// An error: ABORT, and the error comes back.
	boom := errors.New("boom")
	if err := c.Transact(ctx, func(*Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Transact: %v", err)
	}
	p.ExpectBytes(w("BEGIN", "", "transaction", "tx-2"))
	p.ExpectBytes(w("ABORT", "", "transaction", "tx-2"))

	// A panic: ABORT, and the panic goes on.
	func() {
		defer func() {
			if recover() != "oops" {
				t.Fatal("panic swallowed")
			}
		}()
		c.Transact(ctx, func(*Tx) error { panic("oops") })
	}()
	p.ExpectBytes(w("BEGIN", "", "transaction", "tx-3"))
	p.ExpectBytes(w("ABORT", "", "transaction", "tx-3"))

	// A refused COMMIT: the ERROR naming its receipt.
	done = async(func() error { return c.Transact(ctx, func(*Tx) error { return nil }) })
	p.Expect("BEGIN")
	f := p.Expect("COMMIT")
	p.Send("ERROR", "", "message", "no", "receipt-id", f.Header.Get("receipt"))
	var se *ServerError
	if err := waitErr(t, done); !errors.As(err, &se) || se.ReceiptID != f.Header.Get("receipt") {
		t.Fatalf("Transact: %v", err)
	}
	if _, err := c.Begin(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Begin on a closed conn: %v", err)
	}
	if len(c.Transactions()) != 0 {
		t.Fatal("transactions left")
	}
}

func TestTxAfterEnd(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V11, nil)
	ctx := ctxT(t)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(ctx, WithID(tx.ID())); err == nil {
		t.Fatal("duplicate transaction id accepted")
	}
	p.Expect("BEGIN")
	if err := tx.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	p.Expect("ABORT")
	for _, err := range []error{
		tx.Send(ctx, "/q", nil), tx.SendJSON(ctx, "/q", 1), tx.Ack(ctx, Message{}), tx.Nack(ctx, Message{}),
		tx.Commit(ctx), tx.Abort(ctx),
	} {
		if !errors.Is(err, ErrTxDone) {
			t.Fatalf("after Abort: %v", err)
		}
	}
}

// TestTxCommitNotSent: a COMMIT that could not be encoded was not sent,
// so the transaction stays open (it used to be marked done, yet listed in
// Transactions, with no way to end it).
func TestTxCommitNotSent(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V10, nil)
	ctx := ctxT(t)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("BEGIN")
	if err := tx.Commit(ctx, WithHeader("k", "a\nb")); err == nil || errors.Is(err, ErrTxDone) {
		t.Fatalf("Commit with an unencodable header: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("Commit after a failed one: %v", err)
	}
	p.Expect("COMMIT")
	if n := len(c.Transactions()); n != 0 {
		t.Fatalf("%d transactions", n)
	}
}

// TestTxSendRacingCommit: a Tx.Send that started before Commit but whose
// frame was queued after the COMMIT used to be written after it: the
// server no longer knows the transaction and answers ERROR, which ends the
// connection. It fails with ErrTxDone instead.
func TestTxSendRacingCommit(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("BEGIN")
	// An option that holds the calls after their ErrTxDone check.
	entered, release := make(chan struct{}, 2), make(chan struct{})
	hold := callOption(func(*callConfig) { entered <- struct{}{}; <-release })
	send := async(func() error { return tx.Send(ctx, "/q", []byte("late"), hold) })
	ack := async(func() error { return tx.Ack(ctx, Message{mode: AckClient, conn: c, ack: "m"}, hold) })
	<-entered
	<-entered
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("COMMIT", "", "transaction", tx.ID()))
	close(release)
	for _, ch := range []<-chan error{send, ack} {
		if err := waitErr(t, ch); !errors.Is(err, ErrTxDone) {
			t.Errorf("Tx call queued behind its COMMIT: %v, want ErrTxDone", err)
		}
	}
	if err := c.Send(ctx, "/q", []byte("next")); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("SEND", "next", "destination", "/q", "content-length", "4"))
}

// TestTransactCancelledWithStuckWriter: fn fails because ctx ended, and
// the writer is stuck on a server that reads nothing. Transact used to
// wait for its ABORT with a context that never ends: forever. The ABORT
// is queued instead, and goes out when the server reads again. A COMMIT
// that could not be sent is followed by an ABORT, not left open.
func TestTransactCancelledWithStuckWriter(t *testing.T) {
	noLeaks(t)
	for _, fail := range []bool{true, false} {
		t.Run(fmt.Sprint("fn fails ", fail), func(t *testing.T) {
			client, server := net.Pipe()
			t.Cleanup(func() { server.Close() })
			c := rawConnect(t, client, server)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			proceed := make(chan struct{})
			boom := errors.New("boom")
			done := async(func() error {
				return c.Transact(ctx, func(*Tx) error {
					<-proceed
					if fail {
						return boom
					}
					return nil
				})
			})
			readRaw(t, server) // BEGIN
			sendBlock := stuckOn(t, c, server)
			cancel()
			close(proceed)
			want := context.Canceled
			if fail {
				want = boom
			}
			if err := waitErr(t, done); !errors.Is(err, want) {
				t.Fatalf("Transact: %v, want %v", err, want)
			}
			if n := len(c.Transactions()); n != 0 {
				t.Fatalf("%d transactions", n)
			}
			p := stomptest.New(t, server)
			p.SetVersion(V12)
			p.ExpectBytes(sendBlock)
			p.ExpectBytes(stomptest.Wire("ABORT", "", "transaction", "tx-1"))
		})
	}
}
