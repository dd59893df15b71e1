package broker

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// qmsg is a message held by a queue. Guarded by Broker.mu.
type qmsg struct {
	m           *server.Message // as sent; shared, never modified
	q           *queue
	seq         uint64 // the order of SEND: the queue keeps its ready messages in this order
	size        int64  // msgSize(m)
	returns     int    // times it went back to the queue after a delivery
	redelivered bool
	again       *server.Message // m with redelivered:true, made on first redelivery
	due         time.Time       // NACKed with a redelivery delay: when it is ready again
	writes      int             // in this many consumers' unwritten (Written callbacks to come)
	consumed    bool            // consumed while writes > 0: the last callback recycles it
}

// message returns what to deliver: m, or its redelivered copy.
func (qm *qmsg) message() *server.Message {
	if !qm.redelivered {
		return qm.m
	}
	if qm.again == nil {
		c := copyMessage(qm.m)
		c.Header.Set("redelivered", "true")
		qm.again = c
	}
	return qm.again
}

// copyMessage returns a copy of m with its own header. Field by field: the
// engine still writes m's unexported fields after Send returns.
func copyMessage(m *server.Message) *server.Message {
	return &server.Message{ID: m.ID, Seq: m.Seq, Destination: m.Destination, Header: m.Header.Clone(), Body: m.Body}
}

// msgID returns the message-id of m (for logs: it allocates).
func msgID(m *server.Message) string {
	if m.ID != "" || m.Seq == 0 {
		return m.ID
	}
	return "m-" + strconv.FormatUint(m.Seq, 10)
}

// seqOf returns the number of the message-id id ("m-" and Message.Seq),
// or 0 if it is none of the broker's.
func seqOf(id string) uint64 {
	rest, ok := strings.CutPrefix(id, "m-")
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// recycle keeps qm, consumed, for reuse once nothing refers to it: now,
// or at the last Written callback still to come for it (a consumer that
// left may have had it on its way, or the client acknowledged it before
// the writer reported). b.mu must be held.
func (b *Broker) recycle(qm *qmsg) {
	if qm.writes > 0 {
		qm.consumed = true
		return
	}
	b.reuse(qm)
}

// reuse keeps qm for reuse and releases its message to the engine
// (server.Message.Release): it is consumed, and nothing refers to either
// any more, nor to its redelivered copy, whose deliveries are written too.
// b.mu must be held.
func (b *Broker) reuse(qm *qmsg) {
	m := qm.m
	b.free.put(qm)
	m.Release()
}

// maxFree bounds the queue and topic message structs the broker keeps for
// reuse (each list at most about 100 KiB).
const maxFree = 1024

// freeList keeps up to maxFree structs for reuse: consumed queue messages,
// topic messages out of every backlog. Guarded by the Broker's mu.
type freeList[T any] struct{ s []*T }

// get returns a kept struct (zeroed when it was put) or a new one.
func (f *freeList[T]) get() *T {
	if n := len(f.s); n > 0 {
		p := f.s[n-1]
		f.s[n-1] = nil
		f.s = f.s[:n-1]
		return p
	}
	return new(T)
}

// put zeroes p, referenced by nothing any more, and keeps it unless
// maxFree are kept already.
func (f *freeList[T]) put(p *T) {
	if len(f.s) < maxFree {
		var zero T
		*p = zero
		f.s = append(f.s, p)
	}
}

// queue is a point-to-point destination. Guarded by Broker.mu.
type queue struct {
	name      string
	ready     []*qmsg // waiting for a consumer; ready[head:] in order
	head      int
	consumers []*consumer
	next      int   // round-robin position in consumers
	held      int   // ready + unacknowledged + in flight + delayed: what WithQueueLimit bounds
	bytes     int64 // their size: what WithQueueBytes bounds
	// waiting lists, oldest first, the SENDs that found the queue full;
	// wtimer refuses those that wait past WithQueueFullTimeout.
	waiting []*waiter
	wtimer  *time.Timer
	// delayed lists, in due order, the NACKed messages waiting for
	// WithRedeliveryDelay; dtimer makes them ready.
	delayed []*qmsg
	dtimer  *time.Timer
}

func (q *queue) depth() int { return len(q.ready) - q.head }

// room reports whether q may take one more message of size bytes. An
// empty queue takes any one message, so that a message larger than
// WithQueueBytes does not wait for ever.
func (q *queue) room(size int64, cfg *config) bool {
	return q.held < cfg.queueLimit && (q.held == 0 || q.bytes+size <= cfg.queueBytes)
}

// add puts a new message (its bytes already counted by Broker.take) at the
// end of q.
func (q *queue) add(qm *qmsg) {
	q.push(qm)
	q.held++
	q.bytes += qm.size
}

// consumed counts qm out of its queue and the broker's bytes: acknowledged,
// written in auto mode, or dropped as undeliverable. The caller admits
// waiting SENDs afterwards. b.mu must be held.
func (b *Broker) consumed(qm *qmsg) {
	qm.q.held--
	qm.q.bytes -= qm.size
	b.give(qm.size)
}

// redeliver returns msgs, delivered to a consumer and not consumed, to
// their queue q: past WithMaxRedeliveries to the dead-letter queue, NACKed
// ones (nack) after WithRedeliveryDelay, the others at once, at their
// original places. b.mu must be held.
func (b *Broker) redeliver(q *queue, msgs []*qmsg, nack bool) {
	back := msgs[:0:0]
	moved := false
	for _, qm := range msgs {
		qm.returns++
		if b.cfg.maxRedeliver > 0 && qm.returns > b.cfg.maxRedeliver && b.deadLetter(qm) {
			moved = true
			continue
		}
		if nack && b.cfg.redeliverDly > 0 {
			qm.redelivered = true
			qm.due = time.Now().Add(b.cfg.redeliverDly)
			q.delayed = append(q.delayed, qm)
			continue
		}
		back = append(back, qm)
	}
	q.requeue(back)
	if len(q.delayed) > 0 && q.dtimer == nil && !b.closed {
		q.dtimer = time.AfterFunc(time.Until(q.delayed[0].due), func() { b.ripen(q) })
	}
	if moved {
		b.admit(q)
	}
}

// ripen is q's redelivery-delay timer: the NACKed messages whose delay is
// over are ready again.
func (b *Broker) ripen(q *queue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q.dtimer = nil
	if b.closed {
		return
	}
	now := time.Now()
	n := 0
	for n < len(q.delayed) && !q.delayed[n].due.After(now) {
		n++
	}
	q.requeue(slices.Clone(q.delayed[:n]))
	clear(q.delayed[:n])
	q.delayed = q.delayed[n:]
	if len(q.delayed) > 0 {
		q.dtimer = time.AfterFunc(time.Until(q.delayed[0].due), func() { b.ripen(q) })
	} else {
		q.delayed = nil
	}
	b.dispatch(q)
}

// deadLetter moves qm from its queue to the queue's dead-letter queue,
// marked with an original-destination header, and reports whether it did:
// not for a message of a dead-letter queue, nor when the dead-letter queue
// is full (then it stays where it is). b.mu must be held.
func (b *Broker) deadLetter(qm *qmsg) bool {
	q := qm.q
	if strings.HasPrefix(q.name, b.cfg.dlqPrefix) {
		return false
	}
	name := b.cfg.dlqPrefix + strings.TrimPrefix(q.name, "/queue/")
	m := copyMessage(qm.m)
	m.Destination = name
	m.Header.Set("destination", name)
	m.Header.Set("original-destination", q.name)
	dlq := b.queue(name)
	size := msgSize(m)
	if !dlq.room(size, &b.cfg) {
		b.gc(dlq)
		return false
	}
	b.consumed(qm)
	b.seq++
	b.take(size)
	dlq.add(&qmsg{m: m, q: dlq, seq: b.seq, size: size})
	b.st.deadLettered++
	b.cfg.logger.Info("stomp message dead-lettered", "queue", q.name, "dlq", name, "id", msgID(m), "returns", qm.returns)
	b.dispatch(dlq)
	return true
}

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
		// A copy: name may be a Message's destination, bytes of memory
		// the engine reuses once the broker releases the Message.
		name = strings.Clone(name)
		q = &queue{name: name}
		b.queues[name] = q
	}
	return q
}

// gc forgets q if it holds nothing, has no consumers and no SEND waits for
// it. b.mu must be held.
func (b *Broker) gc(q *queue) {
	if q.held == 0 && len(q.consumers) == 0 && len(q.waiting) == 0 && b.queues[q.name] == q {
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
			b.consumed(qm)
			b.admit(q)
			b.st.undeliverable++
			b.cfg.logger.Warn("stomp message not encodable for any consumer; dropped", "queue", q.name, "id", msgID(qm.m), "err", err)
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
	d := server.Delivery{Subscription: c.sub.ID, Message: qm.message(), Written: c.onWritten}
	if err := c.cl.sess.Deliver(d); err != nil {
		return err
	}
	c.unwritten = append(c.unwritten, qm)
	qm.writes++
	if c.auto() {
		c.inflight++
	} else {
		c.unacked[qm.m.Seq] = qm
	}
	b.st.out++
	if qm.redelivered {
		b.st.redelivered++
	}
	return nil
}

// written is the Written callback of every queue delivery to c (through
// c.onWritten), on the session's writer goroutine: it is about the oldest
// of c.unwritten. In auto mode a written message is consumed and an
// unwritten one goes back to the queue; either way, a session that found
// its outbound queue full gets another try.
func (b *Broker) written(c *consumer, err error) {
	cl := c.cl
	if err == nil {
		cl.progress.Add(1)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	qm := c.unwritten[c.uhead]
	c.unwritten[c.uhead] = nil
	c.uhead++
	switch {
	case c.uhead == len(c.unwritten):
		c.unwritten, c.uhead = c.unwritten[:0], 0
		if cap(c.unwritten) > 1024 {
			c.unwritten = nil // do not keep a burst's array
		}
	case c.uhead > 1024 && c.uhead*2 > len(c.unwritten):
		// Compact: through a backlog the list never empties, and the
		// array would grow with every message delivered.
		n := copy(c.unwritten, c.unwritten[c.uhead:])
		clear(c.unwritten[n:])
		c.unwritten, c.uhead = c.unwritten[:n], 0
	}
	qm.writes--
	q := qm.q
	auto := c.auto()
	if auto {
		c.inflight--
		switch {
		case err == nil:
			b.consumed(qm)
			b.admit(q)
			b.st.acked++
			b.recycle(qm)
		case errors.Is(err, frame.ErrUnencodable):
			// The subscriber's version cannot carry this message's
			// headers; redelivering would fail forever.
			b.consumed(qm)
			b.admit(q)
			b.st.undeliverable++
			b.cfg.logger.Warn("stomp message not encodable for subscriber; dropped", "queue", q.name, "id", msgID(qm.m), "err", err)
		case errors.Is(err, server.ErrSessionClosed):
			q.pushFront(qm) // never written: not a redelivery
		default:
			b.redeliver(q, []*qmsg{qm}, false)
		}
		b.dispatch(q)
	} else if errors.Is(err, frame.ErrUnencodable) && qm.m != nil && c.unacked[qm.m.Seq] == qm {
		// (qm.m is nil if qm was consumed and recycled meanwhile: c left,
		// its unacknowledged messages went back to the queue, and another
		// consumer took this one; then it is not c's to drop.)
		delete(c.unacked, qm.m.Seq)
		b.consumed(qm)
		b.admit(q)
		b.st.undeliverable++
		b.cfg.logger.Warn("stomp message not encodable for subscriber; dropped", "queue", q.name, "id", msgID(qm.m), "err", err)
		b.dispatch(q)
	} else if qm.consumed && qm.writes == 0 {
		b.reuse(qm) // consumed before the last of its callbacks
	}
	if auto {
		b.unstall(cl, q) // q was just dispatched
	} else {
		b.unstall(cl, nil)
	}
}

// unstall drains the topic backlogs and retries the queues (other than
// except) of cl's consumers if a delivery found cl's outbound queue full
// since the last retry. b.mu must be held.
func (b *Broker) unstall(cl *client, except *queue) {
	if !cl.stalled.Swap(false) {
		return
	}
	for _, o := range cl.subs {
		switch {
		case o.t != nil:
			b.drain(o)
		case o.q != except:
			b.dispatch(o.q)
		}
	}
}
