package broker

import (
	"strconv"
	"time"

	"github.com/stompout/stomp/server"
)

// hold is one SEND whose completion the broker has deferred
// (server.Message.Defer): the engine writes its RECEIPT, and reads further
// from its producer once the send window has room, when done is called.
// Guarded by Broker.mu.
type hold struct {
	from *client     // the producer's session
	done func(error) // from Message.Defer
	n    int         // conditions still waited on: backlogs above their mark, the memory limit
}

// newHold defers the completion of m, the SEND being handled for from.
// Send must call it before it returns. b.mu must be held.
func (b *Broker) newHold(from *client, m *server.Message) *hold {
	from.held++
	b.deferred++
	return &hold{from: from, done: m.Defer()}
}

// release ends one of the conditions h waits on, and completes the SEND
// when none is left. done only queues the RECEIPT: it never blocks nor
// calls the broker. b.mu must be held.
func (b *Broker) release(h *hold) {
	h.n--
	if h.n == 0 {
		h.from.held--
		b.deferred--
		h.done(nil)
	}
}

// msgSize is what a message counts toward the byte budgets: its body and
// headers.
func msgSize(m *server.Message) int64 {
	n := len(m.Body) + len(m.Destination)
	for k, v := range m.Header.All() {
		n += len(k) + len(v) + 2
	}
	return int64(n)
}

// take counts n more bytes held. b.mu must be held.
func (b *Broker) take(n int64) { b.bytes += n }

// give counts n bytes no longer held, and completes the SENDs that waited
// for the memory limit once the broker is below it. b.mu must be held.
func (b *Broker) give(n int64) {
	b.bytes -= n
	if len(b.memHolds) > 0 && b.bytes < b.cfg.memoryLimit {
		hs := b.memHolds
		b.memHolds = nil
		for _, h := range hs {
			b.release(h)
		}
	}
}

// overMemory reports whether the broker holds more than WithMemoryLimit.
// b.mu must be held.
func (b *Broker) overMemory() bool { return b.bytes > b.cfg.memoryLimit }

// holdForMemory makes h wait for the memory limit too. b.mu must be held.
func (b *Broker) holdForMemory(h *hold) {
	h.n++
	b.memHolds = append(b.memHolds, h)
}

// tick is how often a client with a backlog is checked for progress: the
// slow-consumer timeout is met within a quarter of it.
func (b *Broker) tick() time.Duration { return max(b.cfg.slowTimeout/4, time.Millisecond) }

// watch starts checking cl for progress: its first topic backlog has just
// formed (cl.backlogs went from 0 to 1), so the time without progress
// counts from now. b.mu must be held.
func (b *Broker) watch(cl *client) {
	cl.seen = cl.progress.Load()
	cl.since = time.Now()
	if cl.timer != nil || b.closed {
		return
	}
	cl.timer = time.AfterFunc(b.tick(), func() { b.check(cl) })
}

// check is cl's progress timer: a client with a backlog that has taken
// nothing for WithSlowConsumerTimeout is cut off.
func (b *Broker) check(cl *client) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.sessions[cl.sess] != cl || cl.backlogs == 0 {
		cl.timer = nil
		return
	}
	now := time.Now()
	if p := cl.progress.Load(); p != cl.seen {
		cl.seen, cl.since = p, now
	} else if idle := now.Sub(cl.since); idle >= b.cfg.slowTimeout {
		cl.timer = nil
		b.cut(cl, "nothing written to the client for "+idle.Round(time.Millisecond).String()+" with "+b.backlogDesc(cl)+" waiting")
		return
	}
	cl.timer.Reset(b.tick())
}

// backlogDesc describes cl's topic backlogs for the slow-consumer ERROR.
// b.mu must be held.
func (b *Broker) backlogDesc(cl *client) string {
	n, bytes := 0, int64(0)
	for _, c := range cl.subs {
		n += c.blen()
		bytes += c.bbytes
	}
	return strconv.Itoa(n) + " messages (" + strconv.FormatInt(bytes, 10) + " bytes)"
}

// cut ends cl's session with an ERROR "slow consumer". Its topic
// subscriptions are detached at once (their backlogs freed, the SENDs they
// held completed) so that nothing more is offered to it; its queue
// subscriptions are left to Disconnect, which returns their
// unacknowledged messages. b.mu must be held.
func (b *Broker) cut(cl *client, why string) {
	b.st.slow++
	for id, c := range cl.subs {
		if c.t != nil {
			b.remove(c)
			delete(cl.subs, id)
		}
	}
	cl.sess.Close(&server.ApplicationError{
		Message: "slow consumer",
		Body:    why + "; disconnected rather than drop messages",
	})
}

// waiter is a SEND to a full queue, waiting for room. Guarded by
// Broker.mu.
type waiter struct {
	qm   *qmsg
	from *client
	done func(error)
	at   time.Time // when it started waiting
}

// wait makes the SEND of qm wait for room in q. b.mu must be held.
func (b *Broker) wait(q *queue, qm *qmsg, from *client, m *server.Message) {
	from.held++
	b.deferred++
	b.take(qm.size)
	q.waiting = append(q.waiting, &waiter{qm: qm, from: from, done: m.Defer(), at: time.Now()})
	if q.wtimer == nil && !b.closed {
		q.wtimer = time.AfterFunc(b.cfg.fullTimeout, func() { b.expire(q) })
	}
}

// admit moves the SENDs waiting for q into it, in order, as far as there is
// room, and completes them. b.mu must be held.
func (b *Broker) admit(q *queue) {
	n := 0
	for n < len(q.waiting) && q.room(q.waiting[n].qm.size, &b.cfg) {
		w := q.waiting[n]
		q.waiting[n] = nil
		n++
		q.add(w.qm)
		w.from.held--
		b.deferred--
		w.done(nil)
	}
	if n > 0 {
		q.waiting = q.waiting[n:]
		if len(q.waiting) == 0 {
			q.waiting = nil
		}
	}
}

// expire is q's timer for waiting SENDs: those that waited
// WithQueueFullTimeout are refused with an ERROR "queue full" (which ends
// their producer's session; the message is not in the queue).
func (b *Broker) expire(q *queue) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q.wtimer = nil
	if b.closed {
		return
	}
	now := time.Now()
	for len(q.waiting) > 0 {
		w := q.waiting[0]
		if wait := now.Sub(w.at); wait < b.cfg.fullTimeout {
			q.wtimer = time.AfterFunc(b.cfg.fullTimeout-wait, func() { b.expire(q) })
			break
		}
		q.waiting[0] = nil
		q.waiting = q.waiting[1:]
		w.from.held--
		b.deferred--
		b.st.refused++
		b.give(w.qm.size)
		w.done(&server.ApplicationError{
			Message: "queue full",
			Body: q.name + " holds " + strconv.Itoa(q.held) + " messages (" + strconv.FormatInt(q.bytes, 10) +
				" bytes) and had no room for " + b.cfg.fullTimeout.String(),
		})
	}
	if len(q.waiting) == 0 {
		q.waiting = nil
		b.gc(q)
	}
}

// stop marks the broker closed and stops its timers. Sessions are gone:
// the SENDs still held have nobody to complete for.
func (b *Broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, q := range b.queues {
		if q.wtimer != nil {
			q.wtimer.Stop()
			q.wtimer = nil
		}
		if q.dtimer != nil {
			q.dtimer.Stop()
			q.dtimer = nil
		}
	}
	for _, cl := range b.sessions {
		if cl.timer != nil {
			cl.timer.Stop()
			cl.timer = nil
		}
	}
}
