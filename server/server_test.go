package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

func TestSlowConsumerDeliverNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec, WithOutboundQueue(4), WithLinger(time.Second)))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/topic/t\n\n\x00SUBSCRIBE\nid:1\ndestination:/topic/t\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		s := rec.sessions[0]
		// The client stops reading. The writer holds one batch blocked in
		// the pipe; the queue fills to 4; then Deliver fails at once.
		var written []error
		var mu sync.Mutex
		delivered := 0
		var err error
		for range 100 {
			err = s.Deliver(Delivery{Subscription: "0", Message: &Message{Body: []byte("x")}, Written: func(err error) {
				mu.Lock()
				written = append(written, err)
				mu.Unlock()
			}})
			if err != nil {
				break
			}
			delivered++
			synctest.Wait()
		}
		if !errors.Is(err, ErrSlowConsumer) || delivered > 6 {
			t.Fatalf("after %d deliveries: %v", delivered, err)
		}
		s.Close(&ApplicationError{Message: "slow consumer"})
		start := time.Now()
		err = <-c.done // the linger timer closes the transport
		if time.Since(start) != time.Second {
			t.Fatalf("closed after %v, want the 1s linger", time.Since(start))
		}
		if !strings.Contains(err.Error(), "slow consumer") {
			t.Fatalf("ServeConn = %v", err)
		}
		c.c.Close()
		c.done <- err
		c.close()
		mu.Lock()
		defer mu.Unlock()
		if len(written) != delivered {
			t.Fatalf("%d Written calls for %d deliveries", len(written), delivered)
		}
		for _, err := range written {
			if !errors.Is(err, ErrSessionClosed) {
				t.Fatalf("Written(%v) for a frame the client never read, want ErrSessionClosed: %v", err, written)
			}
		}
		if ev := rec.Events(); !strings.HasPrefix(ev[len(ev)-1], "disconnect server: slow consumer") {
			t.Fatalf("events %q", ev)
		}
	})
}

// TestOutboundBytes: the outbound queue is bounded in bytes too; a message
// larger than the bound is still taken by an empty queue.
func TestOutboundBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec, WithOutboundBytes(100)))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/t\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		s := rec.sessions[0]
		// The client does not read: the writer takes the first message and
		// blocks writing it; the queue then takes 100 bytes.
		deliver := func(n int) error {
			return s.Deliver(Delivery{Subscription: "0", Message: &Message{Body: []byte(strings.Repeat("b", n))}})
		}
		if err := deliver(500); err != nil { // the writer's batch
			t.Fatal(err)
		}
		synctest.Wait()
		if err := deliver(500); err != nil { // an empty queue takes one large message
			t.Fatalf("large message into an empty queue: %v", err)
		}
		if err := deliver(1); !errors.Is(err, ErrSlowConsumer) {
			t.Fatalf("Deliver past the byte bound = %v, want ErrSlowConsumer", err)
		}
		for range 2 {
			c.expectPrefix("MESSAGE\n")
		}
		synctest.Wait()
		if err := deliver(40); err != nil { // the writer's batch again
			t.Fatal(err)
		}
		synctest.Wait()
		for i := range 2 {
			if err := deliver(40); err != nil {
				t.Fatalf("message %d of 40 bytes: %v", i, err)
			}
		}
		if err := deliver(40); !errors.Is(err, ErrSlowConsumer) {
			t.Fatalf("third message of 40 bytes = %v, want ErrSlowConsumer", err)
		}
		c.close()
	})
}

func TestWrittenCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec))
		c.connect("1.1", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/q\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		got := make(chan error, 1)
		m := &Message{ID: "a", Body: []byte("x")}
		if err := rec.sessions[0].Deliver(Delivery{Subscription: "0", Message: m, Written: func(err error) { got <- err }}); err != nil {
			t.Fatal(err)
		}
		c.expect("MESSAGE\ndestination:/q\nmessage-id:a\nsubscription:0\ncontent-length:1\n\nx\x00")
		if err := <-got; err != nil {
			t.Fatalf("Written(%v)", err)
		}
		// A header 1.0 cannot encode is reported, not written.
		c.close()
	})
}

func TestServeTCPAndShutdown(t *testing.T) {
	rec := &recorder{}
	srv := testServer(rec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	io.WriteString(conn, "CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
	if got, _ := br.ReadString(0); got != "CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00" {
		t.Fatalf("got %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if got, _ := br.ReadString(0); got != errorFrame("", "server shutting down", "") {
		t.Fatalf("got %q", got)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after ERROR: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if err := srv.ServeConn(context.Background(), nopRWC{}); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeConn after Shutdown = %v", err)
	}
	if ev := rec.Events(); ev[len(ev)-1] != "disconnect server: server closed" {
		t.Fatalf("events %q", ev)
	}
}

type nopRWC struct{}

func (nopRWC) Read([]byte) (int, error)  { return 0, io.EOF }
func (nopRWC) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
func (nopRWC) Close() error              { return nil }

func TestCloseIsImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := testServer(rec)
		c := dial(t, srv)
		c.connect("1.2", "s1")
		c2 := dial(t, srv) // never connects
		srv.Close()
		c.expectClosed()
		c2.expectClosed()
		if err := c.close(); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("ServeConn = %v", err)
		}
		c2.close()
	})
}

func TestServeConnContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := testServer(rec)
		a, b := net.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(ctx, b) }()
		c := &client{t: t, c: a, br: bufio.NewReader(a), done: done}
		c.connect("1.2", "s1")
		cancel()
		c.expectClosed()
		if err := c.close(); !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("ServeConn = %v", err)
		}
	})
}

func TestWebSocket(t *testing.T) {
	rec := &recorder{}
	deliverOnSubscribe(rec, 1)
	srv := testServer(rec)
	hs := httptest.NewServer(srv.WebSocketHandler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, proto := range []string{"v12.stomp", "v10.stomp"} {
		ws, resp, err := websocket.Dial(ctx, hs.URL, &websocket.DialOptions{Subprotocols: []string{proto}})
		if err != nil {
			t.Fatal(err)
		}
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if ws.Subprotocol() != proto {
			t.Fatalf("subprotocol %q", ws.Subprotocol())
		}
		// CONNECT split across two messages, text then binary.
		ws.Write(ctx, websocket.MessageText, []byte("CONNECT\naccept-version:1.1,1.2\n"))
		ws.Write(ctx, websocket.MessageBinary, []byte("host:/\n\n\x00"))
		typ, msg, err := ws.Read(ctx)
		if err != nil || !bytes.HasPrefix(msg, []byte("CONNECTED\nversion:1.2\n")) {
			t.Fatalf("read %v %q %v", typ, msg, err)
		}
		// Two frames batched in one message; each reply is one message.
		ws.Write(ctx, websocket.MessageText, []byte("SUBSCRIBE\nid:0\ndestination:/q\n\n\x00\nSEND\ndestination:/q\nreceipt:r\n\nhi\x00"))
		_, msg, _ = ws.Read(ctx)
		if !bytes.HasPrefix(msg, []byte("MESSAGE\ndestination:/q\nmessage-id:m1\nsubscription:0\n")) || !bytes.HasSuffix(msg, []byte("body1\x00")) {
			t.Fatalf("got %q", msg)
		}
		_, msg, _ = ws.Read(ctx)
		if string(msg) != "RECEIPT\nreceipt-id:r\n\n\x00" {
			t.Fatalf("got %q", msg)
		}
		ws.Write(ctx, websocket.MessageText, []byte("DISCONNECT\nreceipt:bye\n\n\x00"))
		_, msg, _ = ws.Read(ctx)
		if string(msg) != "RECEIPT\nreceipt-id:bye\n\n\x00" {
			t.Fatalf("got %q", msg)
		}
		if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Fatalf("after DISCONNECT: %v", err)
		}
		ws.CloseNow()
	}
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestServeTLS(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler()) // for its certificate
	defer ts.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ts.TLS)
	if err != nil {
		t.Fatal(err)
	}
	srv := testServer(&recorder{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	cfg := ts.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.ServerName = "example.com"
	conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	io.WriteString(conn, "STOMP\naccept-version:1.2\nhost:/\n\n\x00DISCONNECT\nreceipt:1\n\n\x00")
	if got, _ := br.ReadString(0); got != "CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00" {
		t.Fatalf("got %q", got)
	}
	if got, _ := br.ReadString(0); got != "RECEIPT\nreceipt-id:1\n\n\x00" {
		t.Fatalf("got %q", got)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
}
