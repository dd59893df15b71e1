package broker

import (
	"errors"
	"strconv"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// topic is a publish-subscribe destination: it keeps no messages. Guarded
// by Broker.mu.
type topic struct {
	name string
	subs map[*consumer]struct{}
}

// topic returns the topic named name, creating it. b.mu must be held.
func (b *Broker) topic(name string) *topic {
	t := b.topics[name]
	if t == nil {
		t = &topic{name: name, subs: make(map[*consumer]struct{})}
		b.topics[name] = t
	}
	return t
}

// publish delivers m to every current subscriber of its topic. A
// subscriber that cannot take it is disconnected with an ERROR "slow
// consumer" rather than silently skipped. b.mu must be held.
func (b *Broker) publish(m *server.Message) {
	t := b.topics[m.Destination]
	if t == nil {
		return
	}
	for c := range t.subs {
		if !c.auto() && (c.pending >= c.prefetch || len(c.backlog) > 0) {
			// It has prefetch-count messages unacknowledged: the message
			// waits for its acks, behind those already waiting.
			if len(c.backlog) >= b.cfg.queueLimit {
				b.slow(c, strconv.Itoa(c.pending)+" messages unacknowledged and "+strconv.Itoa(len(c.backlog))+" waiting on subscription "+c.sub.ID)
				continue
			}
			c.backlog = append(c.backlog, m)
			continue
		}
		b.offer(c, m)
	}
}

// offer delivers m to the topic subscriber c, and reports whether c can
// take more now. A subscriber whose outbound queue is full is disconnected
// as a slow consumer. b.mu must be held.
func (b *Broker) offer(c *consumer, m *server.Message) bool {
	err := c.cl.sess.Deliver(server.Delivery{Subscription: c.sub.ID, Message: m, Written: c.cl.resume})
	switch {
	case err == nil:
		b.st.out++
		if !c.auto() {
			c.pending++
		}
		return true
	case errors.Is(err, server.ErrSlowConsumer):
		b.slow(c, "outbound queue full on subscription "+c.sub.ID)
	case errors.Is(err, frame.ErrUnencodable):
		b.st.undeliverable++
		b.cfg.logger.Warn("stomp message not encodable for subscriber; skipped", "topic", c.t.name, "id", m.ID, "err", err)
		return true
	}
	// ErrSessionClosed, ErrUnknownSubscription: it is leaving; its
	// Unsubscribe or Disconnect is on the way.
	return false
}

// drain delivers c's backlog of topic messages as far as its prefetch
// allows, once acks have made room. b.mu must be held.
func (b *Broker) drain(c *consumer) {
	// offer may drop c as a slow consumer, which empties the backlog.
	for len(c.backlog) > 0 && c.pending < c.prefetch {
		m := c.backlog[0]
		c.backlog[0] = nil
		c.backlog = c.backlog[1:]
		if !b.offer(c, m) {
			break
		}
	}
	if len(c.backlog) == 0 {
		c.backlog = nil
	}
}

// slow ends c's session with an ERROR "slow consumer" and detaches c at
// once, so that no more messages are offered to it. b.mu must be held.
func (b *Broker) slow(c *consumer, why string) {
	b.st.slow++
	c.backlog = nil
	delete(c.t.subs, c)
	if len(c.t.subs) == 0 {
		delete(b.topics, c.t.name)
	}
	delete(c.cl.subs, c.sub.ID)
	c.cl.sess.Close(&server.ApplicationError{
		Message: "slow consumer",
		Body:    c.t.name + ": " + why + "; disconnected rather than drop messages",
	})
}
