package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/stompout/stomp/server"
)

// Option configures a Broker. Options are applied once, by New (or
// Start), which returns an error for an option given a value it cannot
// take.
type Option func(*config)

// config is a Broker's settings; immutable after New.
type config struct {
	users        map[string]string
	queueLimit   int           // messages per queue (ready + unacknowledged)
	queueBytes   int64         // bytes per queue
	memoryLimit  int64         // bytes of messages the broker holds, all together
	backlogBytes int64         // per topic subscriber: the high-water mark of its backlog
	slowTimeout  time.Duration // no progress with a backlog for this long: slow consumer
	fullTimeout  time.Duration // a SEND waits this long for room in a full queue
	prefetch     int
	maxRedeliver int           // 0: no dead-lettering
	redeliverDly time.Duration // a NACKed message waits this long before it is ready again
	dlqPrefix    string
	serverOpts   []server.Option
	logger       *slog.Logger
	err          error // the options' errors, joined; New returns it
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
	c.err = errors.Join(c.err, fmt.Errorf("broker: "+format, args...))
}

// Defaults of the broker's options.
const (
	// DefaultQueueLimit bounds the messages one queue holds.
	DefaultQueueLimit = 100000
	// DefaultQueueBytes bounds the bytes (bodies and headers) one queue
	// holds.
	DefaultQueueBytes = 64 << 20
	// DefaultMemoryLimit bounds the bytes of messages the broker holds in
	// all its queues, topic backlogs and waiting SENDs together.
	DefaultMemoryLimit = 512 << 20
	// DefaultBacklogLimit is the per-subscriber high-water mark of a topic
	// subscriber's backlog, in bytes.
	DefaultBacklogLimit = 1 << 20
	// DefaultSlowConsumerTimeout is how long a subscriber with a backlog
	// may take nothing before it is cut off as a slow consumer.
	DefaultSlowConsumerTimeout = 30 * time.Second
	// DefaultQueueFullTimeout is how long a SEND may wait for room in a
	// full queue before it is refused.
	DefaultQueueFullTimeout = 30 * time.Second
	// DefaultPrefetch is the unacknowledged messages a subscription may
	// hold when its SUBSCRIBE says nothing.
	DefaultPrefetch = 100
	// DefaultMaxRedeliveries is how many times a queue message may go
	// back to its queue before it moves to the dead-letter queue (as
	// RabbitMQ's quorum queues' delivery-limit).
	DefaultMaxRedeliveries = 20
	// DefaultDeadLetterPrefix is put before a queue's name (without its
	// "/queue/") to name its dead-letter queue.
	DefaultDeadLetterPrefix = "/queue/DLQ."
)

func defaultConfig() config {
	return config{
		queueLimit:   DefaultQueueLimit,
		queueBytes:   DefaultQueueBytes,
		memoryLimit:  DefaultMemoryLimit,
		backlogBytes: DefaultBacklogLimit,
		slowTimeout:  DefaultSlowConsumerTimeout,
		fullTimeout:  DefaultQueueFullTimeout,
		prefetch:     DefaultPrefetch,
		maxRedeliver: DefaultMaxRedeliveries,
		dlqPrefix:    DefaultDeadLetterPrefix,
		logger:       slog.New(slog.DiscardHandler),
	}
}

// WithUsers makes the broker require a login and passcode from this list
// (login -> passcode). Without it (or with an empty map) anyone may connect.
func WithUsers(users map[string]string) Option {
	return func(c *config) {
		c.users = make(map[string]string, len(users))
		for k, v := range users {
			c.users[k] = v
		}
	}
}

// WithQueueLimit bounds the messages one queue holds (ready, delivered
// but unacknowledged, and NACKed ones waiting for their redelivery delay).
// A SEND to a full queue waits for room (flow control: see the package
// doc) and is refused with an ERROR "queue full" if it waits longer than
// WithQueueFullTimeout. Default DefaultQueueLimit; n must be positive.
func WithQueueLimit(n int) Option {
	return positive("WithQueueLimit", n, func(c *config) { c.queueLimit = n })
}

// WithQueueBytes bounds the bytes (bodies and headers) one queue holds,
// like WithQueueLimit bounds its messages; an empty queue takes one
// message larger than the bound. Default DefaultQueueBytes; n must be
// positive.
func WithQueueBytes(n int64) Option {
	return positive("WithQueueBytes", n, func(c *config) { c.queueBytes = n })
}

// WithMemoryLimit bounds the bytes (bodies and headers) of the messages the
// broker holds: in queues, in topic subscribers' backlogs and in SENDs
// waiting for room in a queue (a message in several backlogs counts once).
// Past it every SEND that adds to them is accepted but completed (its
// RECEIPT written, the producer read further) only once the broker holds
// less again, so the producers stop; the broker then holds at most the
// limit plus one send window (server.WithSendWindow) per producing
// session. Default DefaultMemoryLimit; n must be positive.
func WithMemoryLimit(n int64) Option {
	return positive("WithMemoryLimit", n, func(c *config) { c.memoryLimit = n })
}

// WithBacklogLimit sets the high-water mark, in bytes, of a topic
// subscriber's backlog (the messages its session could not take yet):
// while the backlog is above it, the SENDs of other sessions that add to
// it are completed only once it is down to half, so their producers stop
// (see the package doc for the sessions this does not hold back). It is
// not a hard bound: what producers already sent still joins the backlog;
// WithMemoryLimit bounds the total. Default DefaultBacklogLimit; n must be
// positive.
func WithBacklogLimit(n int64) Option {
	return positive("WithBacklogLimit", n, func(c *config) { c.backlogBytes = n })
}

// WithSlowConsumerTimeout sets how long a session with a topic backlog may
// take nothing (no frame written to it) before it is cut off with an
// ERROR "slow consumer": its unacknowledged queue messages go back to
// their queues and the SENDs its backlog held are completed. A subscriber
// that is merely behind is never cut off. Default
// DefaultSlowConsumerTimeout; d must be positive.
func WithSlowConsumerTimeout(d time.Duration) Option {
	return positive("WithSlowConsumerTimeout", d, func(c *config) { c.slowTimeout = d })
}

// WithQueueFullTimeout sets how long a SEND to a full queue (WithQueueLimit,
// WithQueueBytes) waits for room before it is refused with an ERROR
// "queue full", which ends the producer's session; the message is then
// not in the queue. Default DefaultQueueFullTimeout; d must be positive.
func WithQueueFullTimeout(d time.Duration) Option {
	return positive("WithQueueFullTimeout", d, func(c *config) { c.fullTimeout = d })
}

// WithPrefetch sets the number of unacknowledged messages a subscription
// may hold when its SUBSCRIBE has no prefetch-count header. Default
// DefaultPrefetch; n must be positive.
func WithPrefetch(n int) Option {
	return positive("WithPrefetch", n, func(c *config) { c.prefetch = n })
}

// WithMaxRedeliveries moves a queue message that has gone back to its
// queue more than n times (NACKed, or unacknowledged when its consumer
// left) to the queue's dead-letter queue (WithDeadLetterPrefix) instead
// of redelivering it again. If the dead-letter queue is full the message
// stays where it is, and nothing is lost either way. Messages of a
// dead-letter queue are never moved. Default DefaultMaxRedeliveries; 0
// turns dead-lettering off (messages are redelivered without end); n must
// not be negative.
func WithMaxRedeliveries(n int) Option {
	return func(c *config) {
		if n < 0 {
			c.invalid("WithMaxRedeliveries(%d): negative", n)
			return
		}
		c.maxRedeliver = n
	}
}

// WithRedeliveryDelay makes a NACKed queue message wait d before it is
// ready for a consumer again (it still counts toward its queue's limits
// meanwhile). Messages of a consumer that leaves go back at once. Default
// 0; d must not be negative.
func WithRedeliveryDelay(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.invalid("WithRedeliveryDelay(%v): negative", d)
			return
		}
		c.redeliverDly = d
	}
}

// WithDeadLetterPrefix names dead-letter queues: the dead-letter queue of
// /queue/NAME (or of another non-topic destination NAME) is prefix+NAME.
// Default DefaultDeadLetterPrefix ("/queue/DLQ."); prefix must start with
// "/" and not with "/topic/".
func WithDeadLetterPrefix(prefix string) Option {
	return func(c *config) {
		if !strings.HasPrefix(prefix, "/") || isTopic(prefix) {
			c.invalid("WithDeadLetterPrefix(%q): not a queue name prefix", prefix)
			return
		}
		c.dlqPrefix = prefix
	}
}

// WithServerOptions passes options to the server.Server the broker runs
// its sessions with (heart-beats, limits, name, ...).
func WithServerOptions(opts ...server.Option) Option {
	return func(c *config) { c.serverOpts = append(c.serverOpts, opts...) }
}

// WithLogger sets the broker's logger, also passed to its server unless
// WithServerOptions sets another one. Default (and nil): discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}
