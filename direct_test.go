package stomp

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/stomptest"
)

// TestDirectSendsShareWrites: Sends made while the writer is writing are
// buffered by their callers and go out together in the next write, in
// call order: 100 SENDs cost one write, not 100.
func TestDirectSendsShareWrites(t *testing.T) {
	noLeaks(t)
	c, cc, server := countedConnect(t)
	ctx := ctxT(t)
	before := cc.writes.Load()
	if err := c.Send(ctx, "/q", []byte("first")); err != nil { // the writer blocks on it: nobody reads
		t.Fatal(err)
	}
	const n = 100
	for i := range n {
		if err := c.Send(ctx, "/q", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	p := stomptest.New(t, server)
	p.ExpectBytes(stomptest.Wire("SEND", "first", "destination", "/q", "content-length", "5"))
	for i := range n {
		body := fmt.Sprint("m", i)
		p.ExpectBytes(stomptest.Wire("SEND", body, "destination", "/q", "content-length", fmt.Sprint(len(body))))
	}
	// The first SEND's write and one for the rest (a receipt round trip
	// makes sure the writer is done).
	r, err := c.SendReceipt(ctx, "/q", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := p.Expect("SEND")
	p.Send("RECEIPT", "", "receipt-id", f.Header.Get("receipt"))
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if w := cc.writes.Load() - before; w > 3 {
		t.Fatalf("%d writes for %d SENDs and a receipted one, want at most 3", w, n+1)
	}
}

// TestDirectSendsBeforeDisconnect: what the direct path holds goes out
// before DISCONNECT, and nothing after it, while another goroutine keeps
// sending: its Sends either go out before DISCONNECT or fail with
// ErrClosed.
func TestDirectSendsBeforeDisconnect(t *testing.T) {
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	c := rawConnect(t, client, server)
	ctx := ctxT(t)
	p := stomptest.New(t, server)
	p.SetVersion(frame.V12)

	var ok atomic.Int64
	sender := async(func() error {
		for i := 0; ; i++ {
			err := c.Send(ctx, "/q", fmt.Appendf(nil, "%d", i))
			switch {
			case errors.Is(err, ErrClosed):
				return nil
			case err != nil:
				return err
			}
			ok.Add(1)
		}
	})
	// Let some through before disconnecting.
	for i := range 50 {
		if f := p.Expect("SEND"); string(f.Body) != fmt.Sprint(i) {
			t.Fatalf("SEND %q, want %d", f.Body, i)
		}
	}
	done := async(func() error { return c.Disconnect(ctx) })
	next := 50
	for {
		f := p.ReadFrame()
		if f.Command == "SEND" {
			if string(f.Body) != fmt.Sprint(next) {
				t.Fatalf("SEND %q, want %d", f.Body, next)
			}
			next++
			continue
		}
		if f.Command != "DISCONNECT" {
			t.Fatalf("got %v, want SEND or DISCONNECT", f)
		}
		p.Send("RECEIPT", "", "receipt-id", f.Header.Get("receipt"))
		break
	}
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if err := waitErr(t, sender); err != nil {
		t.Fatalf("sender: %v", err)
	}
	if fs := p.ExpectClosed(); len(fs) != 0 {
		t.Fatalf("frames after DISCONNECT: %v", fs)
	}
	if int64(next) != ok.Load() {
		t.Fatalf("%d Sends returned nil, %d SENDs reached the server before DISCONNECT", ok.Load(), next)
	}
}
