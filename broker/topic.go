package broker

import (
	"errors"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// topic is a publish-subscribe destination: it keeps no messages of its
// own, only its subscribers' backlogs. Guarded by Broker.mu.
type topic struct {
	name string
	subs []*consumer // in no order; each knows its place (consumer.tpos)
}

// add makes c a subscriber of t.
func (t *topic) add(c *consumer) {
	c.tpos = len(t.subs)
	t.subs = append(t.subs, c)
}

// remove takes c out of t's subscribers, moving the last into its place.
func (t *topic) remove(c *consumer) {
	last := len(t.subs) - 1
	moved := t.subs[last]
	t.subs[c.tpos], moved.tpos = moved, c.tpos
	t.subs[last] = nil
	t.subs = t.subs[:last]
}

// tmsg is a topic message waiting in one or more subscribers' backlogs; it
// counts once toward the broker's bytes however many hold it. Guarded by
// Broker.mu.
type tmsg struct {
	m    *server.Message
	size int64
	refs int // backlogs holding it
}

// topic returns the topic named name, creating it. b.mu must be held.
func (b *Broker) topic(name string) *topic {
	t := b.topics[name]
	if t == nil {
		t = &topic{name: name}
		b.topics[name] = t
	}
	return t
}

// publish delivers m, sent by from, to every current subscriber of its
// topic. A subscriber that cannot take it now (its session's outbound
// queue is full, or in a client ack mode its prefetch is used up) gets it
// in its backlog, in order. If that leaves the backlog of another
// session's subscriber above WithBacklogLimit, or the broker above
// WithMemoryLimit, the SEND's completion is deferred until they drain.
// b.mu must be held.
func (b *Broker) publish(from *client, m *server.Message) {
	t := b.topics[m.Destination]
	if t == nil {
		m.Release()
		return
	}
	var tm *tmsg
	var h *hold
	for _, c := range t.subs {
		if c.blen() == 0 && c.open() {
			if r := b.offer(c, m); r != offerFull {
				continue
			}
		}
		if tm == nil {
			tm = b.freeT.get()
			*tm = tmsg{m: m, size: msgSize(m)}
		}
		b.push(c, tm)
		// A session never waits for itself, nor for a session that is
		// itself waiting (whose reader may be stopped, its acks unread):
		// so the waits cannot form a cycle.
		if c.cl != from && c.cl.held == 0 && c.bbytes > b.cfg.backlogBytes {
			if h == nil {
				h = b.newHold(from, m)
			}
			h.n++
			c.holds = append(c.holds, h)
		}
	}
	if tm == nil {
		// In no backlog: the engine keeps it for the deliveries it
		// writes, the broker keeps nothing of it.
		m.Release()
	} else if b.overMemory() {
		if h == nil {
			h = b.newHold(from, m)
		}
		b.holdForMemory(h)
	}
}

// offer outcomes.
const (
	offerDone = iota // delivered, or skipped as unencodable for this subscriber (logged, counted)
	offerFull        // the session's outbound queue is full: try again when it writes
	offerGone        // the subscription or session is ending
)

// offer delivers m to the topic subscriber c. b.mu must be held.
func (b *Broker) offer(c *consumer, m *server.Message) int {
	d := server.Delivery{Subscription: c.sub.ID, Message: m, Written: c.cl.resume}
	err := c.cl.sess.Deliver(d)
	if errors.Is(err, server.ErrSlowConsumer) {
		// Retry once the flag is set: a Written callback that ran before
		// it (the writer took the queue meanwhile) would have missed it,
		// and then this delivery succeeds now; one that runs after it
		// drains the backlog.
		c.cl.stalled.Store(true)
		err = c.cl.sess.Deliver(d)
	}
	switch {
	case err == nil:
		b.st.out++
		if !c.auto() {
			c.pending++
		}
		return offerDone
	case errors.Is(err, server.ErrSlowConsumer):
		return offerFull
	case errors.Is(err, frame.ErrUnencodable):
		b.st.undeliverable++
		b.cfg.logger.Warn("stomp message not encodable for subscriber; skipped", "topic", c.t.name, "id", msgID(m), "err", err)
		return offerDone
	}
	// ErrSessionClosed, ErrUnknownSubscription: it is leaving; its
	// Unsubscribe or Disconnect is on the way.
	return offerGone
}

// push appends tm to c's backlog. b.mu must be held.
func (b *Broker) push(c *consumer, tm *tmsg) {
	if tm.refs == 0 {
		b.take(tm.size)
	}
	tm.refs++
	if c.blen() == 0 {
		c.cl.backlogs++
		if c.cl.backlogs == 1 {
			b.watch(c.cl)
		}
	}
	c.backlog = append(c.backlog, tm)
	c.bbytes += tm.size
}

// pop removes the head of c's backlog, completing the SENDs it held once
// the backlog is down to half its mark. b.mu must be held.
func (b *Broker) pop(c *consumer) {
	tm := c.backlog[c.bhead]
	c.backlog[c.bhead] = nil
	c.bhead++
	c.bbytes -= tm.size
	switch {
	case c.bhead == len(c.backlog):
		c.backlog, c.bhead = c.backlog[:0], 0
		if cap(c.backlog) > 1024 {
			c.backlog = nil // do not keep a burst's array
		}
		c.cl.backlogs--
	case c.bhead > 1024 && c.bhead*2 > len(c.backlog):
		n := copy(c.backlog, c.backlog[c.bhead:])
		clear(c.backlog[n:])
		c.backlog, c.bhead = c.backlog[:n], 0
	}
	tm.refs--
	if tm.refs == 0 {
		b.give(tm.size)
		m := tm.m
		b.freeT.put(tm) // in no backlog any more
		m.Release()
	}
	if len(c.holds) > 0 && c.bbytes <= b.cfg.backlogBytes/2 {
		b.releaseAll(c)
	}
}

// releaseAll completes (as far as c is concerned) the SENDs c's backlog
// held. b.mu must be held.
func (b *Broker) releaseAll(c *consumer) {
	hs := c.holds
	c.holds = nil
	for _, h := range hs {
		b.release(h)
	}
}

// drain delivers c's backlog as far as its session and, in a client ack
// mode, its prefetch allow. The backlog of a subscription that is ending
// is dropped at once, so that the SENDs it held need not wait for its
// Unsubscribe or Disconnect. b.mu must be held.
func (b *Broker) drain(c *consumer) {
	for c.blen() > 0 && c.open() {
		switch b.offer(c, c.backlog[c.bhead].m) {
		case offerFull:
			return
		case offerGone:
			b.dropBacklog(c)
			return
		}
		b.pop(c)
	}
}

// dropBacklog frees c's backlog and completes the SENDs it held: c is
// leaving. b.mu must be held.
func (b *Broker) dropBacklog(c *consumer) {
	for c.blen() > 0 {
		b.pop(c)
	}
	c.backlog = nil
	b.releaseAll(c)
}
