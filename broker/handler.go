package broker

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp/server"
)

// client is the broker's state for one connected session. Guarded by
// Broker.mu unless said otherwise.
type client struct {
	sess *server.Session
	subs map[string]*consumer // by subscription id
	// stalled is set (under Broker.mu) when a delivery found the session's
	// outbound queue full; the next Written callback of any of the
	// session's deliveries, queue or topic, drains its backlogs and retries
	// its queues. Atomic so that topic deliveries' callbacks can check it
	// without the lock.
	stalled atomic.Bool
	// progress counts the frames written to the session (Written(nil)), on
	// its writer goroutine; the slow-consumer check compares it over time.
	progress atomic.Uint64
	// resume is the Written callback of topic deliveries. Made once, at
	// CONNECT.
	resume func(error)
	// held counts the session's SENDs whose completion the broker defers.
	held int
	// backlogs counts the session's topic subscriptions with a backlog;
	// timer checks progress while it is not zero.
	backlogs int
	timer    *time.Timer
	seen     uint64    // progress at the last check that saw it change
	since    time.Time // when progress last changed
}

// consumer is one subscription, to a queue or to a topic. Guarded by
// Broker.mu.
type consumer struct {
	cl       *client
	sub      *server.Subscription
	q        *queue // nil for a topic subscription
	t        *topic // nil for a queue subscription
	tpos     int    // its index in t.subs
	prefetch int
	// unacked holds, in a client ack mode, the queue messages delivered
	// and not acknowledged, by message-id (its number, Message.Seq): an
	// ACK resolves in O(1).
	unacked  map[uint64]*qmsg
	inflight int // queue, auto mode: handed to the session, not yet written
	// unwritten[uhead:] are the queue messages handed to the session and
	// not yet reported by a Written callback, in delivery order: the
	// session calls Written in the order of its deliveries, so onWritten
	// (made once, at SUBSCRIBE) takes the head and no delivery needs a
	// closure of its own.
	unwritten []*qmsg
	uhead     int
	onWritten func(error)
	pending   int // topic, client ack modes: delivered, not acknowledged
	// backlog[bhead:] holds, oldest first, the topic messages the
	// subscriber could not take yet (its outbound queue full, or in a
	// client ack mode its prefetch used up); bbytes is their size.
	backlog []*tmsg
	bhead   int
	bbytes  int64
	// holds are the SENDs of other sessions waiting for this backlog to
	// come down to half of WithBacklogLimit.
	holds []*hold
	skip  bool // within one dispatch pass: the session refused a delivery
}

func (c *consumer) auto() bool { return c.sub.Ack == server.AckAuto }

// blen is the number of messages in c's topic backlog.
func (c *consumer) blen() int { return len(c.backlog) - c.bhead }

// open reports whether the topic subscriber c may be offered a message
// now, as far as its prefetch is concerned.
func (c *consumer) open() bool { return c.auto() || c.pending < c.prefetch }

// credit reports whether the consumer may take one more queue message.
func (c *consumer) credit() bool {
	if c.auto() {
		return c.inflight < c.prefetch
	}
	return len(c.unacked) < c.prefetch
}

func isTopic(dest string) bool { return strings.HasPrefix(dest, "/topic/") }

// Connect checks the login against WithUsers, if set.
func (b *Broker) Connect(ctx context.Context, s *server.Session, req *server.ConnectRequest) error {
	if len(b.cfg.users) > 0 {
		if p, ok := b.cfg.users[req.Login]; !ok || p != req.Passcode {
			return &server.ApplicationError{Message: "access refused", Body: "bad login or passcode"}
		}
	}
	cl := &client{sess: s, subs: make(map[string]*consumer)}
	cl.resume = func(err error) {
		if err == nil {
			cl.progress.Add(1)
		}
		if cl.stalled.Load() {
			b.mu.Lock()
			b.unstall(cl, nil)
			b.mu.Unlock()
		}
	}
	b.mu.Lock()
	b.sessions[s] = cl
	b.mu.Unlock()
	return nil
}

// Send fans m out to its topic's subscribers or puts it on its queue. Its
// completion (RECEIPT) is deferred while it waits for room in a full queue,
// for a subscriber's backlog to drain, or for the broker's memory to come
// below its limit (see the package doc); a SEND that waits for a full
// queue longer than WithQueueFullTimeout gets an ERROR "queue full".
func (b *Broker) Send(ctx context.Context, s *server.Session, m *server.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	from := b.sessions[s]
	if from == nil {
		return server.ErrSessionClosed
	}
	b.seq++
	m.Seq = b.seq // the message-id, formatted by the engine as it writes it
	if m.Header.Has("redelivered") {
		m.Header.Del("redelivered") // the broker's to say, not the producer's
	}
	b.st.in++
	if isTopic(m.Destination) {
		b.publish(from, m)
		return nil
	}
	q := b.queue(m.Destination)
	qm := b.free.get()
	*qm = qmsg{m: m, q: q, seq: b.seq, size: msgSize(m)}
	if len(q.waiting) > 0 || !q.room(qm.size, &b.cfg) {
		b.wait(q, qm, from, m)
		return nil
	}
	b.take(qm.size)
	q.add(qm)
	if b.overMemory() {
		b.holdForMemory(b.newHold(from, m))
	}
	b.dispatch(q)
	return nil
}

// Subscribe adds a consumer to the destination's queue or topic.
func (b *Broker) Subscribe(ctx context.Context, s *server.Session, sub *server.Subscription) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cl := b.sessions[s]
	if cl == nil {
		return server.ErrSessionClosed
	}
	c := &consumer{cl: cl, sub: sub, prefetch: b.prefetch(sub)}
	cl.subs[sub.ID] = c
	if isTopic(sub.Destination) {
		c.t = b.topic(sub.Destination)
		c.t.add(c)
		return nil
	}
	if !c.auto() {
		c.unacked = make(map[uint64]*qmsg)
	}
	c.onWritten = func(err error) { b.written(c, err) }
	c.q = b.queue(sub.Destination)
	c.q.consumers = append(c.q.consumers, c)
	b.dispatch(c.q)
	return nil
}

// prefetch reads prefetch-count (RabbitMQ's name) or activemq.prefetchSize
// from the SUBSCRIBE, else the default.
func (b *Broker) prefetch(sub *server.Subscription) int {
	for _, h := range []string{"prefetch-count", "activemq.prefetchSize"} {
		if n, err := strconv.Atoi(sub.Header.Get(h)); err == nil && n > 0 {
			return n
		}
	}
	return b.cfg.prefetch
}

// Unsubscribe removes the consumer; its unacknowledged messages go back to
// the queue, its topic backlog is dropped.
func (b *Broker) Unsubscribe(ctx context.Context, s *server.Session, sub *server.Subscription) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cl := b.sessions[s]; cl != nil {
		if c := cl.subs[sub.ID]; c != nil {
			delete(cl.subs, sub.ID)
			b.remove(c)
		}
	}
	return nil
}

// Ack acknowledges the messages a.MessageIDs lists, each in O(1).
func (b *Broker) Ack(ctx context.Context, s *server.Session, a *server.Ack) error {
	b.settle(s, a, false)
	a.Release()
	return nil
}

// Nack returns the messages a.MessageIDs lists to their queue, ahead of
// newer messages, for redelivery (after WithRedeliveryDelay; to the
// dead-letter queue past WithMaxRedeliveries). Topic messages are
// dropped: topics do not keep messages.
func (b *Broker) Nack(ctx context.Context, s *server.Session, a *server.Ack) error {
	b.settle(s, a, true)
	a.Release()
	return nil
}

func (b *Broker) settle(s *server.Session, a *server.Ack, nack bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cl := b.sessions[s]
	if cl == nil {
		return
	}
	c := cl.subs[a.Subscription.ID]
	if c == nil {
		return
	}
	if nack {
		b.st.nacked += uint64(len(a.MessageIDs))
	} else {
		b.st.acked += uint64(len(a.MessageIDs))
	}
	if c.t != nil {
		c.pending = max(0, c.pending-len(a.MessageIDs))
		b.drain(c)
		return
	}
	q := c.q
	var back []*qmsg
	freed := false
	for _, id := range a.MessageIDs {
		n := seqOf(id)
		qm := c.unacked[n]
		if qm == nil {
			continue
		}
		delete(c.unacked, n)
		if nack {
			back = append(back, qm)
		} else {
			b.consumed(qm)
			freed = true
			b.recycle(qm)
		}
	}
	if len(back) > 0 {
		b.redeliver(q, back, true)
	}
	if freed {
		b.admit(q)
	}
	b.dispatch(q)
}

// Disconnect removes the session's consumers; their unacknowledged
// messages go back to their queues, their topic backlogs are dropped.
func (b *Broker) Disconnect(ctx context.Context, s *server.Session, reason error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cl := b.sessions[s]
	if cl == nil {
		return
	}
	delete(b.sessions, s)
	for _, c := range cl.subs {
		b.remove(c)
	}
	clear(cl.subs)
	if cl.timer != nil {
		cl.timer.Stop()
		cl.timer = nil
	}
}

// Error logs the error that ended a session.
func (b *Broker) Error(ctx context.Context, s *server.Session, err error) {
	b.cfg.logger.Debug("stomp session error", "session", s.ID(), "err", err)
}

// remove detaches c from its queue or topic: a topic subscriber's backlog
// is dropped, a queue consumer's unacknowledged messages are requeued.
// b.mu must be held.
func (b *Broker) remove(c *consumer) {
	if c.t != nil {
		b.dropBacklog(c)
		c.t.remove(c)
		if len(c.t.subs) == 0 && b.topics[c.t.name] == c.t {
			delete(b.topics, c.t.name)
		}
		return
	}
	q := c.q
	for i, o := range q.consumers {
		if o == c {
			q.consumers = append(q.consumers[:i], q.consumers[i+1:]...)
			if q.next > i {
				q.next--
			}
			break
		}
	}
	if len(c.unacked) > 0 {
		back := make([]*qmsg, 0, len(c.unacked))
		for _, qm := range c.unacked {
			back = append(back, qm)
		}
		clear(c.unacked)
		b.redeliver(q, back, false)
	}
	b.dispatch(q)
}
