package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stompout/stomp/frame"
)

// Option configures a Server. Options are applied once, by New, which
// returns an error for an option given a value it cannot take.
type Option func(*config)

// config is a Server's settings; immutable after New.
type config struct {
	hbSend, hbRecv time.Duration // the server's own sx, sy
	requireHost    bool
	limits         frame.Limits
	connectTimeout time.Duration
	logger         *slog.Logger
	name           string
	outbound       int           // max queued frames before Deliver fails
	linger         time.Duration // how long a closing session may take to write its last frames
	txLimit        int           // max frames buffered in one session's open transactions
	subLimit       int           // max subscriptions of one session
	txBytes        int           // max bytes buffered in one session's open transactions
	outBytes       int           // max bytes of MESSAGE frames queued toward one session
	windowFrames   int           // max deferred SENDs (and frames waiting behind them) per session
	windowBytes    int           // max bytes of deferred SENDs per session
	origins        []string      // WebSocket cross-origin patterns
	err            error         // the options' errors, joined; New returns it
}

// positive is the Option that applies set if v is positive, and otherwise
// records that option name was given a value it cannot take.
func positive[T int | int64 | time.Duration](name string, v T, set func(*config)) Option {
	return func(c *config) {
		if v <= 0 {
			c.invalid("%s(%v): not positive", name, v)
			return
		}
		set(c)
	}
}

// invalid records that an option was given a value it cannot take.
func (c *config) invalid(format string, args ...any) {
	c.err = errors.Join(c.err, fmt.Errorf("server: "+format, args...))
}

// Defaults for the options.
const (
	DefaultHeartBeat         = 10 * time.Second
	DefaultConnectTimeout    = 10 * time.Second
	DefaultOutboundQueue     = 1024
	DefaultLinger            = 5 * time.Second
	DefaultTxLimit           = 10000
	DefaultSubscriptionLimit = 10000
	DefaultName              = "stompout"
	// DefaultTransactionBytes bounds the bytes (bodies and headers) one
	// session buffers in its open transactions: two frames of the
	// largest body frame.DefaultLimits allows.
	DefaultTransactionBytes = 16 << 20
	// DefaultOutboundBytes bounds the bytes of MESSAGE frames (bodies and
	// headers) queued toward one session.
	DefaultOutboundBytes = 16 << 20
	// DefaultSendWindowFrames and DefaultSendWindowBytes bound the
	// SENDs a Handler has deferred (Message.Defer) and not yet completed,
	// per session.
	DefaultSendWindowFrames = 256
	DefaultSendWindowBytes  = 8 << 20
)

// controlReserve is the room above the outbound bound kept for frames the
// engine itself queues (RECEIPT), so a full queue of messages does not make
// the reader wait at once.
const controlReserve = 64

func defaultConfig() config {
	return config{
		hbSend:         DefaultHeartBeat,
		hbRecv:         DefaultHeartBeat,
		requireHost:    true,
		connectTimeout: DefaultConnectTimeout,
		logger:         slog.New(slog.DiscardHandler),
		name:           DefaultName,
		outbound:       DefaultOutboundQueue,
		linger:         DefaultLinger,
		txLimit:        DefaultTxLimit,
		subLimit:       DefaultSubscriptionLimit,
		txBytes:        DefaultTransactionBytes,
		outBytes:       DefaultOutboundBytes,
		windowFrames:   DefaultSendWindowFrames,
		windowBytes:    DefaultSendWindowBytes,
	}
}

// WithHeartBeat sets the server's own heart-beat header sx,sy: send is the
// smallest interval at which the server can send heart-beats, recv the
// interval at which it wants to receive them (0: none). The intervals in
// force follow the specification: the server sends every max(sx,cy) and
// expects data every max(cx,sy) (with heartbeat.DefaultTolerance of margin),
// each direction only when both numbers are non-zero. Default 10s,10s.
// Negative intervals are an error.
func WithHeartBeat(send, recv time.Duration) Option {
	return func(c *config) {
		if send < 0 || recv < 0 {
			c.invalid("WithHeartBeat(%v, %v): negative interval", send, recv)
			return
		}
		c.hbSend, c.hbRecv = send, recv
	}
}

// WithRequireHost says whether a 1.1 or 1.2 CONNECT without a host header is
// refused (the specification makes it required). Default true.
func WithRequireHost(require bool) Option {
	return func(c *config) { c.requireHost = require }
}

// WithLimits sets the codec limits for frames read from clients; zero fields
// take frame's defaults, negative ones mean no limit (see frame.Limits). A
// frame over the limits ends the session with an ERROR.
func WithLimits(l frame.Limits) Option {
	return func(c *config) { c.limits = l }
}

// WithConnectTimeout bounds the time from the start of a session to its
// CONNECTED frame; past it the session gets an ERROR and is closed. Zero or
// negative: no timeout. Default 10s.
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) { c.connectTimeout = d }
}

// WithLogger sets the logger for what the engine cannot tell a client
// (handler failures, write errors). Default (and nil): discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithName sets the CONNECTED frame's server header ("name/version
// comments", per the specification). Default "stompout". An empty name
// leaves the header out.
func WithName(name string) Option {
	return func(c *config) { c.name = name }
}

// WithOutboundQueue bounds the number of MESSAGE frames a session holds for
// its writer; Session.Deliver fails with ErrSlowConsumer beyond it.
// Default 1024; n must be positive.
func WithOutboundQueue(n int) Option {
	return positive("WithOutboundQueue", n, func(c *config) { c.outbound = n })
}

// WithOutboundBytes bounds the bytes (bodies and headers) of the MESSAGE
// frames a session holds for its writer; Session.Deliver fails with
// ErrSlowConsumer once they reach it (a single message larger than the
// bound is still taken by an empty queue). Default DefaultOutboundBytes;
// n must be positive.
func WithOutboundBytes(n int) Option {
	return positive("WithOutboundBytes", n, func(c *config) { c.outBytes = n })
}

// WithLinger bounds how long a session that is closing (after an ERROR, a
// DISCONNECT or Shutdown) may spend writing its last frames before its
// transport is closed regardless. Default 5s; d must be positive.
func WithLinger(d time.Duration) Option {
	return positive("WithLinger", d, func(c *config) { c.linger = d })
}

// WithTransactionLimit bounds the number of frames one session may buffer
// in its open transactions, each open transaction counting as one (so a
// client cannot open transactions without end either); one more is a
// protocol error (ERROR "transaction too large"). Default 10000; n must be
// positive.
func WithTransactionLimit(n int) Option {
	return positive("WithTransactionLimit", n, func(c *config) { c.txLimit = n })
}

// WithTransactionBytes bounds the bytes (bodies and headers) one session
// may buffer in its open transactions; a transactional SEND or ACK that
// would pass it is a protocol error (ERROR "transaction too large").
// Default DefaultTransactionBytes; n must be positive.
func WithTransactionBytes(n int) Option {
	return positive("WithTransactionBytes", n, func(c *config) { c.txBytes = n })
}

// WithSubscriptionLimit bounds the number of subscriptions one session may
// hold at a time; a SUBSCRIBE beyond it is a protocol error, so a client
// cannot make the server's memory grow without end. Default 10000; n must
// be positive.
func WithSubscriptionLimit(n int) Option {
	return positive("WithSubscriptionLimit", n, func(c *config) { c.subLimit = n })
}

// WithSendWindow bounds, per session, the SENDs a Handler has deferred
// (Message.Defer) and not yet completed: at most frames of them (and at
// most frames frames waiting behind them for their RECEIPT), holding at
// most bytes bytes (bodies and headers; a single larger SEND is still taken
// when none is in flight). At the bound the session stops reading from its
// client until a completion makes room, so TCP pushes back on a producer
// faster than the handler; the heart-beat check is suspended meanwhile.
// This is the engine's producer flow control. Defaults
// DefaultSendWindowFrames and DefaultSendWindowBytes; both must be
// positive.
func WithSendWindow(frames, bytes int) Option {
	return func(c *config) {
		if frames <= 0 || bytes <= 0 {
			c.invalid("WithSendWindow(%d, %d): not positive", frames, bytes)
			return
		}
		c.windowFrames, c.windowBytes = frames, bytes
	}
}
