package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept() // the kernel finished the handshake: no wait
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// checkOpError checks that err is what c's own Read or Write says: a
// *net.OpError for operation opName on c, whose Err is (or wraps) want.
func checkOpError(t *testing.T, c net.Conn, opName string, err, want error) {
	t.Helper()
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != opName || op.Net != c.LocalAddr().Network() ||
		op.Source.String() != c.LocalAddr().String() || op.Addr.String() != c.RemoteAddr().String() {
		t.Fatalf("error %#v (%v), want a %s *net.OpError of %v->%v", err, err, opName, c.LocalAddr(), c.RemoteAddr())
	}
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
}

// TestSocketReaderReadsAsConn: a socketReader reads what its connection
// gets, as it comes, and ends as the connection's Read would: io.EOF at
// the peer's close, the deadline's error (a timeout), the reset's, and
// net.ErrClosed once closed here, each wrapped as the net.Conn's Read
// wraps it.
func TestSocketReaderReadsAsConn(t *testing.T) {
	c, s := tcpPair(t)
	r := newSocketReader(c)
	if r == nil {
		t.Fatal("no socketReader for a *net.TCPConn")
	}
	buf := make([]byte, 64)
	if n, err := r.Read(buf[:0]); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
	for _, piece := range []string{"CONNECTED\n", "\n\x00", "MESSAGE\n\n\x00"} {
		if _, err := s.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
		got := ""
		for len(got) < len(piece) {
			n, err := r.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got += string(buf[:n])
		}
		if got != piece {
			t.Fatalf("read %q, want %q", got, piece)
		}
	}

	// The deadline: waiting in the netpoller, as Read does.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := r.Read(buf)
	checkOpError(t, c, "read", err, os.ErrDeadlineExceeded)
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("deadline error %v is not a timeout", err)
	}
	c.SetReadDeadline(time.Time{})

	// The peer's close: io.EOF, unwrapped, as Read gives it.
	s.Close()
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer's close: %d, %v; want io.EOF", n, err)
	}

	// Closed here: net.ErrClosed.
	c.Close()
	_, err = r.Read(buf)
	checkOpError(t, c, "read", err, net.ErrClosed)
}

// TestSocketReaderReset: a connection the peer resets reads as
// ECONNRESET, wrapped as a system call's error, as the net.Conn's Read
// says it.
func TestSocketReaderReset(t *testing.T) {
	c, s := tcpPair(t)
	r := newSocketReader(c)
	// Unread data at close and no linger: the peer sends RST.
	if _, err := c.Write([]byte("unread")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(make([]byte, 1)); err != nil { // the data is there
		t.Fatal(err)
	}
	s.SetLinger(0)
	s.Close()
	_, err := r.Read(make([]byte, 64))
	checkOpError(t, c, "read", err, syscall.ECONNRESET)
	var se *os.SyscallError
	if !errors.As(err, &se) || se.Syscall != "read" {
		t.Fatalf("reset error %v: want an *os.SyscallError of read", err)
	}
}

// TestSocketReaderCloseWhileWaiting: closing the connection ends a Read
// that waits for data, with net.ErrClosed (how the client and the server
// stop their readers).
func TestSocketReaderCloseWhileWaiting(t *testing.T) {
	c, _ := tcpPair(t)
	r := newSocketReader(c)
	time.AfterFunc(20*time.Millisecond, func() { c.Close() })
	_, err := r.Read(make([]byte, 64))
	checkOpError(t, c, "read", err, net.ErrClosed)
}

// TestSocketReaderWhich: TCP and Unix sockets are read raw; everything
// else (a pipe, a wrapper, a TLS connection) through its own Read.
func TestSocketReaderWhich(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	us, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	r := newSocketReader(u)
	if r == nil {
		t.Fatal("no socketReader for a *net.UnixConn")
	}
	if _, err := us.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(make([]byte, 8)); n != 1 || err != nil {
		t.Fatalf("unix read: %d, %v", n, err)
	}
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	c, _ := tcpPair(t)
	for _, x := range []io.Reader{p1, struct{ net.Conn }{c}} {
		if newSocketReader(x) != nil {
			t.Fatalf("a socketReader for %T", x)
		}
	}
}
