package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/heartbeat"
)

// deferrer is a Handler whose Send defers every message and keeps the done
// functions for the test to call.
type deferrer struct {
	NopHandler
	mu       sync.Mutex
	dones    []func(error)
	receipts []string
	bodies   []string
	sendErr  error // returned by Send after deferring
}

func (d *deferrer) Send(_ context.Context, _ *Session, m *Message) error {
	done := m.Defer()
	again := m.Defer() // a second Defer does nothing
	again(errors.New("must be ignored"))
	d.mu.Lock()
	d.dones = append(d.dones, done)
	d.receipts = append(d.receipts, m.Receipt)
	d.bodies = append(d.bodies, string(m.Body))
	d.mu.Unlock()
	return d.sendErr
}

func (d *deferrer) Connect(_ context.Context, _ *Session, req *ConnectRequest) error {
	req.SessionID = "s1"
	return nil
}

func (d *deferrer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.dones)
}

func (d *deferrer) done(i int, err error) {
	d.mu.Lock()
	f := d.dones[i]
	d.mu.Unlock()
	f(err)
}

// readable reports whether the server has written something the client
// has not read, waiting a millisecond (of the synctest bubble's clock) for it.
func (c *client) readable() bool {
	c.t.Helper()
	synctest.Wait()
	c.c.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := c.br.Peek(1)
	c.c.SetReadDeadline(time.Time{})
	return err == nil
}

func TestDeferredReceiptsInFrameOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deferrer{}
		c := dial(t, testServer(d))
		c.connect("1.2", "s1")
		c.send("SEND\ndestination:/q\nreceipt:r1\n\none\x00")
		c.send("SEND\ndestination:/q\n\ntwo\x00")                     // deferred, no receipt
		c.send("SUBSCRIBE\nid:0\ndestination:/t\nreceipt:r3\n\n\x00") // waits behind them
		c.send("SEND\ndestination:/q\nreceipt:r4\n\nfour\x00")
		synctest.Wait()
		if n := d.count(); n != 3 {
			t.Fatalf("%d Send calls, want 3", n)
		}
		if got := strings.Join(d.receipts, ","); got != "r1,,r4" {
			t.Fatalf("Message.Receipt values %q", got)
		}
		if c.readable() {
			t.Fatal("a RECEIPT was written before its SEND was done")
		}
		d.done(2, nil) // r4 first: still waits for r1
		if c.readable() {
			t.Fatal("RECEIPT r4 written before r1")
		}
		d.done(0, nil)
		c.expect("RECEIPT\nreceipt-id:r1\n\n\x00")
		if c.readable() {
			t.Fatal("RECEIPT r3 written before the SEND before it was done")
		}
		d.done(1, nil)
		d.done(1, errors.New("a second done is ignored"))
		c.expect("RECEIPT\nreceipt-id:r3\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r4\n\n\x00")
		c.send("DISCONNECT\nreceipt:bye\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
		if err := c.close(); err != nil {
			t.Fatalf("ServeConn = %v", err)
		}
	})
}

func TestDeferredError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deferrer{}
		rec := &recorder{}
		h := &deferRecorder{deferrer: d, rec: rec}
		c := dial(t, testServer(h))
		c.connect("1.2", "s1")
		c.send("SEND\ndestination:/q\nreceipt:r1\n\none\x00")
		c.send("SEND\ndestination:/q\nreceipt:r2\n\ntwo\x00")
		synctest.Wait()
		d.done(1, &ApplicationError{Message: "store full"})
		if c.readable() {
			t.Fatal("ERROR for the second SEND written before the first was done")
		}
		d.done(0, nil)
		c.expect("RECEIPT\nreceipt-id:r1\n\n\x00")
		c.expect(errorFrame("r2", "store full", ""))
		c.expectClosed()
		err := c.close()
		var ae *ApplicationError
		if !errors.As(err, &ae) || ae.Message != "store full" {
			t.Fatalf("ServeConn = %v, want the done error", err)
		}
		if ev := rec.Events(); len(ev) != 2 || ev[0] != "error server: store full" || ev[1] != "disconnect server: store full" {
			t.Fatalf("events %q", ev)
		}
	})
}

// deferRecorder defers like deferrer and records Error and Disconnect.
type deferRecorder struct {
	*deferrer
	rec *recorder
}

func (h *deferRecorder) Disconnect(ctx context.Context, s *Session, reason error) {
	h.rec.Disconnect(ctx, s, reason)
}

func (h *deferRecorder) Error(ctx context.Context, s *Session, err error) { h.rec.Error(ctx, s, err) }

// TestSendWindow: at the window's bound the engine reads nothing more from
// the client until a deferred SEND is done.
func TestSendWindow(t *testing.T) {
	for _, tc := range []struct {
		name          string
		frames, bytes int
		body          string
		want          int // Send calls before any done
	}{
		{"frames", 3, 1 << 20, "x", 3},
		{"bytes", 100, 40, strings.Repeat("y", 10), 2}, // 10+15 bytes each: the second reaches 40
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &deferrer{}
				c := dial(t, testServer(d, WithSendWindow(tc.frames, tc.bytes)))
				c.connect("1.2", "s1")
				const total = 10
				sent := make(chan error, 1)
				go func() {
					var err error
					for i := 0; i < total && err == nil; i++ {
						_, err = c.c.Write([]byte("SEND\ndestination:/q\n\n" + tc.body + "\x00"))
					}
					sent <- err
				}()
				synctest.Wait()
				if n := d.count(); n != tc.want {
					t.Fatalf("%d Send calls with the window full, want %d", n, tc.want)
				}
				select {
				case <-sent:
					t.Fatal("the producer was not pushed back")
				default:
				}
				for i := 0; i < total; i++ {
					synctest.Wait()
					if d.count() <= i {
						t.Fatalf("Send %d not called after %d completions", i+1, i)
					}
					d.done(i, nil)
				}
				if err := <-sent; err != nil {
					t.Fatalf("producer: %v", err)
				}
				c.send("DISCONNECT\nreceipt:bye\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
				c.close()
			})
		})
	}
}

// TestCommitWaitsForDeferredSends: the COMMIT's RECEIPT waits for the
// SENDs of the transaction, which see the COMMIT's receipt.
func TestCommitWaitsForDeferredSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deferrer{}
		c := dial(t, testServer(d, WithSendWindow(2, 1<<20)))
		c.connect("1.2", "s1")
		c.send("BEGIN\ntransaction:t\n\n\x00")
		for i := 0; i < 3; i++ {
			c.send("SEND\ndestination:/q\ntransaction:t\nreceipt:s\n\nm\x00")
			c.expect("RECEIPT\nreceipt-id:s\n\n\x00")
		}
		c.send("COMMIT\ntransaction:t\nreceipt:c\n\n\x00")
		synctest.Wait()
		// The window (2) holds the COMMIT's third SEND back.
		if n := d.count(); n != 2 {
			t.Fatalf("%d Send calls, want 2", n)
		}
		d.done(0, nil)
		synctest.Wait()
		if n := d.count(); n != 3 {
			t.Fatalf("%d Send calls after a completion, want 3", n)
		}
		if got := strings.Join(d.receipts, ","); got != "c,c,c" {
			t.Fatalf("Message.Receipt values %q, want the COMMIT's", got)
		}
		d.done(2, nil)
		if c.readable() {
			t.Fatal("COMMIT RECEIPT before all its SENDs were done")
		}
		d.done(1, nil)
		c.expect("RECEIPT\nreceipt-id:c\n\n\x00")
		c.send("DISCONNECT\n\n\x00")
		c.close()
	})
}

// TestDisconnectWaitsForDeferredSends: the DISCONNECT's RECEIPT is the last
// frame and confirms the deferred SENDs before it.
func TestDisconnectWaitsForDeferredSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deferrer{}
		c := dial(t, testServer(d))
		c.connect("1.2", "s1")
		c.send("SEND\ndestination:/q\nreceipt:r1\n\none\x00")
		c.send("DISCONNECT\nreceipt:bye\n\n\x00")
		synctest.Wait()
		if c.readable() {
			t.Fatal("written before the SEND was done")
		}
		d.done(0, nil)
		c.expect("RECEIPT\nreceipt-id:r1\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
		if err := c.close(); err != nil {
			t.Fatalf("ServeConn = %v", err)
		}
	})
}

// TestDeferredDoneAfterSessionEnd: done after the session ended does
// nothing, and the window wait ends with the session.
func TestDeferredDoneAfterSessionEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deferrer{}
		srv := testServer(d, WithSendWindow(1, 1<<20))
		c := dial(t, srv)
		c.connect("1.2", "s1")
		c.send("SEND\ndestination:/q\nreceipt:r1\n\none\x00")
		synctest.Wait() // the reader now waits for room
		srv.Close()
		if err := <-c.done; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("ServeConn = %v", err)
		}
		d.done(0, errors.New("late"))
		d.done(0, nil)
		c.c.Close()
	})
}

// TestSendErrorAfterDefer: an error from Send after Defer ends the session;
// the done is harmless.
func TestSendErrorAfterDefer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deferrer{sendErr: &ApplicationError{Message: "no"}}
		c := dial(t, testServer(d))
		c.connect("1.2", "s1")
		c.send("SEND\ndestination:/q\nreceipt:r1\n\none\x00")
		c.expect(errorFrame("r1", "no", ""))
		c.expectClosed()
		c.close()
		d.done(0, nil)
	})
}

// slowSender takes 600ms in Send.
type slowSender struct{ NopHandler }

func (slowSender) Connect(_ context.Context, _ *Session, req *ConnectRequest) error {
	req.SessionID = "s1"
	return nil
}

func (slowSender) Send(_ context.Context, _ *Session, _ *Message) error {
	time.Sleep(600 * time.Millisecond)
	return nil
}

// TestSlowHandlerKeepsClient: a Send handler taking 600ms with 100ms
// heart-beats does not make a client that keeps sending heart-beats look
// dead (issue 9).
func TestSlowHandlerKeepsClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := mustNew(slowSender{}, WithName("test"), WithHeartBeat(0, 100*time.Millisecond))
		c := dial(t, srv)
		c.send("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:100,0\n\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:0,100\nsession:s1\nserver:test\n\n\x00")
		stop := make(chan struct{})
		beats := make(chan error, 1)
		go func() { // the client's heart-beats, every 100ms, all along
			tk := time.NewTicker(100 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					beats <- nil
					return
				case <-tk.C:
					if _, err := c.c.Write([]byte("\n")); err != nil {
						beats <- err
						return
					}
				}
			}
		}()
		for i := range 3 {
			c.send("SEND\ndestination:/q\nreceipt:r\n\nx\x00")
			c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
			_ = i
		}
		close(stop)
		if err := <-beats; err != nil {
			t.Fatalf("heart-beat write: %v", err)
		}
		c.send("DISCONNECT\nreceipt:bye\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
		if err := c.close(); err != nil {
			t.Fatalf("ServeConn = %v, want nil (the client was alive)", err)
		}
	})
}

// TestSilentClientStillDetected: the monitor is suspended only while the
// engine is busy; a client silent while nothing runs is still ended.
func TestSilentClientStillDetected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := mustNew(slowSender{}, WithName("test"), WithHeartBeat(0, 100*time.Millisecond))
		c := dial(t, srv)
		c.send("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:100,0\n\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:0,100\nsession:s1\nserver:test\n\n\x00")
		c.send("SEND\ndestination:/q\n\nx\x00")
		start := time.Now()
		err := <-c.done
		if !errors.Is(err, heartbeat.ErrTimeout) {
			t.Fatalf("ServeConn = %v, want a heart-beat timeout", err)
		}
		// 600ms in the handler, then the timeout (2 x 100ms) counted from
		// its end.
		if d := time.Since(start); d < 800*time.Millisecond || d > 900*time.Millisecond {
			t.Fatalf("ended after %v, want about 800ms", d)
		}
		c.c.Close()
	})
}

// TestClientThatNeitherReadsNorSendsIsEnded: a client that asks for
// receipts and reads none, until the engine's reader waits for room to
// queue one, and then goes silent, is ended by the heart-beat monitor:
// only the client can end that wait, so its silence counts (there is no
// write deadline, and the writer is stuck in a write to it).
func TestClientThatNeitherReadsNorSendsIsEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := mustNew(&recorder{}, WithName("test"), WithHeartBeat(0, 100*time.Millisecond), WithOutboundQueue(1))
		c := dial(t, srv)
		c.send("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:100,0\n\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:0,100\nsession:s1\nserver:test\n\n\x00")
		// More than two queues' worth: the writer, stuck writing the
		// first batch it took (the queue is at most controlReserve+1
		// long), cannot take the second.
		var frames strings.Builder
		for i := range 4 * controlReserve {
			fmt.Fprintf(&frames, "SEND\ndestination:/q\nreceipt:r%d\n\nx\x00", i)
		}
		c.sendAsync(frames.String()) // never read back, and then nothing more
		start := time.Now()
		var err error
		select {
		case err = <-c.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the session did not end")
		}
		if !errors.Is(err, heartbeat.ErrTimeout) {
			t.Fatalf("ServeConn = %v, want a heart-beat timeout", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("ended after %v, want about 200ms", d)
		}
		c.c.Close()
	})
}

// TestWindowWaitKeepsClient: while the send window is full the engine
// reads nothing, so the client's heart-beats wait in the transport; the
// client is not declared dead for that, however long the handler takes.
func TestWindowWaitKeepsClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deferrer{}
		srv := mustNew(d, WithName("test"), WithHeartBeat(0, 100*time.Millisecond), WithSendWindow(1, 1<<20))
		c := dial(t, srv)
		c.send("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:100,0\n\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:0,100\nsession:s1\nserver:test\n\n\x00")
		c.send("SEND\ndestination:/q\nreceipt:r1\n\none\x00")
		beat := c.sendAsync("\n") // waits unread: the window is full
		time.Sleep(5 * time.Second)
		select {
		case err := <-c.done:
			t.Fatalf("session ended while the engine waited for the handler: %v", err)
		default:
		}
		d.done(0, nil)
		c.expect("RECEIPT\nreceipt-id:r1\n\n\x00")
		if err := <-beat; err != nil {
			t.Fatal(err)
		}
		// Reading again, the silence is counted again.
		start := time.Now()
		err := <-c.done
		if !errors.Is(err, heartbeat.ErrTimeout) {
			t.Fatalf("ServeConn = %v, want a heart-beat timeout once the client is silent", err)
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Fatalf("silence detected after %v", d)
		}
		c.c.Close()
	})
}
