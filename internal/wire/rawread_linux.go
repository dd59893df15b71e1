package wire

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// socketReader reads a TCP or Unix socket as its net.Conn's Read does,
// waiting for readability in the runtime's netpoller (syscall.RawConn's
// Read), but makes each read(2) a raw system call (sysRead) where Read
// makes an ordinary one. Reads on a Go socket never block (it is
// non-blocking; EAGAIN sends the goroutine to the netpoller), so the
// scheduler need not be told of them, and an ordinary system call tells
// it: entering one wakes the runtime's monitor thread (sysmon) when every
// P was idle. A consumer that reads one frame per wake-up, from a broker
// that writes each MESSAGE on its own (RabbitMQ), then paid about one more
// thread wake-up and sleep per message for sysmon, a third of its context
// switches and of the client's CPU (BENCHMARKS.md, profile item 14).
// Errors and end of stream are those of the net.Conn's Read.
type socketReader struct {
	conn net.Conn
	rc   syscall.RawConn
	fn   func(fd uintptr) bool // rc.Read's function: read, made once
	// The current Read's buffer and outcome, set and read by Read around
	// rc.Read, which calls fn on the same goroutine.
	p     []byte
	n     int
	errno syscall.Errno
}

// newSocketReader returns a socketReader for a *net.TCPConn or
// *net.UnixConn, and nil for any other io.Reader (TLS, WebSocket, pipes,
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

// read is rc.Read's function: false sends Read to the netpoller to wait
// for readability, true ends it.
func (sr *socketReader) read(fd uintptr) bool {
	for {
		n, errno := sysRead(fd, sr.p)
		switch errno {
		case 0:
			sr.n, sr.errno = n, 0
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		default:
			sr.n, sr.errno = 0, errno
			return true
		}
	}
}

// Read reads into p.
func (sr *socketReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	sr.p = p
	err := sr.rc.Read(sr.fn)
	sr.p = nil
	switch {
	case err != nil: // closed, or past the read deadline: as the net.Conn says it
		var op *net.OpError
		if errors.As(err, &op) {
			err = op.Err
		}
		return 0, sr.opError(err)
	case sr.errno != 0:
		return 0, sr.opError(os.NewSyscallError("read", sr.errno))
	case sr.n == 0:
		return 0, io.EOF
	}
	return sr.n, nil
}

// opError wraps err as the net.Conn's Read wraps its errors.
func (sr *socketReader) opError(err error) error {
	return &net.OpError{Op: "read", Net: sr.conn.LocalAddr().Network(), Source: sr.conn.LocalAddr(), Addr: sr.conn.RemoteAddr(), Err: err}
}
