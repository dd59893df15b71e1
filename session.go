package stomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
	"github.com/stompout/stomp/internal/wire"
	"golang.org/x/sync/errgroup"
)

// session is one transport of a Conn: the handshake, a reader and a writer
// goroutine and the heart-beats, ending together. What it holds dies with
// it: the receipts it was asked for, the control frames queued for it.
type session struct {
	c    *Conn
	rw   io.ReadWriteCloser
	ep   endpoint // where it is connected ({} for Connect's transports)
	addr string   // ep for State and logs; never a passcode

	// Fixed by the handshake, read-only afterwards.
	version        Version
	id             string // the session header of CONNECTED
	server         string
	hbSend, hbRecv time.Duration

	r    *frame.Reader  // owned by the reader goroutine
	live *wire.Liveness // the reader's transport, with the heart-beat monitor
	w    *wire.Writer   // owned by the writer goroutine
	// wrote is signalled by the writer's writes, for WithReadCoalesce
	// (nil without it).
	wrote <-chan struct{}
	mon   *heartbeat.Monitor // ends the session itself (OnDead)

	direct direct // SENDs encoded by their callers (direct.go)

	ctrlSig chan struct{} // -> writer: ctrl has frames (capacity 1)
	ctrlMu  sync.Mutex
	ctrl    []*frame.Frame // frames queued without blocking (guarded by ctrlMu)

	wroteDisconnect bool // owned by the writer goroutine: nothing is written after DISCONNECT
	// disconnectOut is set by the writer as it writes DISCONNECT (before: on a
	// WebSocket the server may close before the write returns):
	// from then on the server closing the transport is a clean end.
	disconnectOut atomic.Bool

	ctx    context.Context // ended when the session fails: the goroutines stop
	cancel context.CancelFunc
	g      *errgroup.Group

	mu       sync.Mutex // guards the fields below
	receipts map[string]*Receipt
	cause    error // why the session ended, set once by fail
	failed   bool
	done     chan struct{} // closed by wait, once the goroutines are gone and what died is resolved
}

// errUserClosed is the cause of a session ended by Close or Disconnect.
var errUserClosed = errors.New("stomp: closed by the user")

func newSession(c *Conn, rw io.ReadWriteCloser, ep endpoint) *session {
	s := &session{
		c:        c,
		rw:       rw,
		ep:       ep,
		addr:     ep.display(),
		ctrlSig:  make(chan struct{}, 1),
		direct:   direct{kick: make(chan struct{}, 1)},
		receipts: make(map[string]*Receipt),
		done:     make(chan struct{}),
	}
	s.live = wire.NewLiveness(rw)
	s.r = frame.NewReader(s.live)
	s.r.SetLimits(c.cfg.limits)
	s.w = wire.NewWriter(rw, s.writeTimeout)
	if c.cfg.readCoalesce > 0 {
		s.wrote = s.w.WatchWrites()
	}
	return s
}

// handshake writes CONNECT and reads up to CONNECTED over rw, on the
// caller's goroutine, and returns the session ready to run. On failure rw
// is closed.
func (c *Conn) handshake(ctx context.Context, rw io.ReadWriteCloser, ep endpoint) (sess *session, err error) {
	s := newSession(c, rw, ep)
	defer func() {
		if err != nil {
			sess = nil
			closeTransport(rw)
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Ending ctx (or Close) closes the transport, which unblocks the
	// reads and writes.
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopClose := context.AfterFunc(hctx, func() { closeTransport(rw) })
	stopStop := context.AfterFunc(c.stop, cancel)
	defer stopStop()
	defer func() {
		if !stopClose() { // the transport was closed under the handshake
			switch {
			case ctx.Err() != nil:
				err = ctx.Err()
			case c.stop.Err() != nil:
				err = ErrClosed
			}
		}
	}()
	if err := s.w.WriteFrame(s.connectFrame()); err != nil {
		return nil, fmt.Errorf("stomp: connect: %w", err)
	}
	if err := s.w.Flush(); err != nil {
		return nil, fmt.Errorf("stomp: connect: %w", err)
	}
	for {
		f, err := s.r.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("stomp: connect: reading CONNECTED: %w", err)
		}
		switch f.Command {
		case "":
			continue
		case frame.CmdConnected:
			if err := s.connected(f); err != nil {
				return nil, err
			}
			return s, nil
		case frame.CmdError:
			return nil, &ConnectError{Server: newServerError(f)}
		default:
			return nil, &ConnectError{Reason: "server answered CONNECT with " + f.Command}
		}
	}
}

func (s *session) connectFrame() *frame.Frame {
	cfg := s.c.cfg
	f := frame.New(frame.CmdConnect)
	vs := make([]string, len(cfg.versions))
	for i, v := range cfg.versions {
		vs[i] = string(v)
	}
	f.Header.Add(frame.HdrAcceptVersion, strings.Join(vs, ","))
	if cfg.host != "" {
		f.Header.Add(frame.HdrHost, cfg.host)
	}
	login, passcode, ok := cfg.login, cfg.passcode, cfg.hasLogin
	if !ok && s.ep.hasLogin { // from the URL
		login, passcode, ok = s.ep.login, s.ep.passcode, true
	}
	if ok {
		f.Header.Add(frame.HdrLogin, login)
		f.Header.Add(frame.HdrPasscode, passcode)
	}
	if cfg.hbSend > 0 || cfg.hbRecv > 0 {
		f.Header.Add(frame.HdrHeartBeat, heartbeat.Settings{Send: cfg.hbSend, Recv: cfg.hbRecv}.String())
	}
	for _, kv := range cfg.connectHeaders {
		f.Header.Add(kv[0], kv[1])
	}
	return f
}

func (s *session) connected(f *frame.Frame) error {
	cfg := s.c.cfg
	v := Version(f.Header.Get(frame.HdrVersion))
	if v == "" {
		v = V10 // a 1.0 server does not say
	}
	if !slices.Contains(cfg.versions, v) {
		return &ConnectError{Reason: fmt.Sprintf("server chose version %q, not one of %v", v, cfg.versions)}
	}
	s.version = v
	s.id = f.Header.Get(frame.HdrSession)
	s.server = f.Header.Get(frame.HdrServer)
	if v == V10 {
		return nil // no heart-beats in 1.0
	}
	remote, err := heartbeat.Parse(f.Header.Get(frame.HdrHeartBeat))
	if err != nil {
		return &ConnectError{Reason: err.Error()}
	}
	s.hbSend, s.hbRecv = heartbeat.Negotiate(heartbeat.Settings{Send: cfg.hbSend, Recv: cfg.hbRecv}, remote)
	return nil
}

// run starts the session's goroutines.
func (s *session) run() {
	s.r.SetVersion(s.version)
	s.w.SetVersion(s.version)
	s.mon = heartbeat.NewMonitor(s.hbRecv, s.c.cfg.hbTolerance)
	s.live.SetMonitor(s.mon)
	// The monitor ends the session itself: the writer may be stuck in a
	// write to a server that reads nothing (with no write deadline on the
	// transport, for good) and could not watch it then.
	s.mon.OnDead(func() { s.fail(s.heartBeatError()) })
	var ctx context.Context
	s.g, ctx = errgroup.WithContext(context.Background())
	s.ctx, s.cancel = context.WithCancel(ctx)
	// The first failure ends the others: the transport is closed, which
	// unblocks a read or write in progress.
	context.AfterFunc(s.ctx, func() { closeTransport(s.rw) })
	s.g.Go(s.readLoop)
	s.g.Go(s.writeLoop)
}

// fail ends the session with cause (the first call decides). It never
// blocks.
func (s *session) fail(cause error) {
	s.mu.Lock()
	if !s.failed {
		s.failed, s.cause = true, cause
	}
	s.mu.Unlock()
	// What callers encoded since the last write dies with the transport,
	// as the Writer's buffer does; from now on they take the queue.
	s.closeDirect()
	if s.cancel != nil {
		s.cancel()
	}
}

// wait waits for the session's goroutines to exit, resolves what died
// with it and returns why it ended.
func (s *session) wait() error {
	s.g.Wait()
	s.mon.Stop()
	s.mu.Lock()
	cause := s.cause
	receipts := s.receipts
	s.receipts = nil
	s.mu.Unlock()
	end := s.endErr()
	for _, r := range receipts {
		r.resolve(end)
	}
	close(s.done)
	return cause
}

// endErr is what the end of the session means to a caller whose frame it
// took with it: ErrClosed when the user ended it (or the server, after our
// DISCONNECT), otherwise an error matching ErrConnectionLost.
func (s *session) endErr() error {
	s.mu.Lock()
	cause := s.cause
	s.mu.Unlock()
	if cause == nil || cause == errUserClosed {
		return ErrClosed
	}
	return lost(cause)
}

// disconnectEnd is what Disconnect returns when the session ended before
// the RECEIPT of DISCONNECT arrived: nil if the server closed the
// transport, as RabbitMQ's Web-STOMP does.
func (s *session) disconnectEnd() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cause == nil || s.cause == errUserClosed {
		return nil
	}
	return s.cause
}

// addReceipt registers r before its frame is written. Writer goroutine:
// the session cannot have ended (wait resolves the receipts once the
// writer has exited).
func (s *session) addReceipt(r *Receipt) {
	s.mu.Lock()
	s.receipts[r.id] = r
	s.mu.Unlock()
}

// dropReceipt forgets r, whose frame was not sent.
func (s *session) dropReceipt(r *Receipt) {
	s.mu.Lock()
	if s.receipts != nil {
		delete(s.receipts, r.id)
	}
	s.mu.Unlock()
}

// queueCtrl queues a frame without blocking.
func (s *session) queueCtrl(f *frame.Frame) {
	s.ctrlMu.Lock()
	s.ctrl = append(s.ctrl, f)
	s.ctrlMu.Unlock()
	select {
	case s.ctrlSig <- struct{}{}:
	default:
	}
}

// writeTimeout is the deadline of each write to the transport.
func (s *session) writeTimeout() time.Duration {
	if d := s.c.cfg.writeTimeout; d > 0 {
		return d
	}
	if s.mon != nil {
		// A server that takes nothing for as long as a silent one would
		// be declared dead is dead: without this the writer could block
		// forever.
		return s.mon.Timeout()
	}
	return 0
}

func (s *session) heartBeatError() error {
	var te *heartbeat.TimeoutError
	if errors.As(s.mon.Err(), &te) {
		return &HeartBeatError{Interval: te.Interval, Silence: te.Silence}
	}
	return &HeartBeatError{Interval: s.hbRecv}
}

// closeTransport closes rw at once (a WebSocket without its close
// handshake: by then DISCONNECT has been answered or given up on).
func closeTransport(rw io.Closer) {
	if a, ok := rw.(interface{ CloseNow() error }); ok {
		a.CloseNow()
		return
	}
	rw.Close()
}
