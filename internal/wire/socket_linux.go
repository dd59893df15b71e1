package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// socketReader reads a TCP or Unix socket as its net.Conn's Read does, waiting
// for readability in the runtime's netpoller (its syscall.RawConn's
// Read), but makes each read(2) a raw system call (sysRead) where the
// net.Conn makes an ordinary one. A Go socket is non-blocking (EAGAIN
// sends the goroutine to the netpoller), so the scheduler need not be told
// of the call, and an ordinary system call tells it: entering one wakes
// the runtime's monitor thread (sysmon) when every P was idle. A consumer
// that reads one frame per wake-up, from a broker that writes each MESSAGE
// on its own (RabbitMQ), paid about one more thread wake-up and sleep per
// message for sysmon, a third of its context switches and of the client's
// CPU (BENCHMARKS.md, profile item 14). Errors and end of stream are those
// of the net.Conn. (Writes stay the net.Conn's: raw writes were measured,
// then withdrawn with an interop failure since traced to the client's
// handling of an early ERROR; see BENCHMARKS.md.)
type socketReader struct {
	conn net.Conn
	rc   syscall.RawConn
	fn   func(fd uintptr) bool // rc.Read's function, read, made once
	// The current Read's buffer and outcome, set and read by Read around
	// rc.Read, which calls fn on the same goroutine.
	p     []byte
	n     int
	errno syscall.Errno
}

// newSocketReader returns a socketReader for a *net.TCPConn or
// *net.UnixConn, and nil for anything else (TLS, WebSocket, pipes,
// wrappers): those are read through their own Read.
func newSocketReader(r io.Reader) io.Reader {
	var sc syscall.Conn
	switch c := r.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	sr := &socketReader{conn: r.(net.Conn), rc: rc}
	sr.fn = sr.read
	return sr
}

// opError wraps err as the net.Conn's Read wraps its errors (RawConn wraps
// its own, as a "raw-read").
func (r *socketReader) opError(err error) error {
	var raw *net.OpError
	if errors.As(err, &raw) {
		err = raw.Err
	}
	return &net.OpError{Op: "read", Net: r.conn.LocalAddr().Network(), Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: err}
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
		return 0, r.opError(err)
	case r.errno != 0:
		return 0, r.opError(os.NewSyscallError("read", r.errno))
	case r.n == 0:
		return 0, io.EOF
	}
	return r.n, nil
}
