package broker

import (
	"cmp"
	"errors"
	"slices"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// qmsg is a message held by a queue. Guarded by Broker.mu.
type qmsg struct {
	m           *server.Message // as sent; shared, never modified
	q           *queue
	seq         uint64 // the order of SEND: the queue keeps its ready messages in this order
	redelivered bool
	again       *server.Message // m with redelivered:true, made on first redelivery
}

// message returns what to deliver: m, or its redelivered copy.
func (qm *qmsg) message() *server.Message {
	if !qm.redelivered {
		return qm.m
	}
	if qm.again == nil {
		c := *qm.m
		c.Header = qm.m.Header.Clone()
		c.Header.Set("redelivered", "true")
		qm.again = &c
	}
	return qm.again
}

// queue is a point-to-point destination. Guarded by Broker.mu.
type queue struct {
	name      string
	ready     []*qmsg // waiting for a consumer; ready[head:] in order
	head      int
	consumers []*consumer
	next      int // round-robin position in consumers
	held      int // ready + unacknowledged + in flight: what WithQueueLimit bounds
}

func (q *queue) depth() int { return len(q.ready) - q.head }

func (q *queue) push(qm *qmsg) { q.ready = append(q.ready, qm) }

func (q *queue) pop() *qmsg {
	qm := q.ready[q.head]
	q.ready[q.head] = nil
	q.head++
	if q.head == len(q.ready) {
		q.ready, q.head = q.ready[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.ready) {
		// Compact, so a long-lived queue does not keep a growing array.
		n := copy(q.ready, q.ready[q.head:])
		clear(q.ready[n:])
		q.ready, q.head = q.ready[:n], 0
	}
	return qm
}

// requeue puts msgs back in the queue, marked redelivered (they may have
// reached a client), at their original places: ahead of newer messages,
// in the order they were sent.
func (q *queue) requeue(msgs []*qmsg) {
	for _, qm := range msgs {
		qm.redelivered = true
	}
	q.putBack(msgs)
}

// pushFront puts one message back without marking it: it never reached a
// client. It came from the front, so that is where it goes (putBack).
func (q *queue) pushFront(qm *qmsg) { q.putBack([]*qmsg{qm}) }

// putBack returns msgs to the ready list in the order of their seq, which
// the ready list always keeps: new messages have the highest seq, and
// returning ones go back where they were. It may reorder msgs.
func (q *queue) putBack(msgs []*qmsg) {
	rest := q.ready[q.head:]
	bySeq := func(a, b *qmsg) int { return cmp.Compare(a.seq, b.seq) }
	switch {
	case len(msgs) == 0:
		return
	case len(msgs) == 1:
		qm := msgs[0]
		i, _ := slices.BinarySearchFunc(rest, qm, bySeq)
		if i == 0 && q.head > 0 {
			q.head--
			q.ready[q.head] = qm
			return
		}
		q.ready = slices.Insert(q.ready, q.head+i, qm)
		return
	}
	slices.SortFunc(msgs, bySeq)
	ready := make([]*qmsg, 0, len(rest)+len(msgs))
	for len(msgs) > 0 && len(rest) > 0 {
		if msgs[0].seq < rest[0].seq {
			ready, msgs = append(ready, msgs[0]), msgs[1:]
		} else {
			ready, rest = append(ready, rest[0]), rest[1:]
		}
	}
	ready = append(append(ready, msgs...), rest...)
	clear(q.ready)
	q.ready, q.head = ready, 0
}

// queue returns the queue named name, creating it. b.mu must be held.
func (b *Broker) queue(name string) *queue {
	q := b.queues[name]
	if q == nil {
		q = &queue{name: name}
		b.queues[name] = q
	}
	return q
}

// gc forgets q if it holds nothing and has no consumers. b.mu must be held.
func (b *Broker) gc(q *queue) {
	if q.held == 0 && len(q.consumers) == 0 && b.queues[q.name] == q {
		delete(b.queues, q.name)
	}
}

// dispatch hands ready messages to consumers with credit, round-robin,
// until the queue is empty or nobody can take more. b.mu must be held.
func (b *Broker) dispatch(q *queue) {
	var cannot []*consumer // consumers whose version cannot carry the head message
	for q.depth() > 0 {
		c := q.pick()
		if c == nil {
			break
		}
		qm := q.pop()
		err := b.deliver(c, qm)
		if errors.Is(err, server.ErrSlowConsumer) {
			// Retry once the flag is set: a Written callback that ran
			// before it (the writer took the queue meanwhile) would have
			// missed it, and then this delivery succeeds now.
			c.cl.stalled.Store(true)
			err = b.deliver(c, qm)
		}
		switch {
		case err == nil:
		case errors.Is(err, frame.ErrUnencodable):
			// Another consumer (of a later version) may take it; if none
			// can, it is dropped rather than block the queue forever.
			c.skip = true
			cannot = append(cannot, c)
			if len(cannot) < len(q.consumers) {
				q.pushFront(qm)
				continue
			}
			q.held--
			b.st.undeliverable++
			b.cfg.logger.Warn("stomp message not encodable for any consumer; dropped", "queue", q.name, "id", qm.m.ID, "err", err)
		default:
			q.pushFront(qm)
			c.skip = true
			continue
		}
		// The head message went somewhere: those that could not carry it
		// may take the next one.
		for _, o := range cannot {
			o.skip = false
		}
		cannot = cannot[:0]
	}
	for _, c := range q.consumers {
		c.skip = false
	}
	b.gc(q)
}

// pick returns the next consumer, round-robin, that has credit, or nil.
func (q *queue) pick() *consumer {
	n := len(q.consumers)
	for i := range n {
		j := (q.next + i) % n
		if c := q.consumers[j]; !c.skip && c.credit() {
			q.next = (j + 1) % n
			return c
		}
	}
	return nil
}

// deliver hands qm to c's session. b.mu must be held.
func (b *Broker) deliver(c *consumer, qm *qmsg) error {
	d := server.Delivery{Subscription: c.sub.ID, Message: qm.message()}
	cl := c.cl
	auto := c.auto()
	d.Written = func(err error) { b.written(cl, c, qm, auto, err) }
	if err := cl.sess.Deliver(d); err != nil {
		return err
	}
	if auto {
		c.inflight++
	} else {
		c.unacked = append(c.unacked, qm)
	}
	b.st.out++
	if qm.redelivered {
		b.st.redelivered++
	}
	return nil
}

// written is the Written callback of every queue delivery, on the
// session's writer goroutine. In auto mode a written message is consumed
// and an unwritten one goes back to the queue; either way, a session that
// found its outbound queue full gets another try.
func (b *Broker) written(cl *client, c *consumer, qm *qmsg, auto bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := qm.q
	if auto {
		c.inflight--
		switch {
		case err == nil:
			q.held--
			b.st.acked++
		case errors.Is(err, frame.ErrUnencodable):
			// The subscriber's version cannot carry this message's
			// headers; redelivering would fail forever.
			q.held--
			b.st.undeliverable++
			b.cfg.logger.Warn("stomp message not encodable for subscriber; dropped", "queue", q.name, "id", qm.m.ID, "err", err)
		case errors.Is(err, server.ErrSessionClosed):
			q.pushFront(qm) // never written: not a redelivery
		default:
			q.requeue([]*qmsg{qm})
		}
		b.dispatch(q)
	} else if errors.Is(err, frame.ErrUnencodable) {
		for i, o := range c.unacked {
			if o == qm {
				c.unacked = append(c.unacked[:i], c.unacked[i+1:]...)
				q.held--
				b.st.undeliverable++
				b.cfg.logger.Warn("stomp message not encodable for subscriber; dropped", "queue", q.name, "id", qm.m.ID, "err", err)
				break
			}
		}
	}
	if auto {
		b.unstall(cl, q) // q was just dispatched
	} else {
		b.unstall(cl, nil)
	}
}

// unstall retries the queues of cl's consumers (other than except) if a
// delivery found cl's outbound queue full since the last retry. b.mu must
// be held.
func (b *Broker) unstall(cl *client, except *queue) {
	if !cl.stalled.Swap(false) {
		return
	}
	for _, o := range cl.subs {
		if o.q != nil && o.q != except {
			b.dispatch(o.q)
		}
	}
}
