// Package broker is an embedded, in-memory STOMP broker: a server.Handler
// that a Go test or a small deployment starts in one line.
//
//	b, err := broker.Start("127.0.0.1:0")          // or broker.New() + b.Pipe()
//	defer b.Close()
//	conn, _ := net.Dial("tcp", b.Addr())           // any STOMP client, 1.0 to 1.2
//
// Destinations whose name starts with /topic/ fan out: each message goes to
// the subscribers present when it is sent. Every other destination (/queue/...
// by convention) is a queue: competing consumers, round-robin, with the ack
// modes of SUBSCRIBE honoured (auto; client, cumulative; client-individual).
// A queue subscription holds at most prefetch-count unacknowledged messages
// (default WithPrefetch, 100; in auto mode, messages handed to the session
// but not yet written); the rest stay in the queue. NACKed messages and the
// unacknowledged (in auto mode: unwritten) messages of a subscription that
// goes away return to the queue at their original places, ahead of newer
// messages and in the order they were sent, and are redelivered with a
// redelivered:true header (NACKed ones after WithRedeliveryDelay, if set;
// a message that has come back more than WithMaxRedeliveries times, 20 by
// default, moves to the dead-letter queue /queue/DLQ.<name> instead, unless
// that queue is full). A message
// leaves a queue only once acknowledged (in auto mode: written to the
// client's transport). A message that no consumer's protocol version can
// carry (a header with a newline, for 1.0 consumers) is dropped, logged and
// counted in Stats.Undeliverable.
//
// # Flow control
//
// Nothing is dropped and nobody is disconnected for a burst: when messages
// arrive faster than they leave, the broker holds them, within byte
// budgets, and past those budgets pushes back on the producers. It does so
// by completing SENDs late (server.Message.Defer): a deferred SEND gets its
// RECEIPT only once the broker lets it go, and a session with a send window
// (server.WithSendWindow) of deferred SENDs is not read from any more, so
// TCP stops its producer.
//
//   - A topic subscriber that cannot take a message now (its session's
//     outbound queue is full, server.WithOutboundBytes; or, in a client ack
//     mode, prefetch-count messages are unacknowledged) gets it later, in
//     order, from its backlog, drained as its session writes and acks.
//     While a backlog holds more than WithBacklogLimit bytes (default
//     1 MiB), the SENDs of other sessions that add to it are deferred until
//     it is down to half.
//   - A queue takes at most WithQueueLimit messages and WithQueueBytes bytes
//     (default 100,000 and 64 MiB). A SEND to a full queue waits, deferred,
//     in order, until there is room; if it waits longer than
//     WithQueueFullTimeout (default 30s) it is refused with an ERROR "queue
//     full" carrying its receipt-id, which ends the producer's session, and
//     its message is not queued.
//   - The broker as a whole holds at most about WithMemoryLimit bytes of
//     messages (default 512 MiB; queues, backlogs and waiting SENDs,
//     reported in Stats.Bytes). Past it, every SEND that adds to them is
//     taken but deferred until the broker is below the limit again: it can
//     overshoot by at most one send window per producing session.
//   - A session is a slow consumer only when it has a topic backlog and
//     nothing has been written to it for WithSlowConsumerTimeout (default
//     30s): then it alone is cut off with an ERROR "slow consumer", its
//     backlog is freed, the SENDs its backlog held are completed and its
//     unacknowledged queue messages go back to their queues. Queue
//     consumers are never cut off for being slow: their messages wait in
//     the queue.
//
// The rules keep the waits free of deadlocks: a SEND is never deferred for
// a backlog of its own session (a session that publishes to a topic it
// subscribes to), nor for the backlog of a session that has deferred SENDs
// itself (whose reader may be stopped and its acks unread), so the waits
// between sessions never form a cycle (two sessions that feed each other,
// or client-ack echo loops, always progress). The backlogs those rules
// leave unchecked are bounded by WithMemoryLimit. The limits of the policy:
// past WithMemoryLimit every producer waits, including one that feeds
// itself; it is released as consumers drain, or when the slow-consumer
// timeout cuts off a session that takes nothing. A session that consumes a
// queue in a client ack mode and also publishes can stop there with its
// ACKs unread behind its waiting SENDs; if every consumer that could free
// memory is such a session, they wait for each other (as with RabbitMQ's
// memory alarm, keep publishing and consuming on separate connections, or
// the memory limit above what the queues may hold). Waits for a full queue
// are not ordered the same way (a consumer of a full queue may be a
// producer stopped behind it); WithQueueFullTimeout ends them. A client
// that waits for a RECEIPT without reading the messages before it stalls
// itself; the broker cuts it off after the slow-consumer timeout if it has
// a backlog.
//
// Locking: one mutex guards all broker state. It is held while calling
// server.Session.Deliver and Session.Close and the done functions of
// deferred SENDs, which never block, and never while the engine writes to
// a socket. Acknowledgements resolve in O(1) per message (an index by
// message-id).
package broker

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/stompout/stomp/server"
)

// Broker is the embedded broker. It implements server.Handler; its methods
// are safe for concurrent use.
type Broker struct {
	cfg config
	srv *server.Server
	ln  net.Listener
	wg  sync.WaitGroup // Serve and Pipe goroutines

	mu       sync.Mutex // guards everything below
	queues   map[string]*queue
	topics   map[string]*topic
	sessions map[*server.Session]*client
	seq      uint64         // message ids
	free     freeList[qmsg] // consumed queue messages kept for reuse
	freeT    freeList[tmsg] // topic messages out of every backlog, for reuse
	st       counters
	// bytes is what the broker holds of messages (bodies and headers): in
	// queues, topic backlogs (each message once) and waiting SENDs.
	bytes int64
	// memHolds are the SENDs completed once bytes is below
	// WithMemoryLimit again.
	memHolds []*hold
	deferred int  // SENDs whose completion the broker holds back
	closed   bool // Close or Shutdown has run: timers do nothing
}

var _ server.Handler = (*Broker)(nil)

// New returns a broker with its own server.Server (see Server), not yet
// listening anywhere: serve it with Pipe, with b.Server().Serve, or use
// Start. It returns an error, and no broker, if an option (its own or a
// server option) was given a value it cannot take.
func New(opts ...Option) (*Broker, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, cfg.err
	}
	b := &Broker{
		cfg:      cfg,
		queues:   make(map[string]*queue),
		topics:   make(map[string]*topic),
		sessions: make(map[*server.Session]*client),
	}
	sopts := append([]server.Option{server.WithLogger(cfg.logger)}, cfg.serverOpts...)
	srv, err := server.New(b, sopts...)
	if err != nil {
		return nil, err
	}
	b.srv = srv
	return b, nil
}

// Start is New plus a TCP listener on addr (e.g. "127.0.0.1:0" for an
// ephemeral port; a "tcp://" prefix is allowed) served on a goroutine of
// its own. Close or Shutdown stop it.
func Start(addr string, opts ...Option) (*Broker, error) {
	b, err := New(opts...)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(addr, "tcp://"))
	if err != nil {
		return nil, err
	}
	b.ln = ln
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.srv.Serve(ln)
	}()
	return b, nil
}

// Server returns the server.Server that runs the broker's sessions, e.g. to
// mount its WebSocketHandler or to Serve another listener.
func (b *Broker) Server() *server.Server { return b.srv }

// Addr returns the host:port of the listener Start opened ("" without
// Start).
func (b *Broker) Addr() string {
	if b.ln == nil {
		return ""
	}
	return b.ln.Addr().String()
}

// URL returns "tcp://" + Addr().
func (b *Broker) URL() string { return "tcp://" + b.Addr() }

// Pipe returns the client end of a net.Pipe whose other end the broker
// serves in-process, on a goroutine that ends with the session. Nothing is
// buffered in a pipe: a client must read what it is sent.
func (b *Broker) Pipe() net.Conn {
	c, s := net.Pipe()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.srv.ServeConn(context.Background(), s)
	}()
	return c
}

// Close closes every session at once and the listener, and returns once
// their goroutines are gone. Messages held in queues are dropped with the
// broker.
func (b *Broker) Close() error {
	err := b.srv.Close()
	b.wg.Wait()
	b.stop()
	return err
}

// Shutdown tells every session (ERROR "server shutting down"), waits for
// them to end or for ctx, then closes like Close.
func (b *Broker) Shutdown(ctx context.Context) error {
	err := b.srv.Shutdown(ctx)
	b.wg.Wait()
	b.stop()
	if errors.Is(err, server.ErrServerClosed) {
		err = nil
	}
	return err
}
