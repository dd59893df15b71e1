package server

import (
	"log/slog"
	"time"

	"github.com/stompout/stomp/frame"
)

// Option configures a Server. Options are applied once, by New.
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
	origins        []string      // WebSocket cross-origin patterns
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
	}
}

// WithHeartBeat sets the server's own heart-beat header sx,sy: send is the
// smallest interval at which the server can send heart-beats, recv the
// interval at which it wants to receive them (0: none). The intervals in
// force follow the specification: the server sends every max(sx,cy) and
// expects data every max(cx,sy) (with heartbeat.DefaultTolerance of margin),
// each direction only when both numbers are non-zero. Default 10s,10s.
func WithHeartBeat(send, recv time.Duration) Option {
	return func(c *config) { c.hbSend, c.hbRecv = max(send, 0), max(recv, 0) }
}

// WithRequireHost says whether a 1.1 or 1.2 CONNECT without a host header is
// refused (the specification makes it required). Default true.
func WithRequireHost(require bool) Option {
	return func(c *config) { c.requireHost = require }
}

// WithLimits sets the codec limits for frames read from clients; zero fields
// take frame's defaults. A frame over the limits ends the session with an
// ERROR.
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
// (handler failures, write errors). Default: discard.
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
// Default 1024.
func WithOutboundQueue(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.outbound = n
		}
	}
}

// WithLinger bounds how long a session that is closing (after an ERROR, a
// DISCONNECT or Shutdown) may spend writing its last frames before its
// transport is closed regardless. Default 5s.
func WithLinger(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.linger = d
		}
	}
}

// WithTransactionLimit bounds the number of frames one session may buffer
// in its open transactions, each open transaction counting as one (so a
// client cannot open transactions without end either); one more is a
// protocol error. Default 10000.
func WithTransactionLimit(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.txLimit = n
		}
	}
}

// WithSubscriptionLimit bounds the number of subscriptions one session may
// hold at a time; a SUBSCRIBE beyond it is a protocol error, so a client
// cannot make the server's memory grow without end. Default 10000.
func WithSubscriptionLimit(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.subLimit = n
		}
	}
}
