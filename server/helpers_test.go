package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(&counting{m})
}

// counting runs the tests and then reports how many hostile cases they
// tried.
type counting struct{ m *testing.M }

func (c *counting) Run() int {
	code := c.m.Run()
	if n := tried.Load(); n > 0 {
		fmt.Printf("server: %d hostile-input cases tried\n", n)
	}
	return code
}

// recorder is a Handler that logs every call as a line of text.
type recorder struct {
	mu     sync.Mutex
	events []string

	connectErr  error
	sendErr     error
	onSubscribe func(s *Session, sub *Subscription) error
	sessions    []*Session
}

func (r *recorder) log(format string, args ...any) {
	r.mu.Lock()
	r.events = append(r.events, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *recorder) Events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) Connect(ctx context.Context, s *Session, req *ConnectRequest) error {
	r.log("connect %s login=%s host=%s", req.Version, req.Login, req.Host)
	if r.connectErr != nil {
		return r.connectErr
	}
	r.mu.Lock()
	req.SessionID = fmt.Sprintf("s%d", len(r.sessions)+1)
	r.sessions = append(r.sessions, s)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Send(ctx context.Context, s *Session, m *Message) error {
	r.log("send %s %s", m.Destination, m.Body)
	return r.sendErr
}

func (r *recorder) Subscribe(ctx context.Context, s *Session, sub *Subscription) error {
	r.log("subscribe %s %s %s", sub.ID, sub.Destination, sub.Ack)
	if r.onSubscribe != nil {
		return r.onSubscribe(s, sub)
	}
	return nil
}

func (r *recorder) Unsubscribe(ctx context.Context, s *Session, sub *Subscription) error {
	r.log("unsubscribe %s", sub.ID)
	return nil
}

func (r *recorder) Ack(ctx context.Context, s *Session, a *Ack) error {
	r.log("ack %s %v tx=%s", a.Subscription.ID, a.MessageIDs, a.Transaction)
	return nil
}

func (r *recorder) Nack(ctx context.Context, s *Session, a *Ack) error {
	r.log("nack %s %v tx=%s", a.Subscription.ID, a.MessageIDs, a.Transaction)
	return nil
}

func (r *recorder) Disconnect(ctx context.Context, s *Session, reason error) {
	r.log("disconnect %v", reason)
}

func (r *recorder) Error(ctx context.Context, s *Session, err error) {
	r.log("error %v", err)
}

// client is a scripted raw-frame client on one end of a net.Pipe whose
// other end a Server serves.
type client struct {
	t    testing.TB
	c    net.Conn
	br   *bufio.Reader
	done chan error // ServeConn's result
}

func dial(t testing.TB, srv *Server) *client {
	t.Helper()
	a, b := net.Pipe()
	c := &client{t: t, c: a, br: bufio.NewReader(a), done: make(chan error, 1)}
	go func() { c.done <- srv.ServeConn(context.Background(), b) }()
	return c
}

// send writes raw bytes; the server's reader takes them.
func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, raw); err != nil {
		c.t.Fatalf("send %q: %v", raw, err)
	}
}

// sendAsync writes raw bytes on another goroutine, for writes the server
// may refuse to read.
func (c *client) sendAsync(raw string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := io.WriteString(c.c, raw)
		ch <- err
	}()
	return ch
}

// read returns the next frame's bytes, NUL included (or heart-beat EOLs).
func (c *client) read() string {
	c.t.Helper()
	b, err := c.br.Peek(1)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if b[0] == '\n' {
		c.br.ReadByte()
		return "\n"
	}
	s, err := c.br.ReadString(0)
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	return s
}

func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.read(); got != want {
		c.t.Fatalf("got frame\n%q\nwant\n%q", got, want)
	}
}

// expectPrefix reads a frame and checks how it starts.
func (c *client) expectPrefix(want string) string {
	c.t.Helper()
	got := c.read()
	if !strings.HasPrefix(got, want) {
		c.t.Fatalf("got frame\n%q\nwant prefix\n%q", got, want)
	}
	return got
}

// expectClosed checks the server closed its end (after an ERROR).
func (c *client) expectClosed() {
	c.t.Helper()
	if b, err := c.br.ReadByte(); err == nil {
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("expected close, got %q", string(b)+string(rest))
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
		c.t.Fatalf("expected EOF, got %v", err)
	}
}

func (c *client) close() error {
	c.c.Close()
	return <-c.done
}

// connect sends CONNECT for version v (1.0: no accept-version) and checks
// the CONNECTED with session id sid (heart-beats 0,0, server name "test").
func (c *client) connect(v, sid string) {
	c.t.Helper()
	switch v {
	case "1.0":
		c.send("CONNECT\n\n\x00")
		c.expect("CONNECTED\nsession:" + sid + "\nserver:test\n\n\x00")
	default:
		c.send("CONNECT\naccept-version:" + v + "\nhost:/\n\n\x00")
		c.expect("CONNECTED\nversion:" + v + "\nheart-beat:0,0\nsession:" + sid + "\nserver:test\n\n\x00")
	}
}

// errorFrame renders the ERROR frame the engine sends.
func errorFrame(receipt, msg, body string) string {
	s := "ERROR\n"
	if receipt != "" {
		s += "receipt-id:" + receipt + "\n"
	}
	s += "message:" + msg + "\n"
	if body != "" {
		s += "content-type:text/plain\n"
	}
	return s + fmt.Sprintf("content-length:%d\n\n%s\x00", len(body), body)
}

func testServer(h Handler, opts ...Option) *Server {
	base := []Option{WithHeartBeat(0, 0), WithName("test")}
	return mustNew(h, append(base, opts...)...)
}

// mustNew is New for options known to be valid.
func mustNew(h Handler, opts ...Option) *Server {
	srv, err := New(h, opts...)
	if err != nil {
		panic(err)
	}
	return srv
}

var versions = []string{"1.0", "1.1", "1.2"}
