package broker

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/stompout/stomp/server"
)

// client is the broker's state for one connected session. Guarded by
// Broker.mu.
type client struct {
	sess *server.Session
	subs map[string]*consumer // by subscription id
	// stalled is set (under Broker.mu) when a queue delivery found the
	// session's outbound queue full; the next Written callback of any of
	// the session's deliveries, queue or topic, retries its queues. Atomic
	// so that topic deliveries' callbacks can check it without the lock.
	stalled atomic.Bool
	// resume is the Written callback of topic deliveries: it retries the
	// session's queues if it is stalled. Made once, at CONNECT.
	resume func(error)
}

// consumer is one subscription, to a queue or to a topic. Guarded by
// Broker.mu.
type consumer struct {
	cl       *client
	sub      *server.Subscription
	q        *queue // nil for a topic subscription
	t        *topic // nil for a queue subscription
	prefetch int
	unacked  []*qmsg // client ack modes: delivered, not acknowledged, oldest first
	inflight int     // auto mode: handed to the session, not yet written
	pending  int     // topic, client ack modes: delivered, not acknowledged
	// backlog holds, in a client ack mode, the topic messages published
	// while pending was at prefetch, oldest first; bounded by
	// WithQueueLimit.
	backlog []*server.Message
	skip    bool // within one dispatch pass: the session refused a delivery
}

func (c *consumer) auto() bool { return c.sub.Ack == server.AckAuto }

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
	cl.resume = func(error) {
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

// Send puts m on its queue (ERROR "queue full" past WithQueueLimit) or
// fans it out to the topic's subscribers.
func (b *Broker) Send(ctx context.Context, s *server.Session, m *server.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	m.ID = "m-" + strconv.FormatUint(b.seq, 10)
	m.Header.Del("redelivered") // the broker's to say, not the producer's
	if isTopic(m.Destination) {
		b.st.in++
		b.publish(m)
		return nil
	}
	q := b.queue(m.Destination)
	if q.held >= b.cfg.queueLimit {
		b.st.refused++
		b.gc(q)
		return &server.ApplicationError{
			Message: "queue full",
			Body:    m.Destination + " holds " + strconv.Itoa(q.held) + " messages, its limit",
		}
	}
	b.st.in++
	q.push(&qmsg{m: m, q: q, seq: b.seq})
	q.held++
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
		c.t.subs[c] = struct{}{}
		return nil
	}
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
// the queue.
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

// Ack acknowledges the messages a.MessageIDs lists.
func (b *Broker) Ack(ctx context.Context, s *server.Session, a *server.Ack) error {
	b.settle(s, a, false)
	return nil
}

// Nack returns the messages a.MessageIDs lists to their queue, ahead of
// newer messages, for redelivery (topic messages are dropped: topics do
// not keep messages).
func (b *Broker) Nack(ctx context.Context, s *server.Session, a *server.Ack) error {
	b.settle(s, a, true)
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
	var back []*qmsg
	for _, id := range a.MessageIDs {
		for i, qm := range c.unacked {
			if qm.m.ID != id {
				continue
			}
			c.unacked = append(c.unacked[:i], c.unacked[i+1:]...)
			if nack {
				back = append(back, qm)
			} else {
				c.q.held--
			}
			break
		}
	}
	c.q.requeue(back)
	b.dispatch(c.q)
}

// Disconnect removes the session's consumers; their unacknowledged
// messages go back to their queues.
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
}

// Error logs the error that ended a session.
func (b *Broker) Error(ctx context.Context, s *server.Session, err error) {
	b.cfg.logger.Debug("stomp session error", "session", s.ID(), "err", err)
}

// remove detaches c from its queue or topic and requeues its
// unacknowledged messages. b.mu must be held.
func (b *Broker) remove(c *consumer) {
	if c.t != nil {
		delete(c.t.subs, c)
		if len(c.t.subs) == 0 {
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
	q.requeue(c.unacked)
	c.unacked = nil
	b.dispatch(q)
}
