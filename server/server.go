package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server runs STOMP sessions for a Handler: on the connections of a
// net.Listener (Serve), on WebSocket connections (WebSocketHandler) or on
// any io.ReadWriteCloser (ServeConn). Its methods are safe for concurrent
// use.
type Server struct {
	h     Handler
	cfg   config
	nonce string        // prefix of session ids, unique per Server
	seq   atomic.Uint64 // session id counter

	mu        sync.Mutex // guards the fields below
	listeners map[net.Listener]struct{}
	sessions  map[*Session]struct{}
	closed    bool          // Shutdown or Close was called: accept nothing new
	idle      chan struct{} // closed when closed is set and sessions is empty
	wg        sync.WaitGroup
}

// New returns a Server that hands its sessions to h, configured by opts. It
// starts nothing. It fails if h is nil or an option was given a value it
// cannot take (the error names every such option).
func New(h Handler, opts ...Option) (*Server, error) {
	if h == nil {
		return nil, errors.New("server: nil Handler")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	var b [4]byte
	rand.Read(b[:])
	return &Server{
		h:         h,
		cfg:       cfg,
		nonce:     hex.EncodeToString(b[:]),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*Session]struct{}),
		idle:      make(chan struct{}),
	}, nil
}

func (srv *Server) newSessionID() string {
	return srv.nonce + "-" + strconv.FormatUint(srv.seq.Add(1), 10)
}

// Serve accepts connections on l and serves each in its own session (one
// goroutine per connection, two while it writes) until Shutdown or Close, then returns
// ErrServerClosed; if l is closed by someone else it returns that error.
// Other Accept errors (too many open files, ...) are logged and retried
// with a backoff of up to a second.
// Serve closes l when it returns. TLS: pass a tls.Listener.
func (srv *Server) Serve(l net.Listener) error {
	srv.mu.Lock()
	if srv.closed {
		srv.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	srv.listeners[l] = struct{}{}
	srv.wg.Add(1)
	srv.mu.Unlock()
	defer srv.wg.Done()
	defer func() {
		srv.mu.Lock()
		delete(srv.listeners, l)
		srv.mu.Unlock()
		l.Close()
	}()

	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if srv.isClosed() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Anything else (EMFILE, a timeout, ECONNABORTED) may pass:
			// back off and retry, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			srv.cfg.logger.Warn("stomp accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s, err := srv.register(context.Background(), c)
		if err != nil {
			c.Close()
			continue
		}
		go srv.run(s)
	}
}

func (srv *Server) isClosed() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.closed
}

// ServeConn runs one session over rw on the calling goroutine (which
// becomes the session's reader; one more goroutine writes while there is
// something to write) and returns when the session has ended and both are
// done: nil after a DISCONNECT,
// otherwise why it ended (an error wrapping ErrConnectionLost when the
// client went away, a *ProtocolError, ...). Cancelling ctx ends the session
// like Close. rw is closed when ServeConn returns. After Shutdown or Close
// it closes rw and returns ErrServerClosed at once.
func (srv *Server) ServeConn(ctx context.Context, rw io.ReadWriteCloser) error {
	s, err := srv.register(ctx, rw)
	if err != nil {
		rw.Close()
		return err
	}
	return srv.run(s)
}

// register creates a session for rw and tracks it.
func (srv *Server) register(ctx context.Context, rw io.ReadWriteCloser) (*Session, error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.closed {
		return nil, ErrServerClosed
	}
	s := newSession(srv, ctx, rw)
	srv.sessions[s] = struct{}{}
	srv.wg.Add(1)
	return s, nil
}

// run serves s and forgets it.
func (srv *Server) run(s *Session) error {
	defer srv.wg.Done()
	// The caller's context ending ends the session; s.ctx itself is
	// cancelled by the session at its end, which must not count.
	// A parent that never ends (Serve's) needs no watch.
	stop := func() bool { return false }
	if s.parent.Done() != nil {
		stop = context.AfterFunc(s.parent, func() { s.Close(nil) })
	}
	err := s.run()
	stop()
	srv.mu.Lock()
	delete(srv.sessions, s)
	if srv.closed && len(srv.sessions) == 0 {
		srv.closeIdle()
	}
	srv.mu.Unlock()
	return err
}

// closeIdle closes srv.idle once. srv.mu must be held.
func (srv *Server) closeIdle() {
	select {
	case <-srv.idle:
	default:
		close(srv.idle)
	}
}

// stop marks the server closed, closes its listeners and returns the
// sessions alive at that moment.
func (srv *Server) stop() []*Session {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.closed = true
	for l := range srv.listeners {
		l.Close()
	}
	ss := make([]*Session, 0, len(srv.sessions))
	for s := range srv.sessions {
		ss = append(ss, s)
	}
	if len(srv.sessions) == 0 {
		srv.closeIdle()
	}
	return ss
}

// Shutdown stops accepting connections, tells every session (an ERROR
// "server shutting down" after the frames already queued for it, then
// close) and waits until all sessions have ended and Serve has returned.
// If ctx ends first it calls Close (which cancels the sessions' contexts)
// and returns ctx's error. New sessions
// are refused from the start of Shutdown.
func (srv *Server) Shutdown(ctx context.Context) error {
	for _, s := range srv.stop() {
		s.Close(ErrServerClosed)
	}
	select {
	case <-srv.idle:
		srv.wg.Wait()
		return nil
	case <-ctx.Done():
		srv.Close()
		return ctx.Err()
	}
}

// Close stops accepting connections, closes every session's transport at
// once (queued frames are lost; handlers see ErrServerClosed), cancels the
// sessions' contexts, so that a Handler method waiting on one returns, and
// waits for the sessions' goroutines to end (a Handler method that blocks
// without watching its context holds Close up).
func (srv *Server) Close() error {
	for _, s := range srv.stop() {
		s.shutdown(ErrServerClosed, nil)
		s.abortTransport()
		s.cancel()
	}
	srv.wg.Wait()
	return nil
}
