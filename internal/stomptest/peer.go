// Package stomptest provides a scripted STOMP server for tests of the
// client: one end of an in-memory connection, driven step by step by the
// test, which can check the exact bytes the client writes and feed it any
// bytes at all, hostile ones included.
package stomptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompout/stomp/frame"
)

// Timeout bounds every read a Peer makes; a client that stays silent
// longer fails the test.
var Timeout = 5 * time.Second

// Peer is the server side of a net.Pipe. Its methods fail the test on
// error; they are meant for the test's goroutine (or one goroutine the
// test starts), not for concurrent use.
type Peer struct {
	t    testing.TB
	Conn net.Conn
	br   *bufio.Reader
	fr   *frame.Reader
	fw   *frame.Writer
	in   *buffer
}

// buffer holds what the client wrote until the Peer reads it.
type buffer struct {
	mu      sync.Mutex
	data    []byte
	err     error
	notify  chan struct{}
	timeout time.Duration // guarded by mu
}

func (b *buffer) fill(r io.Reader) {
	p := make([]byte, 32<<10)
	for {
		n, err := r.Read(p)
		b.mu.Lock()
		b.data = append(b.data, p[:n]...)
		if err != nil {
			b.err = err
		}
		b.mu.Unlock()
		select {
		case b.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// Read blocks until data arrives, the connection ends or the Peer's
// timeout passes.
func (b *buffer) Read(p []byte) (int, error) {
	var timer <-chan time.Time
	for {
		b.mu.Lock()
		if len(b.data) > 0 {
			n := copy(p, b.data)
			b.data = b.data[n:]
			b.mu.Unlock()
			return n, nil
		}
		err, d := b.err, b.timeout
		b.mu.Unlock()
		if err != nil {
			if errors.Is(err, io.ErrClosedPipe) {
				err = io.EOF
			}
			return 0, err
		}
		if timer == nil {
			timer = time.After(d)
		}
		select {
		case <-b.notify:
		case <-timer:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// Pipe returns the client end of a net.Pipe and a Peer on the other end.
// The Peer's end is closed when the test ends.
func Pipe(t testing.TB) (client net.Conn, p *Peer) {
	client, server := net.Pipe()
	p = New(t, server)
	t.Cleanup(func() { server.Close() })
	return client, p
}

// New returns a Peer on conn. A goroutine of the Peer reads conn into an
// unbounded buffer as fast as the client writes, so the client never
// blocks on a Peer that is not reading yet; it ends when conn is closed.
func New(t testing.TB, conn net.Conn) *Peer {
	in := &buffer{notify: make(chan struct{}, 1)}
	go in.fill(conn)
	br := bufio.NewReader(in)
	p := &Peer{t: t, Conn: conn, br: br, in: in}
	// The frame reader pulls one byte at a time from br, so it never reads
	// past the frame it returns and ExpectBytes can follow ReadFrame.
	p.fr = frame.NewReaderSize(byteReader{br}, 16)
	p.fr.SetLimits(frame.Limits{MaxFrameSize: -1, MaxBodySize: -1, MaxHeaders: -1, MaxLineSize: -1})
	p.fw = frame.NewWriter(conn)
	return p
}

type byteReader struct{ br *bufio.Reader }

// Read returns at most one byte.
func (b byteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c, err := b.br.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = c
	return 1, nil
}

// SetVersion sets the version the Peer escapes and unescapes headers by.
func (p *Peer) SetVersion(v frame.Version) {
	p.fr.SetVersion(v)
	p.fw.SetVersion(v)
}

func (p *Peer) deadline() {
	p.in.mu.Lock()
	p.in.timeout = Timeout
	p.in.mu.Unlock()
}

// ReadBytes reads exactly n bytes.
func (p *Peer) ReadBytes(n int) []byte {
	p.t.Helper()
	p.deadline()
	b := make([]byte, n)
	if _, err := io.ReadFull(p.br, b); err != nil {
		p.t.Fatalf("stomptest: reading %d bytes: %v (got %q)", n, err, b)
	}
	return b
}

// ExpectBytes reads len(want) bytes and fails the test unless they are
// want, exactly.
func (p *Peer) ExpectBytes(want string) {
	p.t.Helper()
	got := p.ReadBytes(len(want))
	if string(got) != want {
		p.t.Fatalf("stomptest: client wrote\n%q\nwant\n%q", got, want)
	}
}

// ReadFrame reads the next frame, skipping heart-beats, and returns a copy.
func (p *Peer) ReadFrame() *frame.Frame {
	p.t.Helper()
	for {
		p.deadline()
		f, err := p.fr.ReadFrame()
		if err != nil {
			p.t.Fatalf("stomptest: reading a frame: %v", err)
		}
		if !f.IsHeartBeat() {
			return f.Clone()
		}
	}
}

// ReadAny reads the next frame or heart-beat, returning an error instead
// of failing the test.
func (p *Peer) ReadAny() (*frame.Frame, error) {
	p.deadline()
	f, err := p.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	return f.Clone(), nil
}

// Expect reads the next frame and fails unless its command is cmd; it
// returns the frame.
func (p *Peer) Expect(cmd string) *frame.Frame {
	p.t.Helper()
	f := p.ReadFrame()
	if f.Command != cmd {
		p.t.Fatalf("stomptest: got %v, want a %s frame", f, cmd)
	}
	return f
}

// Write writes raw bytes to the client.
func (p *Peer) Write(raw string) {
	p.t.Helper()
	p.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	if _, err := io.WriteString(p.Conn, raw); err != nil {
		p.t.Fatalf("stomptest: writing %q: %v", raw, err)
	}
}

// WriteFrame writes f, encoded in the Peer's version.
func (p *Peer) WriteFrame(f *frame.Frame) {
	p.t.Helper()
	p.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	err := p.fw.WriteFrame(f)
	if err == nil {
		err = p.fw.Flush()
	}
	if err != nil {
		p.t.Fatalf("stomptest: writing %v: %v", f, err)
	}
}

// Send writes a frame given as command and alternating header keys and
// values, with body.
func (p *Peer) Send(cmd string, body string, kv ...string) {
	p.t.Helper()
	f := frame.New(cmd, kv...)
	if body != "" {
		f.Body = []byte(body)
	}
	p.WriteFrame(f)
}

// Accept reads CONNECT (or STOMP) and answers CONNECTED with the given
// version (omitted when "") and extra headers. It returns the CONNECT
// frame and sets the Peer's version.
func (p *Peer) Accept(version frame.Version, kv ...string) *frame.Frame {
	p.t.Helper()
	f := p.ReadFrame()
	if f.Command != frame.CmdConnect && f.Command != frame.CmdStomp {
		p.t.Fatalf("stomptest: got %v, want CONNECT", f)
	}
	hdr := []string{}
	if version != "" {
		hdr = append(hdr, frame.HdrVersion, string(version))
	}
	hdr = append(hdr, kv...)
	p.Send(frame.CmdConnected, "", hdr...)
	if version == "" {
		version = frame.V10
	}
	p.SetVersion(version)
	return f
}

// ExpectClosed waits until the client closes its end: reads return EOF.
// Any frames or heart-beats before the EOF are returned.
func (p *Peer) ExpectClosed() []*frame.Frame {
	p.t.Helper()
	var fs []*frame.Frame
	for {
		f, err := p.ReadAny()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fs
			}
			p.t.Fatalf("stomptest: waiting for close: %v", err)
		}
		if !f.IsHeartBeat() {
			fs = append(fs, f)
		}
	}
}

// Close closes the Peer's end.
func (p *Peer) Close() { p.Conn.Close() }

// Wire renders a frame the way the client writes it: command, headers
// (key:value, in order, none escaped), blank line, body, NUL. kv are
// alternating keys and values.
func Wire(cmd, body string, kv ...string) string {
	var b strings.Builder
	b.WriteString(cmd)
	b.WriteByte('\n')
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "%s:%s\n", kv[i], kv[i+1])
	}
	b.WriteByte('\n')
	b.WriteString(body)
	b.WriteByte(0)
	return b.String()
}

// Equal reports whether two frames have the same command, headers in
// order and body.
func Equal(a, b *frame.Frame) bool {
	if a.Command != b.Command || a.Header.Len() != b.Header.Len() || !bytes.Equal(a.Body, b.Body) {
		return false
	}
	for i := 0; i < a.Header.Len(); i++ {
		ak, av := a.Header.At(i)
		bk, bv := b.Header.At(i)
		if ak != bk || av != bv {
			return false
		}
	}
	return true
}

// Repeat returns a reader that reads b over and over, never io.EOF: an
// endless stream of the same frames, from memory, for benchmarks and
// allocation tests in steady state. (frame's own tests keep a copy: they
// cannot import this package.)
func Repeat(b []byte) io.Reader { return &repeatReader{b: b} }

type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}
