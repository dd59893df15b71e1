package stomp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp/frame"
)

// Conn is a STOMP client connection that lives from Dial (or Connect)
// until Close or Disconnect, across any number of transports. Each
// transport is one session: a handshake, a reader goroutine that hands
// MESSAGE frames to subscriptions and RECEIPT frames to receipts, and a
// writer goroutine that writes, in batches, the frames that calls queue,
// and the heart-beats. When a session ends (a read or write error, EOF, a
// heart-beat timeout, an ERROR frame), the Conn dials again by its
// reconnect policy, subscribes every live subscription again, and goes on
// writing what the calls queued meanwhile; subscription channels stay
// open. See the package documentation for what survives a reconnect and
// what does not.
//
// Every method is safe for concurrent use. The Conn ends once: by Close or
// Disconnect, or when it cannot or may not reconnect; Done is then closed
// and Err says why.
type Conn struct {
	cfg *config
	log *slog.Logger
	// dialer opens new transports, for reconnects; nil when the Conn
	// cannot reconnect (Connect without WithRedial).
	dialer *dialer

	reqPool sync.Pool               // of *request
	writeq  chan *request           // calls -> the current session's writer; outlives sessions
	direct  atomic.Pointer[session] // the session whose direct path is open (direct.go), or nil

	unrouted        chan Message // closed by finish, after the last session's reader is gone
	unroutedDropped atomic.Uint64

	subIDs, rcptIDs, txIDs ids
	seq                    atomic.Uint64 // creation order of subscriptions and transactions

	// subs maps subscription ids to live subscriptions. The reader loads it
	// without a lock on every MESSAGE; it is replaced (copy on write) under
	// mu.
	subs atomic.Pointer[map[string]*Subscription]

	recv budget // bytes of messages waiting for the application

	replies replyState // Request's reply routing (reply.go)

	disconnecting atomic.Bool   // Disconnect was called: end, do not reconnect
	ignoredErrors atomic.Uint64 // ERROR frames that ended nothing (see ignorableError)

	mu      sync.Mutex // guards the fields below; never held while blocking or across another lock
	sess    *session   // the session in service; nil during an outage and once finished
	last    *session   // the latest session put in service
	closed  bool       // no more sessions: Close, Disconnect or a final failure
	err     error      // why the Conn ended; nil if the user ended it
	txs     map[string]*Tx
	retired retiredSubs // subscriptions ended by Unsubscribe or overflow, for late MESSAGEs
	state   StateChange // the latest state
	events  *eventQueue // to WithStateListener's function; nil without one

	closeOnce sync.Once
	closing   chan struct{}   // closed when closed is set: nothing new is queued
	stop      context.Context // cancelled by Close: ends a dial, a backoff wait, a session
	cancel    context.CancelFunc
	wg        sync.WaitGroup // the supervisor, pumps and the event goroutine
	done      chan struct{}  // closed once every goroutine of the Conn has exited, after err is set
}

// Connect runs STOMP over rw, a transport the caller has already opened,
// and returns once the server has answered CONNECT with CONNECTED. The
// Conn owns rw from then on and closes it when it ends; if Connect fails,
// it closes rw too. rw's Close must unblock a Read or Write in progress,
// as a net.Conn's does. If rw is a net.Conn (or has SetWriteDeadline),
// WithWriteTimeout applies to its writes.
//
// A Conn made by Connect reconnects only if WithRedial says how to open a
// new transport; otherwise it ends with its first transport.
//
// Connect blocks until CONNECTED arrives, the server refuses (a
// *ConnectError carrying the *ServerError), or ctx ends (ctx.Err(); rw is
// closed to interrupt the handshake). The ctx bounds only the handshake.
func Connect(ctx context.Context, rw io.ReadWriteCloser, opts ...Option) (*Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		rw.Close()
		return nil, err
	}
	var d *dialer
	if cfg.redial != nil {
		d = &dialer{redial: cfg.redial}
	}
	c := newConn(cfg, d)
	s, err := c.handshake(ctx, rw, endpoint{})
	if err != nil {
		c.abandon()
		return nil, err
	}
	c.start(s)
	return c, nil
}

func newConn(cfg *config, d *dialer) *Conn {
	c := &Conn{
		cfg:      cfg,
		log:      cfg.logger,
		dialer:   d,
		writeq:   make(chan *request, cfg.outageQueue),
		unrouted: make(chan Message, cfg.unroutedBuffer),
		txs:      make(map[string]*Tx),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		recv:     budget{limit: cfg.recvBuffer, room: make(chan struct{}, 1)},
	}
	c.stop, c.cancel = context.WithCancel(context.Background())
	c.subs.Store(&map[string]*Subscription{})
	if cfg.onState != nil {
		c.events = newEventQueue(cfg.onState)
		c.wg.Go(c.events.run)
	}
	c.setState(StateChange{State: StateConnecting})
	return c
}

// abandon releases a Conn whose first handshake failed.
func (c *Conn) abandon() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.closing) })
	c.cancel()
	if c.events != nil {
		c.events.close()
	}
	c.wg.Wait()
}

// start puts the first session in service and starts the supervisor.
func (c *Conn) start(s *session) {
	c.attach(s)
	c.wg.Go(func() { c.supervise(s) })
	go func() {
		c.wg.Wait()
		close(c.done)
	}()
}

// current returns the session in service, or nil during an outage.
func (c *Conn) current() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Version returns the protocol version negotiated with the server on the
// current transport (the latest one during an outage).
func (c *Conn) Version() Version { return c.lastSession().version }

// Session returns the session header of the latest CONNECTED ("" if the
// server sent none).
func (c *Conn) Session() string { return c.lastSession().id }

// Server returns the server header of the latest CONNECTED, e.g.
// "RabbitMQ/3.10.8".
func (c *Conn) Server() string { return c.lastSession().server }

// Addr returns the address of the broker the Conn is connected to (the
// latest one during an outage), without any passcode.
func (c *Conn) Addr() string { return c.lastSession().addr }

// HeartBeat returns the heart-beat intervals negotiated on the latest
// transport: how often the client sends at least something, and how often
// it expects something from the server; 0 means none.
func (c *Conn) HeartBeat() (send, recv time.Duration) {
	s := c.lastSession()
	return s.hbSend, s.hbRecv
}

// lastSession returns the session in service or the latest one.
func (c *Conn) lastSession() *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Done returns a channel closed once the Conn has ended and its
// goroutines have exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the Conn ended: nil while it lives (reconnecting
// included) and after the user ended it with Disconnect or Close;
// otherwise a *ServerError, a *ConnectError, a *HeartBeatError, or a
// transport or protocol error, once reconnecting was not possible or gave
// up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// closedErr is what calls on an ended connection return.
func (c *Conn) closedErr() error { return closedError(c.Err()) }

// Unrouted returns the channel of MESSAGE frames that match no live
// subscription: those whose subscription header names a subscription the
// client never made (RabbitMQ's /temp-queue/ replies, for one, except the
// replies to Request, which go to their Request), or one
// that has ended (messages in flight when Unsubscribe ran, or past a slow
// consumer's overflow). The former can be acknowledged as usual; Ack and
// Nack of the latter return ErrSubscriptionEnded, as for any message of
// an ended subscription. The channel holds WithUnroutedBuffer messages;
// when it is full, a further unrouted message is dropped, logged at warn
// level and counted in UnroutedDropped. It is closed when the Conn ends.
func (c *Conn) Unrouted() <-chan Message { return c.unrouted }

// UnroutedDropped returns how many unrouted messages were dropped because
// the Unrouted channel was full.
func (c *Conn) UnroutedDropped() uint64 { return c.unroutedDropped.Load() }

// IgnoredErrors returns how many ERROR frames the Conn logged and went on
// from, rather than reconnecting: those a broker sends without closing
// about a subscription the client had already ended (RabbitMQ's
// "Subscription not found" after an UNSUBSCRIBE).
func (c *Conn) IgnoredErrors() uint64 { return c.ignoredErrors.Load() }

// Subscriptions returns the live subscriptions, oldest first.
func (c *Conn) Subscriptions() []*Subscription {
	m := *c.subs.Load()
	out := make([]*Subscription, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Subscription) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// Transactions returns the open transactions, oldest first.
func (c *Conn) Transactions() []*Tx {
	c.mu.Lock()
	out := make([]*Tx, 0, len(c.txs))
	for _, t := range c.txs {
		out = append(out, t)
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b *Tx) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// Disconnect ends the Conn gracefully: it sends DISCONNECT with a
// receipt and waits for the RECEIPT, or for the server to close the
// transport (RabbitMQ's Web-STOMP does so without a RECEIPT), or for ctx to
// end; then it closes the transport and waits for the Conn's goroutines to
// exit. During an outage there is nothing to disconnect from: it closes
// at once. It returns nil on a RECEIPT or a clean close by the server,
// ctx.Err() if ctx ended first (the Conn is closed all the same), an
// error if the DISCONNECT could not be written, and the Conn's error if it
// had already failed. Calling it again, or after Close, returns at once.
// Nothing is written after the DISCONNECT frame: calls whose frames were
// queued behind it fail with ErrClosed.
func (c *Conn) Disconnect(ctx context.Context) error {
	if !c.disconnecting.CompareAndSwap(false, true) {
		return c.waitEnded(ctx)
	}
	var err error
	s := c.current()
	written := false
	if s != nil {
		req := c.newRequest(frame.CmdDisconnect)
		req.bound = s // never to a later session
		var r *Receipt
		cc := callConfig{receipt: &r}
		if err = c.do(ctx, req, &cc); err == nil {
			written = true
			select {
			case <-r.Done():
				err = r.Err()
			case <-s.done:
				err = s.disconnectEnd()
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
	}
	c.shutdown(nil)
	<-c.done
	if cause := c.Err(); cause != nil {
		return closedError(cause)
	}
	if !written && errors.Is(err, ErrClosed) {
		// The DISCONNECT never went out: its transport was lost first
		// (or a Close came first, which is the user's clean end).
		if cause := s.disconnectEnd(); cause != nil {
			return fmt.Errorf("stomp: disconnect: the connection was lost before DISCONNECT was written: %w", lost(cause))
		}
		return nil
	}
	if errors.Is(err, ErrClosed) {
		return nil // the server closed the transport after DISCONNECT
	}
	return err
}

// waitEnded is the second Disconnect: wait for the first to finish.
func (c *Conn) waitEnded(ctx context.Context) error {
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if cause := c.Err(); cause != nil {
		return closedError(cause)
	}
	return nil
}

// Close ends the Conn at once, without DISCONNECT: it closes the
// transport and waits for the Conn's goroutines to exit. Pending receipts
// resolve with ErrClosed and subscriptions end with ErrClosed (messages
// already in a channel stay readable; those still waiting for room are
// dropped: in the client ack modes the broker redelivers them); the server
// aborts open transactions. It is idempotent and always returns nil.
func (c *Conn) Close() error {
	c.shutdown(nil)
	<-c.done
	return nil
}

// shutdown starts the end the user asked for: no new session, the
// current one ends. The supervisor finishes the Conn.
func (c *Conn) shutdown(cause error) {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.err = cause
	}
	s := c.sess
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.closing) })
	c.cancel()
	if s != nil {
		s.fail(errUserClosed)
	}
}

// isNetClosed reports errors that only say the transport was closed.
func isNetClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}
