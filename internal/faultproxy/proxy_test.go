package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// These tests run over real loopback sockets, which a synctest bubble
// cannot put on fake time. Waits for something to happen are bounded by
// timeout; the claim "nothing arrives" is checked with a read deadline of
// quiet, the only place a test waits on the clock.
const (
	timeout = 5 * time.Second
	quiet   = 150 * time.Millisecond
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// target is a server for the proxy to forward to: each connection it
// accepts is handed to the test on conns, or echoed back when echo is set.
type target struct {
	ln    net.Listener
	conns chan net.Conn
	wg    sync.WaitGroup

	mu   sync.Mutex
	open []net.Conn
}

func newTarget(t *testing.T, echo bool) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg := &target{ln: ln, conns: make(chan net.Conn, 16)}
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tg.mu.Lock()
			tg.open = append(tg.open, c)
			tg.mu.Unlock()
			if !echo {
				tg.conns <- c
				continue
			}
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				io.Copy(c, c)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tg.mu.Lock()
		for _, c := range tg.open {
			c.Close()
		}
		tg.mu.Unlock()
		tg.wg.Wait()
	})
	return tg
}

func (tg *target) addr() string { return tg.ln.Addr().String() }

// accept returns the next connection the target accepted.
func (tg *target) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-tg.conns:
		return c
	case <-time.After(timeout):
		t.Fatal("the target accepted no connection")
		return nil
	}
}

// noAccept checks that the target accepts nothing for quiet.
func (tg *target) noAccept(t *testing.T) {
	t.Helper()
	select {
	case c := <-tg.conns:
		t.Fatalf("the target accepted a connection from %v", c.RemoteAddr())
	case <-time.After(quiet):
	}
}

func start(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// expect reads exactly len(want) bytes from c and compares them.
func expect(t *testing.T, c net.Conn, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read %q: got %q, %v", want, got, err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectSilence checks that nothing arrives on c for quiet and that c is
// still open.
func expectSilence(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(quiet))
	var b [64]byte
	n, err := c.Read(b[:])
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %q, %v; want nothing, the connection open", b[:n], err)
	}
}

// readToEnd reads c until it ends and returns what came; the end must be
// EOF or a reset, within timeout.
func readToEnd(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(timeout))
	b, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection did not end (read %d bytes)", len(b))
	}
	return b
}

func waitActive(t *testing.T, p *Proxy, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	if err := p.WaitActive(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func TestForwardsBothWays(t *testing.T) {
	tg := newTarget(t, false)
	p := start(t, tg.addr())
	if want := "tcp://" + p.Addr(); p.URL() != want {
		t.Errorf("URL %q, want %q", p.URL(), want)
	}
	c := dial(t, p)
	s := tg.accept(t)
	write(t, c, "hello")
	expect(t, s, "hello")
	write(t, s, "world!")
	expect(t, c, "world!")
	if p.Accepted() != 1 || p.Active() != 1 {
		t.Errorf("Accepted %d, Active %d; want 1, 1", p.Accepted(), p.Active())
	}
	if p.Forwarded(ClientToServer) != 5 || p.Forwarded(ServerToClient) != 6 || p.Forwarded(Both) != 11 {
		t.Errorf("Forwarded %d, %d, %d", p.Forwarded(ClientToServer), p.Forwarded(ServerToClient), p.Forwarded(Both))
	}

	// A half-close crosses the proxy: the other way keeps working.
	c.(*net.TCPConn).CloseWrite()
	if b := readToEnd(t, s); len(b) != 0 {
		t.Errorf("after the client's half-close the target read %q", b)
	}
	write(t, s, "still here")
	expect(t, c, "still here")
	s.Close()
	if b := readToEnd(t, c); len(b) != 0 {
		t.Errorf("read %q after the target closed", b)
	}
	waitActive(t, p, 0)
}

// More bytes than every buffer of the proxy, both ways at once, arrive
// complete and in order.
func TestForwardsLargeStreams(t *testing.T) {
	tg := newTarget(t, true)
	p := start(t, tg.addr())
	c := dial(t, p)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	errc := make(chan error, 1)
	go func() {
		c.SetWriteDeadline(time.Now().Add(4 * timeout))
		_, err := c.Write(data)
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(4 * timeout))
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the echoed stream differs from what was sent")
	}
	if p.Forwarded(ClientToServer) != int64(len(data)) || p.Forwarded(ServerToClient) != int64(len(data)) {
		t.Errorf("Forwarded %d, %d; want %d each", p.Forwarded(ClientToServer), p.Forwarded(ServerToClient), len(data))
	}
}

func TestCut(t *testing.T) {
	tg := newTarget(t, false)
	p := start(t, tg.addr())
	c1 := dial(t, p)
	s1 := tg.accept(t) // the proxy dials the target in parallel: one at a time
	c2 := dial(t, p)
	s2 := tg.accept(t)
	write(t, c1, "a")
	expect(t, s1, "a")
	write(t, c2, "b")
	expect(t, s2, "b")
	waitActive(t, p, 2)

	p.Cut()
	if p.Active() != 0 {
		t.Errorf("Active %d right after Cut", p.Active())
	}
	for _, c := range []net.Conn{c1, c2, s1, s2} {
		if b := readToEnd(t, c); len(b) != 0 {
			t.Errorf("read %q from a cut connection", b)
		}
	}

	// New connections go through as before.
	c3 := dial(t, p)
	s3 := tg.accept(t)
	write(t, c3, "after the cut")
	expect(t, s3, "after the cut")
	write(t, s3, "ok")
	expect(t, c3, "ok")
	if p.Accepted() != 3 {
		t.Errorf("Accepted %d, want 3", p.Accepted())
	}
}

func TestStallAndResume(t *testing.T) {
	tg := newTarget(t, false)
	p := start(t, tg.addr())
	c := dial(t, p)
	s := tg.accept(t)
	write(t, c, "before")
	expect(t, s, "before")

	p.Stall()
	p.Stall() // twice is once
	write(t, c, "held up")
	write(t, s, "held down")
	expectSilence(t, s)
	expectSilence(t, c)

	// A connection made during the stall reaches the target but carries
	// nothing either.
	c2 := dial(t, p)
	s2 := tg.accept(t)
	write(t, c2, "new")
	expectSilence(t, s2)
	if p.Active() != 2 {
		t.Errorf("Active %d during the stall, want 2", p.Active())
	}

	p.Resume()
	expect(t, s, "held up")
	expect(t, c, "held down")
	expect(t, s2, "new")
	write(t, c, "after")
	expect(t, s, "after")
	p.Resume() // without a stall: nothing

	// A stalled connection can still be cut.
	p.Stall()
	write(t, c, "lost")
	p.Cut()
	if b := readToEnd(t, s); len(b) != 0 {
		t.Errorf("the target read %q from a connection cut while stalled", b)
	}
	readToEnd(t, c)
	p.Resume()
}

// Under a stall TCP pushes back: a writer far ahead of the proxy blocks
// instead of the proxy buffering without bound, and nothing is lost.
func TestStallPushesBack(t *testing.T) {
	tg := newTarget(t, false)
	p := start(t, tg.addr())
	c := dial(t, p)
	s := tg.accept(t)
	p.Stall()
	data := bytes.Repeat([]byte("0123456789abcdef"), 2<<20) // 32 MiB
	c.SetWriteDeadline(time.Now().Add(quiet))
	n, err := c.Write(data)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a 32 MiB write into a stalled proxy returned %d, %v", n, err)
	}
	p.Resume()
	s.SetReadDeadline(time.Now().Add(timeout))
	got := make([]byte, n)
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, data[:n]) {
		t.Fatalf("after Resume: %v, or the bytes differ", err)
	}
}

func TestCutAfter(t *testing.T) {
	tg := newTarget(t, false)
	p := start(t, tg.addr())
	data := bytes.Repeat([]byte("abcdefghij"), 500) // 5000 bytes

	// Client to server: the target reads exactly 1234 bytes, then EOF.
	p.CutAfter(ClientToServer, 1234)
	c := dial(t, p)
	s := tg.accept(t)
	for i := 0; i < len(data); i += 1000 {
		c.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := c.Write(data[i : i+1000]); err != nil {
			break // the cut may come first
		}
	}
	if got := readToEnd(t, s); !bytes.Equal(got, data[:1234]) {
		t.Errorf("the target read %d bytes, want exactly the first 1234", len(got))
	}
	readToEnd(t, c)
	waitActive(t, p, 0)

	// The rule was for one connection.
	c = dial(t, p)
	s = tg.accept(t)
	write(t, c, string(data))
	expect(t, s, string(data))
	c.Close()
	s.Close()
	waitActive(t, p, 0)

	// Server to client.
	p.CutAfter(ServerToClient, 700)
	c = dial(t, p)
	s = tg.accept(t)
	write(t, c, "request") // not counted
	expect(t, s, "request")
	s.SetWriteDeadline(time.Now().Add(timeout))
	s.Write(data)
	if got := readToEnd(t, c); !bytes.Equal(got, data[:700]) {
		t.Errorf("the client read %d bytes, want exactly the first 700", len(got))
	}
	readToEnd(t, s)
	waitActive(t, p, 0)

	// Both: 10 bytes over the two directions.
	p.CutAfter(Both, 10)
	c = dial(t, p)
	s = tg.accept(t)
	write(t, c, "123456")
	expect(t, s, "123456")
	write(t, s, "abcdef")
	if got := readToEnd(t, c); string(got) != "abcd" {
		t.Errorf("the client read %q, want %q", got, "abcd")
	}
	readToEnd(t, s)
	waitActive(t, p, 0)

	// 0: the first byte is not forwarded.
	p.CutAfter(ClientToServer, 0)
	c = dial(t, p)
	s = tg.accept(t)
	write(t, c, "x")
	if got := readToEnd(t, s); len(got) != 0 {
		t.Errorf("CutAfter(0): the target read %q", got)
	}
	readToEnd(t, c)
}

func TestRefuse(t *testing.T) {
	tg := newTarget(t, false)
	p := start(t, tg.addr())
	p.Refuse(true)
	for range 3 {
		c := dial(t, p) // accepted ...
		if b := readToEnd(t, c); len(b) != 0 {
			t.Errorf("read %q from a refused connection", b)
		}
	}
	tg.noAccept(t) // ... and never forwarded
	if p.Accepted() != 3 || p.Active() != 0 {
		t.Errorf("Accepted %d, Active %d; want 3, 0", p.Accepted(), p.Active())
	}

	p.Refuse(false)
	c := dial(t, p)
	s := tg.accept(t)
	write(t, c, "let in")
	expect(t, s, "let in")

	// Refusing leaves open connections alone.
	p.Refuse(true)
	write(t, c, "still open")
	expect(t, s, "still open")
}

func TestDownAndUp(t *testing.T) {
	tg := newTarget(t, false)
	p := start(t, tg.addr())
	c := dial(t, p)
	s := tg.accept(t)
	write(t, c, "up")
	expect(t, s, "up")

	p.Down()
	p.Down() // twice is once
	for _, c := range []net.Conn{c, s} {
		if b := readToEnd(t, c); len(b) != 0 {
			t.Errorf("read %q from a connection cut by Down", b)
		}
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), timeout); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial while Down: %v, want connection refused", err)
	}
	tg.noAccept(t)

	if err := p.Up(); err != nil {
		t.Fatal(err)
	}
	if err := p.Up(); err != nil {
		t.Fatalf("Up while up: %v", err)
	}
	c = dial(t, p)
	s = tg.accept(t)
	write(t, c, "up again")
	expect(t, s, "up again")

	p.Close()
	if err := p.Up(); err == nil {
		t.Error("Up after Close: no error")
	}
	p.Down()
}

func TestSetTarget(t *testing.T) {
	a, b := newTarget(t, false), newTarget(t, false)
	p := start(t, a.addr())
	c1 := dial(t, p)
	s1 := a.accept(t)
	p.SetTarget(b.addr())
	c2 := dial(t, p)
	s2 := b.accept(t)
	write(t, c2, "to b")
	expect(t, s2, "to b")
	write(t, c1, "still to a") // an open connection stays where it was
	expect(t, s1, "still to a")
	a.noAccept(t)
}

// A target that is down: the client's connection is accepted and closed.
func TestTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := start(t, addr)
	c := dial(t, p)
	if b := readToEnd(t, c); len(b) != 0 {
		t.Errorf("read %q", b)
	}
	waitActive(t, p, 0)
}

func TestSetDelay(t *testing.T) {
	tg := newTarget(t, true)
	p := start(t, tg.addr())
	c := dial(t, p)
	write(t, c, "warm")
	expect(t, c, "warm")

	const d = 100 * time.Millisecond
	p.SetDelay(d)
	begin := time.Now()
	write(t, c, "ping")
	expect(t, c, "ping")
	if rtt := time.Since(begin); rtt < 2*d {
		t.Errorf("round trip %v with %v each way, want at least %v", rtt, d, 2*d)
	}

	// Latency, not a rate limit: ten chunks sent in a row take about one
	// delay each way, not ten.
	begin = time.Now()
	for i := range 10 {
		write(t, c, string(rune('a'+i)))
		time.Sleep(5 * time.Millisecond) // separate chunks
	}
	expect(t, c, "abcdefghij")
	if took := time.Since(begin); took < 2*d || took > 8*d {
		t.Errorf("ten pipelined chunks took %v, want about %v", took, 2*d+50*time.Millisecond)
	}
	p.SetDelay(0)
}

func TestWaitActiveEndsWithCtx(t *testing.T) {
	p := start(t, "127.0.0.1:1")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.WaitActive(ctx, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitActive = %v", err)
	}
}

// Close ends everything: connections in every state, a CutAfter drain,
// a stall; then calls after Close do nothing harmful. goleak in TestMain
// checks that no goroutine is left.
func TestClose(t *testing.T) {
	tg := newTarget(t, false)
	p, err := Start(tg.addr())
	if err != nil {
		t.Fatal(err)
	}
	c1 := dial(t, p)
	s1 := tg.accept(t)
	write(t, c1, "x")
	expect(t, s1, "x")

	p.CutAfter(ClientToServer, 1)
	c2 := dial(t, p)
	s2 := tg.accept(t)
	write(t, c2, "yz")
	expect(t, s2, "y") // s2 unread further and open: the proxy is draining it
	write(t, s2, "keeps the drain busy")

	p.Stall()
	c3 := dial(t, p)
	tg.accept(t)
	write(t, c3, "stalled")

	begin := time.Now()
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if took := time.Since(begin); took > drainTime/2 {
		t.Errorf("Close took %v", took)
	}
	for _, c := range []net.Conn{c1, c3, s1} {
		readToEnd(t, c)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	p.Cut()
	p.Stall()
	p.Resume()
	p.Refuse(true)
	p.SetDelay(time.Second)
	p.CutAfter(Both, 3)
	p.SetTarget("x")
	if p.Active() != 0 {
		t.Errorf("Active %d after Close", p.Active())
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), timeout); err == nil {
		t.Error("the proxy still listens after Close")
	}
}
