package stomp

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompout/stomp/frame"
)

func TestUnknownSubscriptionGoesToUnrouted(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	// RabbitMQ's /temp-queue/ replies arrive with a subscription id that
	// no SUBSCRIBE made.
	p.Send("MESSAGE", "reply", "subscription", "/temp-queue/r", "destination", "/temp-queue/r",
		"message-id", "m-1", "ack", "a-1")
	m := recv(t, c.Unrouted())
	if string(m.Body) != "reply" || m.Subscription != "/temp-queue/r" || m.Destination != "/temp-queue/r" {
		t.Fatalf("unrouted message %+v", m)
	}
	if err := m.Ack(ctx); err != nil { // ack mode unknown: allowed
		t.Fatal(err)
	}
	p.ExpectBytes("ACK\nid:a-1\n\n\x00")
}

func TestUnroutedOverflowIsCounted(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, []Option{WithUnroutedBuffer(1)})
	for i := range 3 {
		p.Send("MESSAGE", "x", "subscription", "nobody", "destination", "/q", "message-id", string(rune('a'+i)))
	}
	var r *Receipt
	if err := c.Send(ctxT(t), "/q", nil, WithReceipt(&r)); err != nil {
		t.Fatal(err)
	}
	p.Expect("SEND")
	p.Send("RECEIPT", "", "receipt-id", r.ID())
	if err := r.Wait(ctxT(t)); err != nil { // the reader went on
		t.Fatal(err)
	}
	if n := c.UnroutedDropped(); n != 2 {
		t.Fatalf("UnroutedDropped = %d, want 2", n)
	}
	if m := recv(t, c.Unrouted()); m.ID != "a" {
		t.Fatalf("kept %q, want the first", m.ID)
	}
}

func TestErrorFrameMidStream(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a")
	if err != nil {
		t.Fatal(err)
	}
	var r1, r2 *Receipt
	if err := c.Send(ctx, "/queue/a", []byte("1"), WithReceipt(&r1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/a", []byte("2"), WithReceipt(&r2)); err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	p.Expect("SEND")
	p.Expect("SEND")
	p.Send("MESSAGE", "before", "subscription", "sub-1", "destination", "/queue/a", "message-id", "1")
	p.Write("ERROR\nmessage:boom\nreceipt-id:" + r2.ID() + "\nx-extra:1\ncontent-length:6\n\ndetail\x00")

	var se *ServerError
	if err := r2.Wait(ctx); !errors.As(err, &se) {
		t.Fatalf("named receipt: %v", err)
	}
	if se.Message != "boom" || se.ReceiptID != r2.ID() || string(se.Body) != "detail" || se.Header.Get("x-extra") != "1" {
		t.Fatalf("ServerError %+v", se)
	}
	if se.Error() != "stomp: server error: boom" {
		t.Fatalf("Error() = %q", se.Error())
	}
	if err := r1.Wait(ctx); !errors.As(err, &se) {
		t.Fatalf("other receipt: %v", err)
	}
	<-c.Done()
	if !errors.As(c.Err(), &se) {
		t.Fatalf("Err = %v", c.Err())
	}
	if m := recv(t, sub.C()); string(m.Body) != "before" {
		t.Fatalf("buffered message %q", m.Body)
	}
	if _, ok := <-sub.C(); ok {
		t.Fatal("subscription still open")
	}
	if !errors.As(sub.Err(), &se) {
		t.Fatalf("sub.Err = %v", sub.Err())
	}
	err = c.Send(ctx, "/q", nil)
	if !errors.Is(err, ErrClosed) || !errors.As(err, &se) {
		t.Fatalf("Send after ERROR: %v", err)
	}
	var r3 *Receipt
	c.Send(ctx, "/q", nil, WithReceipt(&r3))
	if r3 == nil || !errors.Is(r3.Err(), ErrClosed) {
		t.Fatalf("receipt on a closed conn: %v", r3)
	}
	p.ExpectClosed()
}

func TestMissingHeaders(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	a, _ := c.Subscribe(ctx, "/queue/a", WithAck(AckClient))
	b1, _ := c.Subscribe(ctx, "/queue/b")
	c.Subscribe(ctx, "/queue/b")
	for range 3 {
		p.Expect("SUBSCRIBE")
	}
	// No subscription header: routed by destination when that is unambiguous.
	p.Send("MESSAGE", "1", "destination", "/queue/a", "message-id", "1")
	m := recv(t, a.C())
	if m.Subscription != a.ID() {
		t.Fatalf("subscription %q", m.Subscription)
	}
	// No ack header in 1.2: cannot be acked.
	if err := m.Ack(ctx); !errors.Is(err, ErrNotAckable) {
		t.Fatalf("Ack without ack header: %v", err)
	}
	p.Send("MESSAGE", "2", "destination", "/queue/b", "message-id", "2")
	if m := recv(t, c.Unrouted()); string(m.Body) != "2" {
		t.Fatalf("ambiguous message %q", m.Body)
	}
	// No destination, no message-id: delivered as is.
	p.Send("MESSAGE", "3", "subscription", b1.ID())
	if m := recv(t, b1.C()); string(m.Body) != "3" || m.Destination != "" || m.ID != "" {
		t.Fatalf("bare message %+v", m)
	}
	// RECEIPT for nothing, or without receipt-id: ignored.
	p.Send("RECEIPT", "", "receipt-id", "nobody")
	p.Send("RECEIPT", "")
	var r *Receipt
	c.Send(ctx, "/q", nil, WithReceipt(&r))
	p.Expect("SEND")
	p.Send("RECEIPT", "", "receipt-id", r.ID())
	p.Send("RECEIPT", "", "receipt-id", r.ID()) // twice: resolves once
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if (Message{}).Ack(ctx) != ErrNotAckable {
		t.Fatal("zero Message acked")
	}
}

func TestSplitAndBatchedFrames(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V11, nil)
	sub, err := c.Subscribe(ctxT(t), "/queue/a")
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	msg := "MESSAGE\r\nsubscription:sub-1\r\ndestination:/queue/a\r\nmessage-id:1\r\nk:a\\cb\\nc\r\ncontent-length:5\r\n\r\na\x00b\x00c\x00\n\n"
	for i := range len(msg) { // one byte at a time
		p.Write(msg[i : i+1])
	}
	m := recv(t, sub.C())
	if string(m.Body) != "a\x00b\x00c" || m.Header.Get("k") != "a:b\nc" {
		t.Fatalf("split frame: %q %q", m.Body, m.Header.Get("k"))
	}
	// Several frames and heart-beats in one write.
	p.Write("\n" + strings.Repeat("MESSAGE\nsubscription:sub-1\ndestination:/queue/a\n\nx\x00\n\r\n", 3))
	for range 3 {
		if m := recv(t, sub.C()); string(m.Body) != "x" {
			t.Fatalf("batched frame %q", m.Body)
		}
	}
	// Repeated headers: the first wins, all are kept in order.
	p.Write("MESSAGE\nsubscription:sub-1\ndestination:/queue/a\nh:1\nh:2\n\n\x00")
	m = recv(t, sub.C())
	if m.Header.Get("h") != "1" || len(m.Header.Values("h")) != 2 {
		t.Fatalf("repeated header: %v", m.Header.Values("h"))
	}
}

func TestHostileFramesEndTheConnection(t *testing.T) {
	noLeaks(t)
	tests := []struct {
		name  string
		opts  []Option
		bytes string
		want  error
	}{
		{"unknown command", nil, "FOO\n\n\x00", frame.ErrUnknownCommand},
		{"bad escape", nil, "MESSAGE\nk:\\t\n\n\x00", frame.ErrBadEscape},
		{"header without colon", nil, "MESSAGE\nnocolon\n\n\x00", frame.ErrMalformedHeader},
		{"bad content-length", nil, "MESSAGE\ncontent-length:-1\n\n\x00", frame.ErrBadContentLength},
		{"body over the limit", []Option{WithLimits(frame.Limits{MaxBodySize: 4})}, "MESSAGE\n\n12345\x00", frame.ErrBodyTooLarge},
		{"too many headers", []Option{WithLimits(frame.Limits{MaxHeaders: 4})}, "MESSAGE\na:1\nb:2\nc:3\nd:4\ne:5\n\n\x00", frame.ErrTooManyHeaders},
		{"unexpected CONNECTED", nil, "CONNECTED\nversion:1.2\n\n\x00", frame.ErrUnknownCommand},
		{"truncated", nil, "MESSAGE\ncontent-length:10\n\nabc", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := connectPeer(t, V12, tt.opts)
			var r *Receipt
			c.Send(ctxT(t), "/q", nil, WithReceipt(&r))
			p.Expect("SEND")
			p.Write(tt.bytes)
			if tt.want == nil {
				p.Close()
			}
			<-c.Done()
			if tt.want != nil && !errors.Is(c.Err(), tt.want) {
				t.Fatalf("Err = %v, want %v", c.Err(), tt.want)
			}
			if c.Err() == nil || r.Wait(ctxT(t)) == nil {
				t.Fatalf("Err %v, receipt %v: want errors", c.Err(), r.Err())
			}
		})
	}
}

func TestSeveralSubscriptionsSameDestination(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	s1, _ := c.Subscribe(ctx, "/topic/t")
	s2, _ := c.Subscribe(ctx, "/topic/t")
	if _, err := c.Subscribe(ctx, "/topic/t", WithID(s1.ID())); err == nil {
		t.Fatal("duplicate id accepted")
	}
	p.Expect("SUBSCRIBE")
	p.Expect("SUBSCRIBE")
	p.Send("MESSAGE", "to2", "subscription", s2.ID(), "destination", "/topic/t")
	p.Send("MESSAGE", "to1", "subscription", s1.ID(), "destination", "/topic/t")
	if m := recv(t, s1.C()); string(m.Body) != "to1" {
		t.Fatalf("s1 got %q", m.Body)
	}
	if m := recv(t, s2.C()); string(m.Body) != "to2" {
		t.Fatalf("s2 got %q", m.Body)
	}
	// After Unsubscribe, late messages go to Unrouted.
	if err := s1.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	p.Expect("UNSUBSCRIBE")
	p.Send("MESSAGE", "late", "subscription", s1.ID(), "destination", "/topic/t")
	if m := recv(t, c.Unrouted()); string(m.Body) != "late" {
		t.Fatalf("late message %q", m.Body)
	}
	select {
	case <-c.Done():
		t.Fatal(c.Err())
	case <-time.After(10 * time.Millisecond):
	}
}

// syncBuffer is a log sink safe for the connection's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDropsAreLogged: what the client cannot deliver is logged at warn
// level, never dropped silently.
func TestDropsAreLogged(t *testing.T) {
	noLeaks(t)
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, p := connectPeer(t, V12, []Option{WithLogger(logger), WithUnroutedBuffer(1), WithLogin("u", "secret")})
	sub, _ := c.Subscribe(ctxT(t), "/q", WithBuffer(1), WithOverflow(OverflowUnsubscribe))
	p.Expect("SUBSCRIBE")
	for i := range 3 {
		p.Send("MESSAGE", "x", "subscription", sub.ID(), "destination", "/q", "message-id", fmt.Sprint("m", i))
	}
	p.Expect("UNSUBSCRIBE")
	for !strings.Contains(logs.String(), "unrouted message dropped") {
		time.Sleep(time.Millisecond)
	}
	out := logs.String()
	for _, want := range []string{"level=WARN", "slow consumer", "subscription=" + sub.ID(), "message-id=m2", "dropped=1"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Error("passcode logged")
	}
}
