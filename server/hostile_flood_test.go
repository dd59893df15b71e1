package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	"github.com/stompout/stomp/frame"
)

// freshWorks checks that a new session on srv still connects and gets a
// RECEIPT.
func freshWorks(t *testing.T, srv *Server) {
	t.Helper()
	c := dial(t, srv)
	c.send("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
	c.expectPrefix("CONNECTED\nversion:1.2\n")
	c.send("SEND\ndestination:/q\nreceipt:fresh\n\nok\x00DISCONNECT\nreceipt:bye\n\n\x00")
	c.expect("RECEIPT\nreceipt-id:fresh\n\n\x00")
	c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
	if err := c.close(); err != nil {
		t.Fatalf("fresh session: ServeConn = %v", err)
	}
}

// TestBudgetsAtTheLimit: every budget admits exactly its bound, and one
// byte (or frame) more is refused with the documented ERROR.
func TestBudgetsAtTheLimit(t *testing.T) {
	send := func(body string) string { return "SEND\ndestination:/q\ntransaction:t\n\n" + body + "\x00" }
	// One SEND in a transaction counts its body and its headers:
	// "destination" ":" "/q" + 2 = 15 bytes, plus the body.
	cases := []struct {
		name  string
		opts  []Option
		ok    string // accepted: ends with a frame asking for receipt "ok"
		over  string // then refused
		error string
	}{
		{"transaction bytes", []Option{WithTransactionBytes(15 + 85)},
			"BEGIN\ntransaction:t\n\n\x00" + send(strings.Repeat("b", 85)) + "COMMIT\ntransaction:t\nreceipt:ok\n\n\x00",
			"BEGIN\ntransaction:t\n\n\x00" + send(strings.Repeat("b", 86)),
			errorFrame("", "transaction too large", "open transactions may hold 100 bytes")},
		{"transaction frames", []Option{WithTransactionLimit(3)},
			"BEGIN\ntransaction:t\n\n\x00" + send("1") + send("2") + "ABORT\ntransaction:t\nreceipt:ok\n\n\x00",
			"BEGIN\ntransaction:t\n\n\x00" + send("1") + send("2") + send("3"),
			errorFrame("", "transaction too large", "open transactions may hold 3 frames")},
		{"subscriptions", []Option{WithSubscriptionLimit(3)},
			subscribeFlood(3) + "UNSUBSCRIBE\nid:0\n\n\x00UNSUBSCRIBE\nid:1\n\n\x00UNSUBSCRIBE\nid:2\nreceipt:ok\n\n\x00",
			subscribeFlood(4),
			errorFrame("", "too many subscriptions", "a session may hold 3 subscriptions")},
		{"body", []Option{WithLimits(frame.Limits{MaxBodySize: 8})},
			"SEND\ndestination:/q\nreceipt:ok\n\n12345678\x00",
			"SEND\ndestination:/q\n\n123456789\x00",
			"ERROR\nmessage:body too large\ncontent-type:text/plain\n"},
		{"headers", []Option{WithLimits(frame.Limits{MaxHeaders: 3})},
			"SEND\ndestination:/q\na:1\nreceipt:ok\n\n\x00",
			"SEND\ndestination:/q\na:1\nb:2\nc:3\n\n\x00",
			"ERROR\nmessage:too many headers\ncontent-type:text/plain\n"},
		{"line", []Option{WithLimits(frame.Limits{MaxLineSize: 24})},
			"SEND\ndestination:/q\nh:" + strings.Repeat("x", 22) + "\nreceipt:ok\n\n\x00",
			"SEND\ndestination:/q\nh:" + strings.Repeat("x", 23) + "\n\n\x00",
			"ERROR\nmessage:line too long\ncontent-type:text/plain\n"},
	}
	tried.Add(int64(2 * len(cases)))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := testServer(&recorder{}, tc.opts...)
				c := dial(t, srv)
				c.connect("1.2", "s1")
				c.send(tc.ok)
				c.expect("RECEIPT\nreceipt-id:ok\n\n\x00")
				w := c.sendAsync(tc.over)
				if got := c.read(); !strings.HasPrefix(got, tc.error) || strings.HasSuffix(tc.error, "\x00") && got != tc.error {
					t.Fatalf("got\n%q\nwant\n%q", got, tc.error)
				}
				c.expectClosed()
				c.close()
				<-w
				freshWorks(t, srv)
			})
		})
	}
}

// TestClientThatNeverReads: a client that sends receipted frames and
// reads nothing is pushed back (the engine stops reading it) with bounded
// memory; other sessions are unaffected and Close ends it.
func TestClientThatNeverReads(t *testing.T) {
	tried.Add(1)
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := testServer(rec, WithOutboundQueue(16))
		c := dial(t, srv)
		c.connect("1.2", "s1")
		var sent atomic.Int64
		writer := make(chan error, 1)
		go func() {
			for i := 0; ; i++ {
				if _, err := io.WriteString(c.c, "SEND\ndestination:/q\nreceipt:r"+strconv.Itoa(i)+"\n\nx\x00"); err != nil {
					writer <- err
					return
				}
				sent.Add(1)
			}
		}()
		synctest.Wait()
		n := sent.Load()
		s := rec.sessions[0]
		s.mu.Lock()
		queued := len(s.out)
		s.mu.Unlock()
		// The queue holds at most the bound plus the control reserve, the
		// writer one batch: the reader stopped taking frames.
		if queued > 16+controlReserve || n > int64(2*(16+controlReserve)+2) {
			t.Fatalf("%d frames sent, %d queued: not pushed back", n, queued)
		}
		freshWorks(t, srv)
		srv.Close()
		if err := <-writer; err == nil {
			t.Fatal("the producer's writes did not fail after Close")
		}
		<-c.done
		c.c.Close()
	})
}

// pacedDeferrer defers every SEND and completes them in order on a worker
// goroutine, one per millisecond: a handler much slower than its producer.
type pacedDeferrer struct {
	NopHandler
	work        chan func(error)
	outstanding atomic.Int64
	most        atomic.Int64
	sends       atomic.Int64
}

func (h *pacedDeferrer) Send(_ context.Context, _ *Session, m *Message) error {
	done := m.Defer()
	n := h.outstanding.Add(1)
	for {
		old := h.most.Load()
		if n <= old || h.most.CompareAndSwap(old, n) {
			break
		}
	}
	h.sends.Add(1)
	h.work <- done
	return nil
}

func (h *pacedDeferrer) run(stop <-chan struct{}) {
	for {
		select {
		case done := <-h.work:
			time.Sleep(time.Millisecond)
			h.outstanding.Add(-1)
			done(nil)
		case <-stop:
			return
		}
	}
}

// TestProducerFasterThanHandler: a producer sending as fast as it can to
// a handler that completes one SEND per millisecond: every RECEIPT comes,
// in order, and the handler never holds more than the send window.
func TestProducerFasterThanHandler(t *testing.T) {
	tried.Add(1)
	synctest.Test(t, func(t *testing.T) {
		const window, total = 8, 2000
		h := &pacedDeferrer{work: make(chan func(error), total)}
		stop := make(chan struct{})
		go h.run(stop)
		srv := testServer(h, WithSendWindow(window, 1<<20))
		c := dial(t, srv)
		c.send("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
		c.expectPrefix("CONNECTED\n")
		produced := make(chan error, 1)
		go func() {
			var err error
			for i := 0; i < total && err == nil; i++ {
				r := ""
				if i%10 == 9 {
					r = "receipt:" + strconv.Itoa(i) + "\n"
				}
				_, err = io.WriteString(c.c, "SEND\ndestination:/q\n"+r+"\nmessage "+strconv.Itoa(i)+"\x00")
			}
			produced <- err
		}()
		start := time.Now()
		for i := 9; i < total; i += 10 {
			c.expect("RECEIPT\nreceipt-id:" + strconv.Itoa(i) + "\n\n\x00")
		}
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < total*time.Millisecond {
			t.Fatalf("%d SENDs completed in %v: the handler's pace was not respected", total, d)
		}
		if m := h.most.Load(); m > window || m < window-1 {
			t.Fatalf("at most %d SENDs outstanding, want the window (%d)", m, window)
		}
		if n := h.sends.Load(); n != total {
			t.Fatalf("%d Send calls, want %d", n, total)
		}
		c.send("DISCONNECT\nreceipt:bye\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
		c.close()
		close(stop)
	})
}

// TestManyConnectionsOpenedAndClosed: 2,000 TCP connections, opened and
// closed in every state (before CONNECT, after it, mid-frame, with a
// DISCONNECT), leave no session behind and the server healthy.
func TestManyConnectionsOpenedAndClosed(t *testing.T) {
	const total, workers = 2000, 16
	tried.Add(total)
	srv := testServer(&recorder{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < total; i += workers {
				if err := oneConnection(addr, i%4); err != nil {
					errs <- fmt.Errorf("connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		srv.mu.Lock()
		n := len(srv.sessions)
		srv.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after every client closed", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	freshWorks(t, srv)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}

// oneConnection opens a connection to addr and closes it in one of four
// ways.
func oneConnection(addr string, how int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	switch how {
	case 0: // close at once
		return nil
	case 1: // close mid-frame
		_, err = io.WriteString(c, "CONNECT\naccept-version:1.2\nho")
		return err
	}
	if _, err := io.WriteString(c, "CONNECT\naccept-version:1.2\nhost:/\n\n\x00"); err != nil {
		return err
	}
	f, err := br.ReadString(0)
	if err != nil || !strings.HasPrefix(f, "CONNECTED\n") {
		return fmt.Errorf("CONNECTED: %q %v", f, err)
	}
	if how == 2 { // connected, then gone
		return nil
	}
	if _, err := io.WriteString(c, "DISCONNECT\nreceipt:d\n\n\x00"); err != nil {
		return err
	}
	if f, err = br.ReadString(0); err != nil || f != "RECEIPT\nreceipt-id:d\n\n\x00" {
		return fmt.Errorf("RECEIPT: %q %v", f, err)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("after the DISCONNECT receipt: %v, want EOF", err)
	}
	return nil
}

// TestByteAtATimeSender: frames that arrive one byte per write (heart-beat
// EOLs and stray NULs between them) are read exactly as whole ones.
func TestByteAtATimeSender(t *testing.T) {
	tried.Add(1)
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		deliverOnSubscribe(rec, 1)
		c := dial(t, testServer(rec))
		trickle := func(s string) {
			for i := range len(s) {
				c.send(s[i : i+1])
			}
		}
		trickle("\n\r\nCONNECT\r\naccept-version:1.2\r\nhost:/\r\n\r\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00")
		trickle("\n\x00\nSEND\ndestination:/q\ncontent-length:3\nreceipt:a\\cb\n\nx\x00y\x00\x00\n")
		c.expect("RECEIPT\nreceipt-id:a\\cb\n\n\x00")
		trickle("SUBSCRIBE\nid:0\ndestination:/q\nreceipt:s\n\n\x00")
		c.expectPrefix("MESSAGE\ndestination:/q\nmessage-id:m1\nsubscription:0\n")
		c.expect("RECEIPT\nreceipt-id:s\n\n\x00")
		if ev := rec.Events(); ev[1] != "send /q x\x00y" {
			t.Fatalf("events %q", ev)
		}
		trickle("DISCONNECT\nreceipt:bye\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
		if err := c.close(); err != nil {
			t.Fatalf("ServeConn = %v", err)
		}
	})
}

// TestJunkWebSocketMessages: what a WebSocket client may send that is not
// STOMP, each with its exact outcome, and then a fresh session works.
func TestJunkWebSocketMessages(t *testing.T) {
	type msg struct {
		typ  websocket.MessageType
		data string
	}
	text := func(s string) msg { return msg{websocket.MessageText, s} }
	binary := func(s string) msg { return msg{websocket.MessageBinary, s} }
	connect := text("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
	cases := []struct {
		name  string
		msgs  []msg
		want  string // the ERROR frame (prefix), "" for none
		close websocket.StatusCode
	}{
		{"invalid UTF-8 text", []msg{connect, text("SEND\ndestination:/q\n\n\xff\xfe\x00")}, "", websocket.StatusInvalidFramePayloadData},
		{"invalid UTF-8 before CONNECT", []msg{text("\xc3\x28")}, "", websocket.StatusInvalidFramePayloadData},
		{"character cut across text messages", []msg{connect, text("SEND\ndestination:/q\n\n\xe6\x97"), text("\xa5\x00")}, "", websocket.StatusInvalidFramePayloadData},
		{"binary junk", []msg{connect, binary("\xff\xfe\xfd\n\n\x00")}, "ERROR\nmessage:unknown command\n", websocket.StatusNormalClosure},
		{"junk before CONNECT", []msg{text("hello\n\n\x00")}, "ERROR\nmessage:unknown command\n", websocket.StatusNormalClosure},
		{"oversize message", []msg{connect, binary("SEND\ndestination:/q\n\n" + strings.Repeat("b", 64) + "\x00")}, "ERROR\nmessage:body too large\n", websocket.StatusNormalClosure},
		{"server frame", []msg{connect, text("MESSAGE\ndestination:/q\nmessage-id:1\nsubscription:0\n\n\x00")}, errorFrame("", "unexpected frame", "MESSAGE is a server frame"), websocket.StatusNormalClosure},
	}
	tried.Add(int64(len(cases) + 1))
	srv := testServer(&recorder{}, WithLimits(frame.Limits{MaxBodySize: 32}))
	hs := httptest.NewServer(srv.WebSocketHandler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dialWS := func() *websocket.Conn {
		ws, resp, err := websocket.Dial(ctx, hs.URL, &websocket.DialOptions{Subprotocols: []string{"v12.stomp"}})
		if err != nil {
			t.Fatal(err)
		}
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		return ws
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := dialWS()
			defer ws.CloseNow()
			for _, m := range tc.msgs {
				if err := ws.Write(ctx, m.typ, []byte(m.data)); err != nil {
					t.Fatalf("write: %v", err)
				}
				if m == connect {
					_, b, err := ws.Read(ctx)
					if err != nil || !bytes.HasPrefix(b, []byte("CONNECTED\n")) {
						t.Fatalf("CONNECTED: %q %v", b, err)
					}
				}
			}
			_, b, err := ws.Read(ctx)
			if tc.want != "" {
				if err != nil || !strings.HasPrefix(string(b), tc.want) || strings.HasSuffix(tc.want, "\x00") && string(b) != tc.want {
					t.Fatalf("got %q %v, want %q", b, err, tc.want)
				}
				_, b, err = ws.Read(ctx)
			}
			if st := websocket.CloseStatus(err); st != tc.close {
				t.Fatalf("read %q %v: close status %v, want %v", b, err, st, tc.close)
			}
		})
	}
	// Empty messages and NULs between frames are skipped.
	ws := dialWS()
	defer ws.CloseNow()
	for _, m := range []msg{text(""), binary("\x00\n"), connect} {
		ws.Write(ctx, m.typ, []byte(m.data))
	}
	if _, b, err := ws.Read(ctx); err != nil || !bytes.HasPrefix(b, []byte("CONNECTED\n")) {
		t.Fatalf("CONNECTED: %q %v", b, err)
	}
	for _, m := range []msg{text("\x00"), text(""), text("SEND\ndestination:/q\nreceipt:r\n\nday 日\x00\x00\n")} {
		ws.Write(ctx, m.typ, []byte(m.data))
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != "RECEIPT\nreceipt-id:r\n\n\x00" {
		t.Fatalf("RECEIPT: %q %v", b, err)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	srv.Close()
}
