package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/wire"
)

// Session is one client connection. The engine creates it; a Handler gets
// it in every call and may keep it to Deliver messages to it later or to
// Close it. Its methods are safe for concurrent use.
type Session struct {
	srv    *Server
	rw     io.ReadWriteCloser
	parent context.Context // the context ServeConn got
	ctx    context.Context
	// cancel ends ctx: by the reader goroutine at teardown, or earlier by
	// Server.Close.
	cancel context.CancelFunc

	// Set by the reader goroutine before Handler.Connect returns (id
	// possibly by the handler), immutable once the session is connected;
	// connected is the publication point for other goroutines.
	id        string
	version   frame.Version
	login     string
	connected atomic.Bool

	// Owned by the reader goroutine.
	r        *frame.Reader
	live     *wire.Liveness // the transport's read side, touching the heart-beat monitor
	txs      map[string]*transaction
	txFrames int // frames buffered in txs
	txBytes  int // bytes buffered in txs (txOp.size)
	// The receipt header of the frame being handled, for Message.Defer.
	curReceipt    string
	curHasReceipt bool
	said          bool // Handler.Disconnect was called (for a DISCONNECT frame)

	// msgSeq numbers the message-ids Deliver makes for messages without
	// an ID.
	msgSeq atomic.Uint64

	mu sync.Mutex // guards the fields below; never held across I/O or handler calls
	// subs are the session's subscriptions by id.
	subs map[string]*Subscription
	// out is the outbound queue, taken by the writer in batches; its
	// array is rs's.
	out []outItem
	// rs is the writer's scratch, held while there is something to
	// write (scratchLocked).
	rs *runScratch
	// outMsgs and outBytes count the MESSAGE frames in out and their
	// bytes (the bounded part).
	outMsgs, outBytes int
	// cause is why the session ends (nil: DISCONNECT), set with closing.
	cause error
	// ackSeq numbers the deliveries in client ack modes (and makes the
	// 1.2 ack ids).
	ackSeq uint64
	// acks indexes the unacknowledged deliveries of all subscriptions.
	acks ackIndex
	// ackSlab is where the next pendingAcks come from (newPending).
	ackSlab []pendingAck
	// idText is where the ids of the next deliveries in a client ack
	// mode are written (deliveryIDs).
	idText []byte
	// linger closes the transport if the writer cannot finish in time.
	linger *time.Timer
	// passcode is the CONNECT frame's, to scrub from ERROR frames.
	passcode string
	// pend lists, in frame order, the frames whose RECEIPT waits for
	// deferred SENDs (theirs or earlier ones); cur is the frame being
	// handled, once one of its SENDs deferred.
	pend []*completion
	cur  *completion
	// inflight and inflightBytes count the deferred SENDs not yet done
	// (the send window).
	inflight, inflightBytes int

	// change, made on demand, is closed at the next change the reader may
	// wait for (see changedLocked).
	change chan struct{}

	// closing is set once the final item is queued; nothing is queued
	// after. writing says a writer goroutine runs: at most one at a time,
	// and only while there is work (see wakeLocked).
	closing   bool
	writing   bool
	wfinished bool // the final item was written: no writer runs again
	hbDue     bool // beat asks the writer for a heart-beat
	// hbTimer paces heart-beats (nil: none negotiated); hbPeriod is its
	// period, lastWrite the time the writer last flushed something.
	hbTimer   *time.Timer
	hbPeriod  time.Duration
	lastWrite time.Time

	// Owned by the writer goroutine of the moment (runs are serialised by
	// writing, under mu).
	wbroken error        // the transport failed: write nothing more
	ww      *wire.Writer // made by the first run (writeLoop)

	// connTimer ends a session that is not connected in time (nil once
	// connected, or without a connect timeout). Reader goroutine only.
	connTimer *time.Timer

	// written is done once the session's writing is over (the final item
	// written and the transport closed).
	written sync.WaitGroup
	rwClose sync.Once
}

// ID returns the session id sent in the CONNECTED frame's session header
// ("" before the CONNECT was accepted).
func (s *Session) ID() string {
	if !s.connected.Load() {
		return ""
	}
	return s.id
}

// Version returns the negotiated protocol version ("" before CONNECT was
// accepted).
func (s *Session) Version() frame.Version {
	if !s.connected.Load() {
		return ""
	}
	return s.version
}

// Login returns the CONNECT frame's login header ("" if none, or before
// CONNECT was accepted).
func (s *Session) Login() string {
	if !s.connected.Load() {
		return ""
	}
	return s.login
}

// Context returns the session's context, cancelled once the session has
// ended and Handler.Disconnect has returned, or earlier by Server.Close or
// the end of the context given to ServeConn.
func (s *Session) Context() context.Context { return s.ctx }

// RemoteAddr returns the transport's remote address when it has one (a
// net.Conn or a WebSocket), else nil.
func (s *Session) RemoteAddr() net.Addr {
	if c, ok := s.rw.(interface{ RemoteAddr() net.Addr }); ok {
		return c.RemoteAddr()
	}
	return nil
}

// Subscriptions returns the ids of the session's current subscriptions, in
// no particular order. It takes the session's lock and allocates.
func (s *Session) Subscriptions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	return ids
}

// Close ends the session from any goroutine without blocking. With a nil
// err the session just closes (queued frames are still written, then the
// transport is closed); with an error the client first gets an ERROR frame
// saying it (an *ApplicationError chooses the message, e.g. "slow
// consumer"), and the handler's Error method is called with err. The
// handler's Disconnect is then called with err (or ErrSessionClosed) as the
// reason. Close is idempotent; the first call decides.
func (s *Session) Close(err error) {
	var ef *frame.Frame
	if err != nil {
		ef = s.errorFrame(err, "")
	} else {
		err = ErrSessionClosed
	}
	s.shutdown(err, ef)
}

func newSession(srv *Server, parent context.Context, rw io.ReadWriteCloser) *Session {
	ctx, cancel := context.WithCancel(parent)
	s := &Session{
		srv:    srv,
		parent: parent,
		rw:     rw,
		ctx:    ctx,
		cancel: cancel,
	}
	s.written.Add(1)
	s.live = wire.NewLiveness(rw)
	s.r = frame.NewReader(s.live)
	s.r.SetLimits(srv.cfg.limits)
	// An idle session holds no read buffer (issue 9: idle memory).
	s.r.SetRelease(true)
	// newMessage copies what it keeps of a SEND into the Message's own
	// memory, and an Ack holds a copy of its ACK's or NACK's header: their
	// header text need not be a string of its own first.
	s.r.SetViews(viewed...)
	return s
}

// run serves the session on the calling goroutine (the reader) until it
// ends, and returns why (nil after a DISCONNECT).
func (s *Session) run() error {
	if d := s.srv.cfg.connectTimeout; d > 0 {
		s.connTimer = time.AfterFunc(d, s.connectExpired)
	}
	cause := s.readLoop()
	s.stopConnectTimer()

	// Make sure the writer is told, and that a dead transport is closed now
	// rather than after the linger time.
	s.shutdown(cause, nil)
	if errors.Is(cause, ErrConnectionLost) {
		s.abortTransport()
	}
	s.mu.Lock()
	cause = s.cause
	s.mu.Unlock()
	if !errors.Is(cause, ErrConnectionLost) {
		// Keep reading (and discarding) until the writer has written the
		// last frame and closed the transport, or the linger time ran out:
		// closing a TCP socket with unread input resets it, and the client
		// could lose the ERROR or RECEIPT.
		io.Copy(io.Discard, s.rw)
	}

	h := s.srv.h
	if cause != nil && !errors.Is(cause, ErrConnectionLost) && !errors.Is(cause, ErrSessionClosed) && !errors.Is(cause, ErrServerClosed) {
		s.safely("Error", func() { h.Error(s.ctx, s, cause) })
	}
	s.txs = nil
	if s.connected.Load() && !s.said {
		s.mu.Lock()
		clear(s.subs)
		s.acks = nil
		s.mu.Unlock()
		s.safely("Disconnect", func() { h.Disconnect(s.ctx, s, cause) })
	}
	s.cancel()
	s.written.Wait()
	s.mu.Lock()
	if s.linger != nil {
		s.linger.Stop()
	}
	s.mu.Unlock()
	s.closeTransport()
	if mon := s.live.Monitor(); mon != nil {
		mon.Stop()
	}
	return cause
}

// connectExpired ends the session if it is not connected yet; it runs on
// the connect timer's goroutine.
func (s *Session) connectExpired() {
	if !s.connected.Load() {
		s.shutdown(ErrConnectTimeout, s.errorFrame(ErrConnectTimeout, ""))
	}
}

// stopConnectTimer drops the connect timer: the session is connected or
// over. Reader goroutine only.
func (s *Session) stopConnectTimer() {
	if s.connTimer != nil {
		s.connTimer.Stop()
		s.connTimer = nil
	}
}

// readLoop reads and handles frames until the session ends, and returns the
// cause.
func (s *Session) readLoop() error {
	for {
		f, err := s.r.ReadFrame()
		if err != nil {
			return s.readFailed(err)
		}
		if f.IsHeartBeat() {
			continue
		}
		if s.isClosing() { // Close, Shutdown or a timeout: handle nothing more
			return s.readFailed(io.EOF)
		}
		err = s.handle(f)
		if err == errDisconnected {
			return nil
		}
		if err != nil {
			s.fail(err, f.Header.Get(frame.HdrReceipt))
			return err
		}
		// Read nothing more while the handler has too many SENDs in
		// flight: TCP pushes back on the producer.
		s.waitRoom(false)
	}
}

// errDisconnected is handle's signal that a DISCONNECT was processed.
var errDisconnected = errors.New("server: disconnected")

// viewed are the commands whose frames the Reader returns with header
// strings that are views of its buffer (frame.Reader.SetViews): the engine
// copies what it keeps of them (newMessage, newAck, ownHeader, the
// receipt in handle).
var viewed = []string{frame.CmdSend, frame.CmdAck, frame.CmdNack}

// readFailed works out why reading failed: a codec error is the client's
// protocol violation; otherwise, if the session was already ending, its
// cause; otherwise the connection was lost.
func (s *Session) readFailed(err error) error {
	var fpe *frame.ProtocolError
	var fle *frame.LimitError
	if errors.As(err, &fpe) || errors.As(err, &fle) {
		pe := codecError(err)
		s.fail(pe, "")
		return pe
	}
	s.mu.Lock()
	closing, cause := s.closing, s.cause
	s.mu.Unlock()
	if closing {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrConnectionLost, err)
}

// fail ends the session with an ERROR frame reporting err.
func (s *Session) fail(err error, receipt string) {
	// A handler that fails because Server.Close cancelled its context is
	// no failure worth logging.
	if _, _, expected := errorContent(err); !expected && s.ctx.Err() == nil {
		s.srv.cfg.logger.Error("stomp handler failed", "session", s.id, "err", err)
	}
	s.shutdown(err, s.errorFrame(err, receipt))
}

// errorFrame builds the ERROR frame reporting err, with receipt-id if
// receipt is set. The passcode of the session, if any, is scrubbed from it.
func (s *Session) errorFrame(err error, receipt string) *frame.Frame {
	msg, body, _ := errorContent(err)
	s.mu.Lock()
	p := s.passcode
	s.mu.Unlock()
	if p != "" {
		msg = strings.ReplaceAll(msg, p, "****")
		body = strings.ReplaceAll(body, p, "****")
	}
	// The message is the handler's to choose; a line break in it would
	// make the ERROR frame unencodable (in 1.0), and it would never be
	// written.
	msg = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, msg)
	f := &frame.Frame{Command: frame.CmdError}
	if receipt != "" && frame.CheckHeader(s.wireVersion(), frame.HdrReceiptID, receipt) == nil {
		f.Header.Add(frame.HdrReceiptID, receipt)
	}
	f.Header.Add(frame.HdrMessage, msg)
	if body != "" {
		f.Header.Add(frame.HdrContentType, "text/plain")
		f.Body = []byte(body)
	}
	return f
}

// wireVersion returns the version frames are written in: the negotiated
// one, or 1.0 (no escaping) before CONNECTED. Reader goroutine only.
func (s *Session) wireVersion() frame.Version {
	if s.version == "" {
		return frame.V10
	}
	return s.version
}

// closeTransport closes the transport once, gracefully (a WebSocket
// close handshake).
func (s *Session) closeTransport() {
	s.rwClose.Do(func() { s.rw.Close() })
}

// abortTransport closes the transport once, at once (no WebSocket close
// handshake): for dead peers, the linger timeout and Server.Close.
func (s *Session) abortTransport() {
	s.rwClose.Do(func() {
		if a, ok := s.rw.(interface{ CloseNow() error }); ok {
			a.CloseNow()
			return
		}
		s.rw.Close()
	})
}

// errPanic is the cause of a session whose Handler method (or Written
// callback) panicked; the client gets an ERROR "internal error".
var errPanic = errors.New("server: handler panicked")

// recovered is deferred around calls into the Handler and Written
// callbacks: a panic there is logged with its stack and becomes *errp
// (errPanic), so that it ends the session and not the process.
func (s *Session) recovered(where string, errp *error) {
	v := recover()
	if v == nil {
		return
	}
	s.srv.cfg.logger.Error("stomp handler panicked", "session", s.ID(), "in", where, "panic", v, "stack", string(debug.Stack()))
	*errp = fmt.Errorf("%w in %s: %v", errPanic, where, v)
}

// safely calls fn, a Handler method that returns nothing, and logs a panic
// instead of passing it on.
func (s *Session) safely(where string, fn func()) {
	var err error
	defer s.recovered(where, &err)
	fn()
}
