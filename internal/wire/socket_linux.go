package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// socket reads and writes a TCP or Unix socket as its net.Conn's Read and
// Write do, waiting for readiness in the runtime's netpoller (the Read and
// Write of its syscall.RawConn), but makes each read(2) and write(2) a raw
// system call (sysRead, sysWrite) where the net.Conn makes an ordinary
// one. A Go socket is non-blocking (EAGAIN sends the goroutine to the
// netpoller), so the scheduler need not be told of these calls, and an
// ordinary system call tells it: entering one wakes the runtime's monitor
// thread (sysmon) when every P was idle, and a call that sysmon finds
// still running has its P handed to another thread. A consumer that reads
// one frame per wake-up, from a broker that writes each MESSAGE on its own
// (RabbitMQ), paid about one more thread wake-up and sleep per message for
// sysmon, a third of its context switches and of the client's CPU
// (BENCHMARKS.md, profile item 14). Errors, short writes and end of stream
// are those of the net.Conn.
type socket struct {
	conn net.Conn
	rc   syscall.RawConn
}

// rawSocket returns the socket of a *net.TCPConn or *net.UnixConn, and
// false for anything else (TLS, WebSocket, pipes, wrappers): those are
// read and written through their own methods.
func rawSocket(x any) (socket, bool) {
	var sc syscall.Conn
	switch c := x.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return socket{}, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return socket{}, false
	}
	return socket{conn: x.(net.Conn), rc: rc}, true
}

// opError wraps err as the net.Conn's Read and Write wrap theirs (RawConn
// wraps its own errors, as a "raw-read" or "raw-write").
func (s socket) opError(op string, err error) error {
	var raw *net.OpError
	if errors.As(err, &raw) {
		err = raw.Err
	}
	return &net.OpError{Op: op, Net: s.conn.LocalAddr().Network(), Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}

// socketReader reads a socket.
type socketReader struct {
	socket
	fn func(fd uintptr) bool // rc.Read's function, read, made once
	// The current Read's buffer and outcome, set and read by Read around
	// rc.Read, which calls fn on the same goroutine.
	p     []byte
	n     int
	errno syscall.Errno
}

// newSocketReader returns a socketReader for r's socket, or nil.
func newSocketReader(r io.Reader) io.Reader {
	s, ok := rawSocket(r)
	if !ok {
		return nil
	}
	sr := &socketReader{socket: s}
	sr.fn = sr.read
	return sr
}

// socketWriter writes a socket.
type socketWriter struct {
	socket
	fn func(fd uintptr) bool // rc.Write's function, write, made once
	// The current Write's data and outcome, as socketReader's.
	p     []byte
	n     int
	errno syscall.Errno
	zero  bool // write(2) wrote nothing and said no error
}

// newSocketWriter returns a socketWriter for w's socket, or nil.
func newSocketWriter(w io.Writer) io.Writer {
	s, ok := rawSocket(w)
	if !ok {
		return nil
	}
	sw := &socketWriter{socket: s}
	sw.fn = sw.write
	return sw
}

// read is rc.Read's function: false sends Read to the netpoller to wait
// for readability, true ends it.
func (r *socketReader) read(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, r.p)
		switch errno {
		case 0:
			r.n, r.errno = n, 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			r.n, r.errno = 0, errno
			return true
		}
	}
}

// Read reads into p.
func (r *socketReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.p = p
	err := r.rc.Read(r.fn)
	r.p = nil
	switch {
	case err != nil: // closed, or past the read deadline
		return 0, r.opError("read", err)
	case r.errno != 0:
		return 0, r.opError("read", os.NewSyscallError("read", r.errno))
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}

// write is rc.Write's function: it writes what is left of p, and false
// sends Write to the netpoller to wait for room.
func (w *socketWriter) write(fd uintptr) bool {
	for w.n < len(w.p) {
		n, errno := sysWrite(fd, w.p[w.n:])
		if n > 0 {
			w.n += n
		}
		switch errno {
		case 0:
			if n == 0 {
				w.zero = true
				return true
			}
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = errno
			return true
		}
	}
	return true
}

// Write writes all of p, or returns why not.
func (w *socketWriter) Write(p []byte) (int, error) {
	w.p, w.n, w.errno, w.zero = p, 0, 0, false
	err := w.rc.Write(w.fn)
	n := w.n
	w.p = nil
	switch {
	case err != nil: // closed, or past the write deadline
		return n, w.opError("write", err)
	case w.zero: // as the net.Conn says it
		return n, w.opError("write", io.ErrUnexpectedEOF)
	case w.errno != 0:
		return n, w.opError("write", os.NewSyscallError("write", w.errno))
	}
	return n, nil
}
