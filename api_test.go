package stomp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompout/stomp/internal/stomptest"
)

// gatedConn blocks the client's writes while held, so that a test can
// keep the writer inside a write.
type gatedConn struct {
	net.Conn
	mu      sync.Mutex
	gate    chan struct{} // nil: open
	entered chan struct{} // capacity 1: a write is blocked
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		select {
		case g.entered <- struct{}{}:
		default:
		}
		<-gate
	}
	return g.Conn.Write(p)
}

func (g *gatedConn) hold() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedConn) release() {
	g.mu.Lock()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
}

func connectGated(t *testing.T) (*Conn, *stomptest.Peer, *gatedConn) {
	t.Helper()
	client, p := stomptest.Pipe(t)
	g := &gatedConn{Conn: client, entered: make(chan struct{}, 1)}
	type result struct {
		c   *Conn
		err error
	}
	rc := make(chan result, 1)
	go func() {
		c, err := Connect(context.Background(), g)
		rc <- result{c, err}
	}()
	p.Accept(V12, "session", "s")
	r := <-rc
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, p, g
}

// A generated id skips one that WithID took: before, the generated
// "sub-2" collided with WithID("sub-2") and Subscribe failed.
func TestGeneratedIDSkipsWithID(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	if _, err := c.Subscribe(ctx, "/queue/a"); err != nil { // sub-1
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	mine, err := c.Subscribe(ctx, "/queue/b", WithID("sub-2"))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	s, err := c.Subscribe(ctx, "/queue/c")
	if err != nil {
		t.Fatalf("generated id after WithID(\"sub-2\"): %v", err)
	}
	if s.ID() == "sub-2" || s.ID() == "sub-1" {
		t.Fatalf("generated id %q", s.ID())
	}
	p.Expect("SUBSCRIBE")
	// Nor does it reuse the id of a subscription that just ended, whose
	// late messages would reach the new one.
	if err := mine.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	p.Expect("UNSUBSCRIBE")
	if _, err := c.Subscribe(ctx, "/queue/d", WithID("sub-4")); err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	for range 3 {
		s, err := c.Subscribe(ctx, "/queue/e")
		if err != nil {
			t.Fatal(err)
		}
		p.Expect("SUBSCRIBE")
		if s.ID() == "sub-2" || s.ID() == "sub-4" {
			t.Fatalf("generated id %q is taken", s.ID())
		}
	}
}

// After a Subscribe whose ctx ended once its SUBSCRIBE was buffered, the
// client sends UNSUBSCRIBE; an Ack of a message the server sent in between
// must send nothing (the broker no longer knows its ack id and would answer
// ERROR). Before, it sent the ACK.
func TestAckAfterCancelledSubscribe(t *testing.T) {
	noLeaks(t)
	c, p, g := connectGated(t)
	ctx := ctxT(t)
	g.hold()
	cctx, cancel := context.WithCancel(ctx)
	res := make(chan error, 1)
	go func() {
		_, err := c.Subscribe(cctx, "/queue/a", WithAck(AckClientIndividual), WithID("s"))
		res <- err
	}()
	<-g.entered // the writer is flushing the SUBSCRIBE
	cancel()
	if err := <-res; !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe: %v", err)
	}
	g.release()
	p.Expect("SUBSCRIBE")
	p.ExpectBytes(stomptest.Wire("UNSUBSCRIBE", "", "id", "s"))
	p.Send("MESSAGE", "late", "subscription", "s", "destination", "/queue/a", "message-id", "m1", "ack", "a1")
	m := recv(t, c.Unrouted())
	if err := m.Ack(ctx); !errors.Is(err, ErrSubscriptionEnded) {
		t.Fatalf("Ack of a late message: %v", err)
	}
	marker(t, c, p) // no ACK before it
}

// Disconnect must not report a clean end when its DISCONNECT was never
// written because the transport was lost first. Before, it returned nil.
func TestDisconnectNotWritten(t *testing.T) {
	noLeaks(t)
	c, p, g := connectGated(t)
	ctx := ctxT(t)
	g.hold()
	sent := async(func() error { return c.Send(ctx, "/queue/a", []byte("x")) })
	<-g.entered // the writer is stuck writing the SEND
	disc := async(func() error { return c.Disconnect(ctx) })
	for !c.disconnecting.Load() {
		waitFor(t)
	}
	p.Close()
	g.release() // the write fails: the transport is lost
	err := waitErr(t, disc)
	if err == nil || !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("Disconnect: %v, want an error matching ErrConnectionLost", err)
	}
	if !strings.Contains(err.Error(), "DISCONNECT") {
		t.Errorf("error %q does not say the DISCONNECT was not written", err)
	}
	waitErr(t, sent)
}

// waitFor yields while a test waits for another goroutine to reach a state
// it cannot signal.
func waitFor(t *testing.T) {
	t.Helper()
	select {
	case <-ctxT(t).Done():
		t.Fatal("timed out")
	default:
	}
	runtimeGosched()
}

// Unrouted drops are counted per subscription too.
func TestUnroutedDroppedPerSubscription(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, []Option{WithUnroutedBuffer(1)})
	ctx := ctxT(t)
	a, err := c.Subscribe(ctx, "/queue/a", WithID("a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Subscribe(ctx, "/queue/b", WithID("b"))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	p.Expect("SUBSCRIBE")
	for _, s := range []*Subscription{a, b} {
		if err := s.Unsubscribe(ctx); err != nil {
			t.Fatal(err)
		}
		p.Expect("UNSUBSCRIBE")
	}
	synced(t, c, p, func() {
		for i, id := range []string{"a", "a", "b", "a"} {
			p.Send("MESSAGE", "late", "subscription", id, "destination", "/queue/"+id, "message-id", string(rune('0'+i)))
		}
	})
	// The first (a) fills Unrouted; then a, b, a are dropped.
	if a.UnroutedDropped() != 2 || b.UnroutedDropped() != 1 || c.UnroutedDropped() != 3 {
		t.Fatalf("dropped: a %d b %d conn %d", a.UnroutedDropped(), b.UnroutedDropped(), c.UnroutedDropped())
	}
}

// WithWebSocketHeader's headers go in the handshake.
func TestWebSocketHeader(t *testing.T) {
	noLeaks(t)
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	h := http.Header{}
	h.Set("Cookie", "session=abc")
	h.Set("Authorization", "Bearer t0k3n")
	opt := WithWebSocketHeader(h)
	h.Set("Cookie", "changed") // copied by the option
	_, err := Dial(ctxT(t), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", opt)
	if err == nil {
		t.Fatal("Dial succeeded against a server that refuses")
	}
	hdr := <-got
	if hdr.Get("Cookie") != "session=abc" || hdr.Get("Authorization") != "Bearer t0k3n" || hdr.Get("Sec-WebSocket-Protocol") == "" {
		t.Fatalf("handshake headers %v", hdr)
	}
}

// DecodeJSON decodes into a new value of the type asked for.
func TestDecodeJSON(t *testing.T) {
	type order struct {
		ID    int      `json:"id"`
		Items []string `json:"items"`
	}
	o, err := DecodeJSON[order](Message{Body: []byte(`{"id":7,"items":["tea"]}`)})
	if err != nil || o.ID != 7 || len(o.Items) != 1 || o.Items[0] != "tea" {
		t.Fatalf("%+v %v", o, err)
	}
	if _, err := DecodeJSON[order](Message{ID: "m-9", Body: []byte(`{"id":"x"}`)}); err == nil ||
		!strings.HasPrefix(err.Error(), "stomp: ") || !strings.Contains(err.Error(), "m-9") {
		t.Fatalf("bad JSON: %v", err)
	}
}

// A handler is unit-tested with NewTestMessage and an AckRecorder: no
// broker, no Conn.
func TestNewTestMessage(t *testing.T) {
	var rec AckRecorder
	handler := func(ctx context.Context, m Message) error {
		if string(m.Body) == "bad" {
			return m.Nack(ctx)
		}
		return m.Ack(ctx)
	}
	ctx := context.Background()
	good := NewTestMessage(Message{ID: "1", Destination: "/queue/a", Body: []byte("good")}, &rec)
	bad := NewTestMessage(Message{ID: "2", Body: []byte("bad")}, &rec)
	if err := handler(ctx, good); err != nil {
		t.Fatal(err)
	}
	if err := handler(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if err := good.Ack(ctx); !errors.Is(err, ErrAlreadyAcked) {
		t.Fatalf("second Ack: %v", err)
	}
	var r *Receipt
	if err := bad.Ack(ctx, WithReceipt(&r)); !errors.Is(err, ErrAlreadyAcked) || !errors.Is(r.Err(), ErrAlreadyAcked) {
		t.Fatalf("Ack after Nack: %v, receipt %v", err, r.Err())
	}
	if a, n := rec.Acked(), rec.Nacked(); len(a) != 1 || a[0].ID != "1" || len(n) != 1 || n[0].ID != "2" {
		t.Fatalf("acked %v nacked %v", a, n)
	}
	if err := NewTestMessage(Message{}, nil).Ack(ctx); !errors.Is(err, ErrNotAckable) {
		t.Fatalf("no Acker: %v", err)
	}
}

func runtimeGosched() { runtime.Gosched() }

// RabbitMQ answers an ACK that was in flight when it took an UNSUBSCRIBE
// with ERROR "Subscription not found" and keeps the connection. That
// answer may be read before the client has finished writing the
// UNSUBSCRIBE (the subscription is retired once the frame is flushed): it
// ends nothing then either. Seen against RabbitMQ once reads got faster
// (TestInteropPoolGracefulStop, about 1 run in 30).
func TestSubscriptionNotFoundWhileUnsubscribing(t *testing.T) {
	noLeaks(t)
	c, p, g := connectGated(t)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a") // sub-1
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	other, err := c.Subscribe(ctx, "/queue/b") // sub-2
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	g.hold()
	done := make(chan error, 1)
	go func() { done <- sub.Unsubscribe(ctx) }()
	<-g.entered // the UNSUBSCRIBE's write is held
	// The frames go out over the pipe, which blocks while nobody reads:
	// raw, from a goroutine, so that a client that stopped reading fails
	// the test instead of hanging it.
	frames := stomptest.Wire("ERROR", "Subscription to sub-1 not found", "message", "Subscription not found") +
		stomptest.Wire("MESSAGE", "after", "destination", "/queue/b", "message-id", "m1", "subscription", "sub-2")
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		p.Conn.Write([]byte(frames))
	}()
	defer func() { p.Conn.Close(); <-sent }()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var got string
	select {
	case m := <-other.C(): // read after the ERROR: the ERROR was handled
		got = string(m.Body)
	case <-wait.Done():
	}
	n := c.IgnoredErrors()
	g.release()
	if got != "after" || n != 1 {
		t.Fatalf("after the ERROR: message %q, %d ERRORs ignored, connection error %v; want \"after\", 1, none", got, n, c.Err())
	}
	p.Expect("UNSUBSCRIBE")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// An ERROR "Subscription not found" that names another subscription, one
// whose id merely starts with the unsubscribing one's ("sub-12" against
// "sub-1"), is not the answer to that UNSUBSCRIBE: it ends the connection
// as any ERROR does. Before, a substring match let it pass.
func TestSubscriptionNotFoundNamesAnother(t *testing.T) {
	noLeaks(t)
	c, p, g := connectGated(t)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a", WithID("sub-1"))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	if _, err := c.Subscribe(ctx, "/queue/b", WithID("sub-12")); err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	g.hold()
	done := make(chan error, 1)
	go func() { done <- sub.Unsubscribe(ctx) }()
	<-g.entered // sub-1's UNSUBSCRIBE is on its way
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		p.Conn.Write([]byte(stomptest.Wire("ERROR", "Subscription to sub-12 not found", "message", "Subscription not found")))
	}()
	defer func() { p.Conn.Close(); <-sent }()
	<-sent // read by the client (a pipe's write returns then)
	// The session ends only once its writer is let go; whether the
	// ERROR is checked against sub-1 unsubscribing or already retired,
	// it must not pass.
	g.release()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case <-c.Done():
	case <-wait.Done():
		t.Fatalf("the ERROR about sub-12 was ignored (%d ignored)", c.IgnoredErrors())
	}
	var se *ServerError
	if !errors.As(c.Err(), &se) || c.IgnoredErrors() != 0 {
		t.Fatalf("Err %v, %d ERRORs ignored; want the ServerError, none ignored", c.Err(), c.IgnoredErrors())
	}
	<-done // the Unsubscribe ends with the connection, whatever it says
}

func TestMentions(t *testing.T) {
	for _, tt := range []struct {
		text, id string
		want     bool
	}{
		{"Subscription to sub-1 not found", "sub-1", true},
		{"Subscription to sub-12 not found", "sub-1", false},
		{"sub-12 and sub-1", "sub-1", true},
		{"sub-1", "sub-1", true},
		{"There is no current subscription with tag 'T_sub-1'.", "sub-1", true}, // RabbitMQ's
		{"There is no current subscription with tag 'T_sub-12'.", "sub-1", false},
		{"'sub-1'", "sub-1", true},
		{"sub-1.2", "sub-1", false},
		{"Subscription not found: sub-1.", "sub-1", true},
		{"Subscription not found: sub-1. Bye", "sub-1", true},
		{"anything", "", false},
	} {
		if got := mentions(tt.text, tt.id); got != tt.want {
			t.Errorf("mentions(%q, %q) = %v, want %v", tt.text, tt.id, got, tt.want)
		}
	}
}
