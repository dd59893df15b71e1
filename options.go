package stomp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/reconnect"
)

// Defaults of the connection options.
const (
	// DefaultSubscriptionBuffer is the capacity of a subscription's
	// channel; messages beyond it wait in the subscription's backlog (see
	// Subscription).
	DefaultSubscriptionBuffer = 256
	// DefaultUnroutedBuffer is the size of the Unrouted channel.
	DefaultUnroutedBuffer = 64
	// DefaultHost is the host header sent when WithHost is not used: "/",
	// RabbitMQ's default virtual host, which other brokers ignore.
	DefaultHost = "/"
	// DefaultHeartBeatTolerance is how many negotiated receive intervals
	// of silence the reader accepts before it declares the server dead.
	// It is a little above heartbeat.DefaultTolerance because ActiveMQ
	// Classic sends its first heart-beat two full intervals after
	// CONNECTED (measured on 5.17.2), then one every interval.
	DefaultHeartBeatTolerance = 2.5
	// DefaultHeartBeat is the heart-beat interval asked for in both
	// directions unless WithHeartBeat says otherwise: often enough to find
	// a half-open connection behind a NAT or a load balancer within a
	// minute, rarely enough to cost nothing.
	DefaultHeartBeat = 10 * time.Second
	// DefaultReceiveBuffer is the budget, in bytes, of the messages a Conn
	// holds for the application beyond its subscription channels, before
	// its reader waits (see Subscription).
	DefaultReceiveBuffer = 64 << 20
	// DefaultConnectTimeout bounds each connection attempt, dial and
	// handshake: a broker that accepts the transport but never answers
	// CONNECT must not hold up a reconnect (or the next address) for good.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultOutageQueue is how many frames may wait for the writer,
	// during an outage included, before calls block.
	DefaultOutageQueue = 256
)

// Option configures a connection; pass options to Dial or Connect. Options
// are applied in order and validated once, when the connection starts.
type Option func(*config)

// config is the validated set of connection options. It is immutable once
// the connection has started.
type config struct {
	login, passcode string
	hasLogin        bool
	host            string
	versions        []Version
	hbSend, hbRecv  time.Duration
	hbTolerance     float64
	connectHeaders  [][2]string
	limits          frame.Limits
	logger          *slog.Logger
	writeTimeout    time.Duration
	readCoalesce    time.Duration
	tlsConfig       *tls.Config
	subBuffer       int
	unroutedBuffer  int
	recvBuffer      int64
	outageQueue     int
	outageWait      bool
	connectTimeout  time.Duration
	policy          reconnect.Policy
	connectRetry    bool
	shuffle         bool
	shuffleSet      bool
	redial          func(context.Context) (io.ReadWriteCloser, error)
	dialer          *net.Dialer
	wsHeader        http.Header
	onState         func(StateChange)
	err             error // the first invalid option
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		host:           DefaultHost,
		versions:       []Version{V10, V11, V12},
		hbSend:         DefaultHeartBeat,
		hbRecv:         DefaultHeartBeat,
		hbTolerance:    DefaultHeartBeatTolerance,
		subBuffer:      DefaultSubscriptionBuffer,
		unroutedBuffer: DefaultUnroutedBuffer,
		recvBuffer:     DefaultReceiveBuffer,
		outageQueue:    DefaultOutageQueue,
		outageWait:     true,
		connectTimeout: DefaultConnectTimeout,
		policy:         reconnect.Default(),
	}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// netDialer is the dialer of TCP connections (WithDialer, or a zero one).
func (c *config) netDialer() *net.Dialer {
	if c.dialer != nil {
		return c.dialer
	}
	return &net.Dialer{}
}

func (c *config) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("stomp: invalid option: "+format, args...)
	}
}

// WithLogin sets the login and passcode headers of CONNECT. The passcode is
// never logged.
func WithLogin(login, passcode string) Option {
	return func(c *config) { c.login, c.passcode, c.hasLogin = login, passcode, true }
}

// WithHost sets the host header of CONNECT: the virtual host. RabbitMQ
// takes its vhost name ("/" is the default vhost) and refuses unknown
// names, host names included; ActiveMQ ignores it. The default is
// DefaultHost; an empty host omits the header.
func WithHost(host string) Option { return func(c *config) { c.host = host } }

// WithVersions sets the versions offered in accept-version, by default
// 1.0, 1.1 and 1.2. The server picks one of them.
func WithVersions(vs ...Version) Option {
	return func(c *config) {
		if len(vs) == 0 {
			c.fail("WithVersions needs at least one version")
			return
		}
		for _, v := range vs {
			if !v.Valid() {
				c.fail("unknown STOMP version %q", v)
				return
			}
		}
		c.versions = append([]Version(nil), vs...)
	}
}

// WithHeartBeat sets the heart-beat header of CONNECT: send is how often the
// client can send heart-beats, recv how often it wants them from the
// server; 0 means none. The default is DefaultHeartBeat both ways. The
// intervals in force are negotiated with the server's CONNECTED (see
// Conn.HeartBeat); a server that offers none gets none. Durations are
// rounded up to whole milliseconds.
func WithHeartBeat(send, recv time.Duration) Option {
	return func(c *config) {
		if send < 0 || recv < 0 {
			c.fail("negative heart-beat interval")
			return
		}
		c.hbSend, c.hbRecv = send, recv
	}
}

// WithHeartBeatTolerance sets how much silence the reader accepts, as a
// multiple of the negotiated receive interval, before it declares the
// connection dead with a HeartBeatError. The default is
// DefaultHeartBeatTolerance; it must be at least 1.
func WithHeartBeatTolerance(f float64) Option {
	return func(c *config) {
		if !(f >= 1) || math.IsInf(f, 0) {
			c.fail("heart-beat tolerance %v is not a number >= 1", f)
			return
		}
		c.hbTolerance = f
	}
}

// WithConnectHeader adds a header to the CONNECT frame, after the ones the
// client writes itself (which win on repeats, as the first entry does).
func WithConnectHeader(key, value string) Option {
	return func(c *config) { c.connectHeaders = append(c.connectHeaders, [2]string{key, value}) }
}

// WithLimits sets the limits on what the reader accepts from the server
// (frame, body, header count and line sizes); zero fields keep the
// defaults of package frame. A frame over the limits ends the connection.
func WithLimits(l frame.Limits) Option { return func(c *config) { c.limits = l } }

// WithLogger sets the logger for connection events (debug) and anomalies
// such as dropped or unrouted messages (warn). By default nothing is
// logged.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithWriteTimeout bounds each write to the transport (a buffer of at
// most 32 KiB, so the bound is on progress, not on a whole large frame):
// when the transport has write deadlines (a net.Conn, and the WebSocket
// transports of Dial), a write that takes longer fails and ends the
// connection. Over a WebSocket a body of 32 KiB or more goes in one
// message, under one deadline. 0, the default, means no bound, except that when the server
// sends heart-beats the heart-beat timeout (interval times tolerance)
// bounds each write: a server that reads nothing for that long is taken
// for dead.
func WithWriteTimeout(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("negative write timeout")
			return
		}
		c.writeTimeout = d
	}
}

// MaxReadCoalesce is the longest wait WithReadCoalesce accepts.
const MaxReadCoalesce = 100 * time.Millisecond

// WithReadCoalesce trades latency for CPU on the receiving side. After a
// frame that left nothing buffered, the reader waits d before it reads
// the transport again, so that what the server writes meanwhile is read
// at once: one system call and one wake-up for many frames instead of
// one each. It is for a consumer of a server that writes one frame per
// write (RabbitMQ and ActiveMQ do) at high rates: against RabbitMQ, 1 ms
// cut the client's CPU per message by about four, and 200 µs by a sixth
// to a third without a latency that showed at 5,000 msg/s (BENCHMARKS.md).
// Every frame may then reach the application up to d later than it
// arrived, and a wait shorter than a millisecond may last longer in a
// process with little else to do (against the embedded broker at 5,000
// msg/s, 200 µs took the median from 0.6 to 1.2 ms).
// The reader does not wait while the connection writes: a write (an ACK,
// a SEND, a SUBSCRIBE) since the last frame, or during the wait, means an
// answer is awaited, and holding it back would slow a flow bounded by a
// window (a prefetch, receipts awaited before more sends) to one window
// per d. Nothing is lost, and the wait ends with the connection. 0, the
// default, reads as soon as the last frame is handled; d may not exceed
// MaxReadCoalesce.
func WithReadCoalesce(d time.Duration) Option {
	return func(c *config) {
		if d < 0 || d > MaxReadCoalesce {
			c.fail("read coalesce %v outside [0, %v]", d, MaxReadCoalesce)
			return
		}
		c.readCoalesce = d
	}
}

// WithTLSConfig sets the TLS configuration Dial uses for tls://, ssl://
// and wss:// addresses. Without it Dial uses a zero tls.Config with the
// address's host as ServerName.
func WithTLSConfig(cfg *tls.Config) Option { return func(c *config) { c.tlsConfig = cfg } }

// WithSubscriptionBuffer sets the default buffer size of subscription
// channels (DefaultSubscriptionBuffer); WithBuffer overrides it per
// subscription. It must be at least 1.
func WithSubscriptionBuffer(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("subscription buffer %d < 1", n)
			return
		}
		c.subBuffer = n
	}
}

// WithUnroutedBuffer sets the size of the Unrouted channel
// (DefaultUnroutedBuffer). It must be at least 1.
func WithUnroutedBuffer(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("unrouted buffer %d < 1", n)
			return
		}
		c.unroutedBuffer = n
	}
}

// WithReconnect sets the policy by which a Conn connects again when its
// transport is lost (reconnect.Default(): exponential backoff with jitter,
// forever); reconnect.Never() turns reconnecting off, so that the Conn
// ends with its first transport. Dial reconnects by default; Connect only
// with WithRedial too.
func WithReconnect(p reconnect.Policy) Option { return func(c *config) { c.policy = p } }

// WithConnectTimeout bounds each connection attempt, the dial and the
// handshake up to CONNECTED (DefaultConnectTimeout); the ctx of Dial or
// Connect bounds the first one too. It must be positive.
func WithConnectTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("connect timeout %v <= 0", d)
			return
		}
		c.connectTimeout = d
	}
}

// WithConnectRetry makes Dial go on trying by the reconnect policy when
// the first round of connection attempts fails, until one succeeds, the
// policy gives up, a login is refused, or Dial's ctx ends. Off by default:
// a wrong address should fail fast at start-up.
func WithConnectRetry(on bool) Option { return func(c *config) { c.connectRetry = on } }

// WithShuffle makes every round of connection attempts try the addresses
// of a failover list in a new random order, which spreads a fleet of
// clients over the brokers of a cluster. Off by default (in the order
// given, so the first address is preferred), unless the failover URL says
// ?randomize=true.
func WithShuffle(on bool) Option {
	return func(c *config) { c.shuffle, c.shuffleSet = on, true }
}

// WithRedial gives a Conn made by Connect a way to open a new transport,
// so that it can reconnect: f is called for each attempt, with a ctx that
// Close cancels.
func WithRedial(f func(ctx context.Context) (io.ReadWriteCloser, error)) Option {
	return func(c *config) {
		if f == nil {
			c.fail("WithRedial(nil)")
			return
		}
		c.redial = f
	}
}

// WithDialer sets the dialer Dial uses for TCP, TLS and WebSocket
// connections (timeouts, keep-alive, local address, a Control hook).
func WithDialer(d *net.Dialer) Option {
	return func(c *config) {
		if d == nil {
			c.fail("WithDialer(nil)")
			return
		}
		c.dialer = d
	}
}

// WithWebSocketHeader sets HTTP headers of the WebSocket handshake that
// Dial makes for ws:// and wss:// addresses (a gateway's cookie or bearer
// token, an Origin); they are sent again on every reconnect. h is copied.
// Headers the handshake sets itself (Upgrade, Sec-WebSocket-*) cannot be
// overridden.
func WithWebSocketHeader(h http.Header) Option {
	h = h.Clone()
	return func(c *config) { c.wsHeader = h }
}

// WithOutageWait says what calls do while the Conn is reconnecting: wait
// for the next transport, bounded by their ctx (true, the default), or
// fail at once with ErrNotConnected (false). Either way at most
// WithOutageQueue frames wait.
func WithOutageWait(wait bool) Option { return func(c *config) { c.outageWait = wait } }

// WithOutageQueue bounds how many frames may wait for the writer, during
// an outage included (DefaultOutageQueue); calls past it block, bounded by
// their ctx. It must be at least 1.
func WithOutageQueue(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.fail("outage queue %d < 1", n)
			return
		}
		c.outageQueue = n
	}
}

// WithReceiveBuffer sets the budget, in bytes, of the messages a Conn
// holds for the application beyond its subscription channels
// (DefaultReceiveBuffer). Past it the reader waits for the application and
// the transport pushes back on the broker (see Subscription). It must be
// at least 1.
func WithReceiveBuffer(bytes int64) Option {
	return func(c *config) {
		if bytes < 1 {
			c.fail("receive buffer %d < 1", bytes)
			return
		}
		c.recvBuffer = bytes
	}
}

// WithStateListener calls f with every state change of the Conn
// (connected, lost, reconnecting, closed; see StateChange), in order, on a
// goroutine of the Conn's own, off its locks: a slow f never holds up the
// client (consecutive reconnect attempts it has not yet seen are folded
// into the latest). Close waits for the f in progress to return.
func WithStateListener(f func(StateChange)) Option {
	return func(c *config) { c.onState = f }
}

// Options of calls are typed by the call they apply to, so that an option
// that makes no sense for a call (WithAck on Send, WithContentType on
// Subscribe) does not compile:
//
//   - SendOption: Send, SendJSON, Request, Reply, Tx.Send, Tx.SendJSON
//     (WithContentType, WithContentLength);
//   - SubscribeOption: Subscribe (WithAck, WithID, WithBuffer,
//     WithPrefetch, WithOverflow);
//   - BeginOption: Begin (WithID);
//   - CallOption: every call (WithHeader, WithReceipt); Unsubscribe, Ack,
//     Nack, Commit and Abort take only these.
//
// A CallOption is a SendOption, a SubscribeOption and a BeginOption too.
// Options are small values: passing them allocates at most what their
// arguments need (WithHeader's pair, WithContentType's string).
type CallOption interface {
	SendOption
	SubscribeOption
	BeginOption
}

// SendOption configures a SEND frame (see CallOption).
type SendOption interface{ applySend(*callConfig) }

// SubscribeOption configures a SUBSCRIBE frame and its subscription (see
// CallOption).
type SubscribeOption interface{ applySubscribe(*callConfig) }

// BeginOption configures a BEGIN frame and its transaction (see
// CallOption).
type BeginOption interface{ applyBegin(*callConfig) }

// callOption is a CallOption that does f whatever the call.
type callOption func(*callConfig)

func (f callOption) applySend(cc *callConfig)      { f(cc) }
func (f callOption) applySubscribe(cc *callConfig) { f(cc) }
func (f callOption) applyBegin(cc *callConfig)     { f(cc) }

type callConfig struct {
	headers       [][2]string
	receipt       **Receipt
	contentType   string
	contentLength int8 // 0 default, 1 on, -1 off
	ack           AckMode
	id            string
	buffer        int
	prefetch      int
	overflow      Overflow
	err           error
}

// apply applies the options of a call that takes only CallOptions.
func (cc *callConfig) apply(opts []CallOption) error {
	for _, o := range opts {
		if o != nil {
			o.applySend(cc) // a CallOption does the same whatever the call
		}
	}
	return cc.err
}

func (cc *callConfig) applySend(opts []SendOption) error {
	for _, o := range opts {
		if o != nil {
			o.applySend(cc)
		}
	}
	return cc.err
}

func (cc *callConfig) applySubscribe(opts []SubscribeOption) error {
	for _, o := range opts {
		if o != nil {
			o.applySubscribe(cc)
		}
	}
	return cc.err
}

func (cc *callConfig) applyBegin(opts []BeginOption) error {
	for _, o := range opts {
		if o != nil {
			o.applyBegin(cc)
		}
	}
	return cc.err
}

func (cc *callConfig) fail(format string, args ...any) {
	if cc.err == nil {
		cc.err = fmt.Errorf("stomp: invalid option: "+format, args...)
	}
}

// WithHeader adds a header to the frame, after the headers the call writes
// itself; on a repeated key the first entry wins, so WithHeader cannot
// override them. Use it for broker extensions: persistent, expires,
// priority, reply-to, selector, x-queue-name, activemq.subscriptionName...
func WithHeader(key, value string) CallOption { return headerOption{key, value} }

type headerOption [2]string

func (o headerOption) applySend(cc *callConfig)      { cc.headers = append(cc.headers, [2]string(o)) }
func (o headerOption) applySubscribe(cc *callConfig) { cc.headers = append(cc.headers, [2]string(o)) }
func (o headerOption) applyBegin(cc *callConfig)     { cc.headers = append(cc.headers, [2]string(o)) }

// WithReceipt asks the server for a RECEIPT of the frame and stores the
// future in *r before the call returns, whatever it returns: if the frame
// could not be sent, the future is already resolved with that error. The
// call itself does not wait for the receipt; use r.Wait or r.Done. The
// calls that ask for receipts most, Conn.SendReceipt, Message.AckReceipt
// and Tx.CommitReceipt, return the future instead.
func WithReceipt(r **Receipt) CallOption { return receiptOption{r} }

type receiptOption struct{ r **Receipt }

func (o receiptOption) applySend(cc *callConfig)      { o.apply(cc) }
func (o receiptOption) applySubscribe(cc *callConfig) { o.apply(cc) }
func (o receiptOption) applyBegin(cc *callConfig)     { o.apply(cc) }

func (o receiptOption) apply(cc *callConfig) {
	if o.r == nil {
		cc.fail("WithReceipt(nil)")
		return
	}
	cc.receipt = o.r
}

// WithContentType sets the content-type header of a SEND.
func WithContentType(ct string) SendOption { return contentTypeOption(ct) }

type contentTypeOption string

func (o contentTypeOption) applySend(cc *callConfig) { cc.contentType = string(o) }

// WithContentLength turns the content-length header of a SEND on or off.
// It is on by default, as the specification recommends; turn it off for
// ActiveMQ to deliver a JMS TextMessage instead of a BytesMessage. A body
// containing a NUL byte cannot be sent without it.
func WithContentLength(on bool) SendOption { return contentLengthOption(on) }

type contentLengthOption bool

func (o contentLengthOption) applySend(cc *callConfig) {
	if o {
		cc.contentLength = 1
	} else {
		cc.contentLength = -1
	}
}

// WithAck sets the ack mode of a subscription (AckAuto by default).
func WithAck(mode AckMode) SubscribeOption { return ackOption(mode) }

type ackOption AckMode

func (o ackOption) applySubscribe(cc *callConfig) {
	if !AckMode(o).valid() {
		cc.fail("unknown ack mode %q", string(o))
		return
	}
	cc.ack = AckMode(o)
}

// WithID sets the id of a subscription or transaction instead of a
// generated one ("sub-N", "tx-N").
func WithID(id string) IDOption { return IDOption{id} }

// IDOption is WithID's option: both a SubscribeOption and a BeginOption.
type IDOption struct{ id string }

func (o IDOption) applySubscribe(cc *callConfig) { o.apply(cc) }
func (o IDOption) applyBegin(cc *callConfig)     { o.apply(cc) }

func (o IDOption) apply(cc *callConfig) {
	if o.id == "" {
		cc.fail("empty id")
		return
	}
	cc.id = o.id
}

// WithBuffer sets the buffer size of one subscription's channel, instead
// of the connection's WithSubscriptionBuffer. It must be at least 1.
func WithBuffer(n int) SubscribeOption { return bufferOption(n) }

type bufferOption int

func (o bufferOption) applySubscribe(cc *callConfig) {
	if o < 1 {
		cc.fail("buffer %d < 1", int(o))
		return
	}
	cc.buffer = int(o)
}

// WithPrefetch limits how many unacknowledged messages the broker sends a
// client or client-individual subscription: it sends both prefetch-count
// (RabbitMQ) and activemq.prefetchSize (ActiveMQ). Keeping it at or below
// the subscription's buffer means the buffer can never overflow.
func WithPrefetch(n int) SubscribeOption { return prefetchOption(n) }

type prefetchOption int

func (o prefetchOption) applySubscribe(cc *callConfig) {
	if o < 1 {
		cc.fail("prefetch %d < 1", int(o))
		return
	}
	cc.prefetch = int(o)
}

// Overflow is what a subscription does when its channel is full and a
// message arrives (see Subscription).
type Overflow int

// The overflow policies of WithOverflow.
const (
	// OverflowBlock, the default, loses nothing: the message waits in the
	// subscription's backlog, and past the Conn's receive budget the reader
	// waits for the application (backpressure on the broker).
	OverflowBlock Overflow = iota
	// OverflowUnsubscribe ends the subscription with ErrSlowConsumer: the
	// client sends UNSUBSCRIBE and closes the channel (what is in it stays
	// readable); the message that did not fit, and any the server sends
	// before it handles the UNSUBSCRIBE, go to Conn.Unrouted. Nothing
	// waits on the application.
	OverflowUnsubscribe
	// OverflowDrop drops the message, logs it at warn level and counts it
	// (Subscription.Dropped). In AckAuto mode the message is lost: opt in
	// only for data where the latest matters more than every one.
	OverflowDrop
)

// WithOverflow sets what a subscription does when its channel is full
// (OverflowBlock by default).
func WithOverflow(o Overflow) SubscribeOption { return overflowOption(o) }

type overflowOption Overflow

func (o overflowOption) applySubscribe(cc *callConfig) {
	if o < overflowOption(OverflowBlock) || o > overflowOption(OverflowDrop) {
		cc.fail("unknown overflow policy %d", int(o))
		return
	}
	cc.overflow = Overflow(o)
}

// settle keeps WithReceipt's promise for a call that returns err before it
// could queue its frame: *cc.receipt gets a future already resolved with
// err. It returns err.
func (cc *callConfig) settle(err error) error {
	if cc.receipt != nil {
		r := newReceipt("")
		r.resolve(err)
		*cc.receipt = r
	}
	return err
}

// settleOpts is settle for a call that returns before applying its
// options.
func settleOpts[O any](opts []O, err error) error {
	var cc callConfig
	for _, o := range opts {
		if r, ok := any(o).(receiptOption); ok {
			r.apply(&cc)
		}
	}
	return cc.settle(err)
}
