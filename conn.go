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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
)

// Conn is a STOMP client connection. It owns two goroutines: a reader,
// which reads the transport and hands MESSAGE frames to subscriptions,
// RECEIPT frames to receipts and ERROR frames to the shutdown path, and a
// writer, which writes the frames that calls queue, in batches, and the
// heart-beats. Every method is safe for concurrent use. The connection
// ends once: by Disconnect or Close, by an ERROR frame, by a transport
// error or by a heart-beat timeout; Done is then closed and Err says why.
type Conn struct {
	cfg *config
	log *slog.Logger
	rw  io.ReadWriteCloser
	dl  writeDeadliner // rw's write deadline, or nil

	// Fixed by the handshake, read-only afterwards.
	version        Version
	session        string
	server         string
	hbSend, hbRecv time.Duration

	r   *frame.Reader      // owned by the reader goroutine
	w   *frame.Writer      // owned by the writer goroutine
	mon *heartbeat.Monitor // touched by the reader; ends the connection itself (OnDead)

	reqPool sync.Pool     // of *request
	writeq  chan *request // calls -> writer
	ctrlSig chan struct{} // reader -> writer: ctrl has frames (capacity 1)
	ctrlMu  sync.Mutex
	ctrl    []*frame.Frame // frames the reader queues without blocking (guarded by ctrlMu)

	wroteDisconnect bool // owned by the writer goroutine: nothing is written after DISCONNECT

	unrouted        chan Message // written and closed by the reader goroutine
	unroutedDropped atomic.Uint64

	subIDs, rcptIDs, txIDs ids
	seq                    atomic.Uint64 // creation order of subscriptions and transactions

	// subs maps subscription ids to live subscriptions. The reader loads it
	// without a lock on every MESSAGE; it is replaced (copy on write) under
	// mu.
	subs atomic.Pointer[map[string]*Subscription]

	disconnecting atomic.Bool // DISCONNECT sent: EOF from the server is a clean end

	mu       sync.Mutex // guards the fields below; never held while blocking or across another lock
	closed   bool
	err      error // why the connection ended; nil if the user ended it
	receipts map[string]*Receipt
	txs      map[string]*Tx
	retired  retiredSubs // subscriptions ended by Unsubscribe or overflow, for late MESSAGEs

	once    sync.Once
	closing chan struct{} // closed by shutdown: the goroutines stop
	running atomic.Int32  // goroutines alive; the last to exit closes done
	done    chan struct{} // closed once both goroutines have exited, after err is set
}

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// Connect runs STOMP over rw, a transport the caller has already opened,
// and returns once the server has answered CONNECT with CONNECTED. The
// Conn owns rw from then on and closes it when it ends; if Connect fails,
// it closes rw too. rw's Close must unblock a Read or Write in progress,
// as a net.Conn's does. If rw is a net.Conn (or has SetWriteDeadline),
// WithWriteTimeout applies to its writes.
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
	return connect(ctx, rw, cfg)
}

func connect(ctx context.Context, rw io.ReadWriteCloser, cfg *config) (*Conn, error) {
	c := &Conn{
		cfg:      cfg,
		log:      cfg.logger,
		rw:       rw,
		writeq:   make(chan *request, writeQueue),
		ctrlSig:  make(chan struct{}, 1),
		unrouted: make(chan Message, cfg.unroutedBuffer),
		receipts: make(map[string]*Receipt),
		txs:      make(map[string]*Tx),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.dl, _ = rw.(writeDeadliner)
	c.w = frame.NewWriter(transportWriter{c})
	c.r = frame.NewReader(transportReader{c})
	c.r.SetLimits(cfg.limits)
	c.subs.Store(&map[string]*Subscription{})
	if err := c.handshake(ctx); err != nil {
		rw.Close()
		return nil, err
	}
	c.r.SetVersion(c.version)
	c.w.SetVersion(c.version)
	c.mon = heartbeat.NewMonitor(c.hbRecv, cfg.hbTolerance)
	// The monitor ends the connection itself: the writer may be stuck in
	// a write to a server that reads nothing (with no write deadline on
	// the transport, for good) and could not watch it then.
	c.mon.OnDead(func() { c.shutdown(c.heartBeatError()) })
	c.log.Debug("stomp: connected", "version", c.version, "session", c.session, "server", c.server,
		"heart-beat-send", c.hbSend, "heart-beat-recv", c.hbRecv)
	c.running.Store(2)
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// handshake writes CONNECT and reads up to CONNECTED, on the caller's
// goroutine, before the reader and writer start.
func (c *Conn) handshake(ctx context.Context) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	// Ending ctx closes the transport, which unblocks the reads and writes.
	stop := context.AfterFunc(ctx, func() { c.rw.Close() })
	defer func() {
		if !stop() && ctx.Err() != nil {
			err = ctx.Err()
		}
	}()
	if err := c.w.WriteFrame(c.connectFrame()); err != nil {
		return fmt.Errorf("stomp: connect: %w", err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("stomp: connect: %w", err)
	}
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			return fmt.Errorf("stomp: connect: reading CONNECTED: %w", err)
		}
		switch f.Command {
		case "":
			continue
		case frame.CmdConnected:
			return c.connected(f)
		case frame.CmdError:
			return &ConnectError{Server: newServerError(f)}
		default:
			return &ConnectError{Reason: "server answered CONNECT with " + f.Command}
		}
	}
}

func (c *Conn) connectFrame() *frame.Frame {
	cfg := c.cfg
	f := frame.New(frame.CmdConnect)
	vs := make([]string, len(cfg.versions))
	for i, v := range cfg.versions {
		vs[i] = string(v)
	}
	f.Header.Add(frame.HdrAcceptVersion, strings.Join(vs, ","))
	if cfg.host != "" {
		f.Header.Add(frame.HdrHost, cfg.host)
	}
	if cfg.hasLogin {
		f.Header.Add(frame.HdrLogin, cfg.login)
		f.Header.Add(frame.HdrPasscode, cfg.passcode)
	}
	if cfg.hbSend > 0 || cfg.hbRecv > 0 {
		f.Header.Add(frame.HdrHeartBeat, heartbeat.Settings{Send: cfg.hbSend, Recv: cfg.hbRecv}.String())
	}
	for _, kv := range cfg.connectHeaders {
		f.Header.Add(kv[0], kv[1])
	}
	return f
}

func (c *Conn) connected(f *frame.Frame) error {
	v := Version(f.Header.Get(frame.HdrVersion))
	if v == "" {
		v = V10 // a 1.0 server does not say
	}
	if !slices.Contains(c.cfg.versions, v) {
		return &ConnectError{Reason: fmt.Sprintf("server chose version %q, not one of %v", v, c.cfg.versions)}
	}
	c.version = v
	c.session = f.Header.Get(frame.HdrSession)
	c.server = f.Header.Get(frame.HdrServer)
	if v == V10 {
		return nil // no heart-beats in 1.0
	}
	remote, err := heartbeat.Parse(f.Header.Get(frame.HdrHeartBeat))
	if err != nil {
		return &ConnectError{Reason: err.Error()}
	}
	c.hbSend, c.hbRecv = heartbeat.Negotiate(heartbeat.Settings{Send: c.cfg.hbSend, Recv: c.cfg.hbRecv}, remote)
	return nil
}

// Version returns the protocol version negotiated with the server.
func (c *Conn) Version() Version { return c.version }

// Session returns the session header of CONNECTED ("" if the server sent none).
func (c *Conn) Session() string { return c.session }

// Server returns the server header of CONNECTED, e.g. "RabbitMQ/3.10.8".
func (c *Conn) Server() string { return c.server }

// HeartBeat returns the negotiated heart-beat intervals: how often the
// client sends at least something, and how often it expects something from
// the server; 0 means none.
func (c *Conn) HeartBeat() (send, recv time.Duration) { return c.hbSend, c.hbRecv }

// Done returns a channel closed once the connection has ended and its
// goroutines have exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended: nil while it runs and after the
// user ended it with Disconnect or Close; otherwise a *ServerError, a
// *HeartBeatError, or a transport or protocol error.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// closedErr is what calls on an ended connection return.
func (c *Conn) closedErr() error { return closedError(c.Err()) }

// Unrouted returns the channel of MESSAGE frames that match no live
// subscription: those whose subscription header names a subscription the
// client never made (RabbitMQ's /temp-queue/ replies, for one), or one
// that has ended (messages in flight when Unsubscribe ran, or past a slow
// consumer's overflow). The former can be acknowledged as usual; Ack and
// Nack of the latter return ErrSubscriptionEnded, as for any message of
// an ended subscription. The channel
// holds WithUnroutedBuffer messages; when it is full, a further unrouted
// message is dropped, logged at warn level and counted in
// UnroutedDropped. The reader goroutine closes it when the connection
// ends.
func (c *Conn) Unrouted() <-chan Message { return c.unrouted }

// UnroutedDropped returns how many unrouted messages were dropped because
// the Unrouted channel was full.
func (c *Conn) UnroutedDropped() uint64 { return c.unroutedDropped.Load() }

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

// Disconnect ends the connection gracefully: it sends DISCONNECT with a
// receipt and waits for the RECEIPT, or for the server to close the
// transport (RabbitMQ's Web-STOMP does so without a RECEIPT), or for ctx to
// end; then it closes the transport and waits for the connection's
// goroutines to exit. It returns nil on a RECEIPT or a clean close by the
// server, ctx.Err() if ctx ended first (the connection is closed all the
// same), and the connection's error if it had already failed. Calling it
// again, or after Close, returns at once. Nothing is written after the
// DISCONNECT frame: calls whose frames were queued behind it fail with
// ErrClosed.
func (c *Conn) Disconnect(ctx context.Context) error {
	if !c.disconnecting.CompareAndSwap(false, true) {
		return c.waitEnded(ctx)
	}
	var r *Receipt
	req := c.newRequest(frame.CmdDisconnect)
	cc := callConfig{receipt: &r}
	err := c.do(ctx, req, &cc)
	if err == nil {
		select {
		case <-r.Done():
			err = r.Err()
		case <-c.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	c.shutdown(nil)
	<-c.done
	if cause := c.Err(); cause != nil {
		return closedError(cause)
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

// Close ends the connection at once, without DISCONNECT: it closes the
// transport and waits for the connection's goroutines to exit. Pending
// receipts and open subscriptions end with ErrClosed; the server aborts
// open transactions. It is idempotent and always returns nil.
func (c *Conn) Close() error {
	c.shutdown(nil)
	<-c.done
	return nil
}

// shutdown is the one way a connection ends. cause is nil when the user
// ended it. Everything waiting on the connection is resolved here, then the
// transport is closed, which stops both goroutines.
func (c *Conn) shutdown(cause error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.err = cause
		receipts := c.receipts
		c.receipts = nil
		clear(c.txs)
		subs := *c.subs.Swap(&map[string]*Subscription{})
		c.mu.Unlock()

		end := cause
		if end == nil {
			end = ErrClosed
			c.log.Debug("stomp: connection closed")
		} else {
			c.log.Warn("stomp: connection failed", "err", cause)
		}
		for _, r := range receipts {
			r.resolve(end)
		}
		for _, s := range subs {
			s.end(end)
		}
		if c.mon != nil {
			c.mon.Stop()
		}
		close(c.closing)
		c.rw.Close()
	})
}

// exited is deferred by both goroutines: the last one out closes done.
func (c *Conn) exited() {
	if c.running.Add(-1) == 0 {
		close(c.done)
	}
}

// isNetClosed reports errors that only say the transport was closed.
func isNetClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}
