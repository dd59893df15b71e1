package stomp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/stompout/stomp/frame"
)

// Subscription is one SUBSCRIBE: a channel of messages to range over, from
// as many goroutines as you like, until it is closed. It outlives the
// transports of its Conn: after a reconnect the client subscribes again
// with the same id, destination and headers, and the channel stays open
// (a range loop only sees a pause).
//
// The channel is closed when the subscription ends: after Unsubscribe,
// when the Conn ends, or on overflow under the OverflowUnsubscribe policy.
// Err then says why. Messages already in the channel stay readable after
// the close.
//
// Flow control. The reader goroutine hands each message to the channel
// (of WithBuffer capacity) without waiting; when the channel is full the
// message waits in the subscription's backlog, handed on in order as the
// application takes messages, so that one slow subscription does not hold
// up the others, receipts or heart-beats. The backlogs of a Conn are
// bounded in bytes together (WithReceiveBuffer); past that, the reader
// waits for the application, and the transport pushes back on the broker:
// nothing is dropped, whatever the backlog (the default policy,
// OverflowBlock). The price of backpressure: one subscription nobody reads
// holds up the others on the same Conn once the budget is spent. For hard
// isolation, subscribe in a client ack mode (the broker then sends at
// most the prefetch, by default the channel's capacity) or use separate
// connections. WithOverflow chooses another policy per subscription.
//
// A Subscription remembers its destination, id and SUBSCRIBE headers.
type Subscription struct {
	conn     *Conn
	id       string
	dest     string
	ack      AckMode
	header   frame.Header // the SUBSCRIBE headers as sent, receipt excluded; read-only
	seq      uint64
	overflow Overflow

	// on is the session whose writer last wrote the SUBSCRIBE; owned by
	// the writer goroutines (one session at a time), which subscribe
	// again on a new session the subscriptions that were on an earlier one.
	on *session

	ch            chan Message  // sent to by the reader (or the pump) under mu; closed under mu
	unsubscribing atomic.Bool   // an UNSUBSCRIBE is queued or sent
	unsubMu       chan struct{} // capacity 1: held by the Unsubscribe in progress
	dropped       atomic.Uint64 // OverflowDrop: messages dropped
	// acks orders the settlements of a client ack mode (nil in AckAuto).
	acks *ackTracker
	// retired is set once the subscription was ended while the Conn lives
	// (Unsubscribe, an overflow, a cancelled Subscribe): the broker no
	// longer knows its ack ids.
	retired atomic.Bool
	// unroutedDropped counts its late messages dropped from a full Unrouted.
	unroutedDropped atomic.Uint64

	mu      sync.Mutex // guards the fields below and sends on ch
	ended   bool
	err     error
	backlog backlog      // waiting for room in ch, oldest first
	spare   spares       // chunks the pump has emptied, for push to reuse; none once the pump stops
	pumping bool         // a pump goroutine is handing the backlog on: the reader only appends
	held    atomic.Int64 // messages the pump has taken from backlog and not yet sent
}

// queued is a message in a backlog, with what it counts toward the
// receive budget.
type queued struct {
	m    Message
	size int64
}

// backlog is a queue of messages in chunks: a push never moves what is
// queued (a slice that grows copies every entry, write barriers and all,
// each time it doubles), and a small backlog stays small: the chunks grow
// from minChunk to maxChunk entries.
type backlog struct {
	head, tail *chunk
	n          int // entries in all chunks
}

// chunk is a piece of a backlog: q fills up to its capacity, never past.
type chunk struct {
	q    []queued
	next *chunk
}

const (
	minChunk = 8
	maxChunk = 128 // 26 KiB of entries
)

// spares is a short list of empty chunks.
type spares struct {
	head *chunk
	n    int
}

// maxSpares bounds the chunks a busy subscription keeps for reuse: while
// its pump runs, the emptied chunks wait for the reader to fill them again,
// so that a steady backlog allocates none (at most what the backlog held at
// once, and at most 256 chunks, 6.5 MiB of entries); when the pump stops
// they go.
const maxSpares = 256

// put keeps c, emptied, unless maxSpares are kept already.
func (sp *spares) put(c *chunk) {
	if sp.n < maxSpares {
		c.q, c.next = c.q[:0], sp.head
		sp.head = c
		sp.n++
	}
}

// get returns a kept chunk, else one of chunkPool, or nil.
func (sp *spares) get() *chunk {
	c := sp.head
	if c != nil {
		sp.head, c.next = c.next, nil
		sp.n--
		return c
	}
	c, _ = chunkPool.Get().(*chunk)
	return c
}

// release gives the kept chunks of the largest size to chunkPool and
// empties sp: the pump stopped.
func (sp *spares) release() {
	for c := sp.head; c != nil; {
		next := c.next
		if cap(c.q) == maxChunk {
			c.next = nil
			chunkPool.Put(c)
		}
		c = next
	}
	*sp = spares{}
}

// chunkPool holds empty chunks of maxChunk entries that no subscription
// keeps: a backlog that forms again, on any subscription, takes them
// before it allocates (an idle subscription holds none, and the collector
// empties the pool of an idle process).
var chunkPool sync.Pool

// push appends q, in a new chunk if the last is full: a spare one if there
// is one, else a new one.
func (b *backlog) push(q queued, sp *spares) {
	t := b.tail
	if t == nil || len(t.q) == cap(t.q) {
		n := minChunk
		if t != nil {
			n = min(2*cap(t.q), maxChunk)
		}
		c := sp.get()
		if c == nil {
			c = &chunk{q: make([]queued, 0, n)}
		}
		if t == nil {
			b.head = c
		} else {
			t.next = c
		}
		b.tail, t = c, c
	}
	t.q = append(t.q, q)
	b.n++
}

// drop clears the entries from chunk c on, from index i of it, and
// returns what they counted toward the receive budget.
func drop(c *chunk, i int) int64 {
	var n int64
	for ; c != nil; c, i = c.next, 0 {
		for j := range c.q[i:] {
			n += c.q[i+j].size
		}
		clear(c.q)
	}
	return n
}

// Subscribe sends SUBSCRIBE for dest and returns the subscription once the
// frame is written. Options: WithAck (default AckAuto), WithID (default
// "sub-N"), WithBuffer, WithPrefetch, WithHeader (selector, durable
// subscription headers, ...), WithReceipt. Any number of subscriptions
// may share a destination. It blocks until the frame is flushed, or ctx
// ends (ctx.Err(); if the writer had already taken the SUBSCRIBE, an
// UNSUBSCRIBE follows it).
func (c *Conn) Subscribe(ctx context.Context, dest string, opts ...SubscribeOption) (*Subscription, error) {
	var cc callConfig
	if err := cc.applySubscribe(opts); err != nil {
		return nil, cc.settle(err)
	}
	id := cc.id
	if id == "" {
		id = c.newSubID()
	}
	ack := cc.ack
	if ack == "" {
		ack = AckAuto
	}
	n := cc.buffer
	if n == 0 {
		n = c.cfg.subBuffer
	}
	prefetch := cc.prefetch
	if prefetch == 0 && ack != AckAuto {
		// The broker never sends more than the channel holds.
		prefetch = n
	}
	req := c.newRequest(frame.CmdSubscribe)
	h := &req.f.Header
	h.Add(frame.HdrDestination, dest)
	h.Add(frame.HdrID, id)
	h.Add(frame.HdrAck, string(ack))
	if prefetch > 0 {
		p := strconv.Itoa(prefetch)
		h.Add("prefetch-count", p)
		h.Add("activemq.prefetchSize", p)
	}
	addHeaders(h, cc.headers)
	s := &Subscription{
		conn:   c,
		id:     id,
		dest:   dest,
		ack:    ack,
		header: h.Clone(),
		seq:    c.seq.Add(1),
		ch:     make(chan Message, n),

		overflow: cc.overflow,
		unsubMu:  make(chan struct{}, 1),
	}
	if ack != AckAuto {
		s.acks = newAckTracker(ack, id)
	}
	req.sub = s
	// Registered before the frame goes out: the first MESSAGE may follow
	// the SUBSCRIBE at once.
	if err := c.addSub(s); err != nil {
		freeRequest(req)
		if cc.id == "" && errors.Is(err, errSubIDInUse) {
			// A WithID took the generated id meanwhile: pick another.
			return c.Subscribe(ctx, dest, opts...)
		}
		return nil, cc.settle(err)
	}
	if pending, err := c.doPending(ctx, req, &cc); err != nil {
		if errors.Is(err, ErrConnectionLost) && c.willReconnect() {
			// Written on a session that was lost: the subscription is
			// made again on the next one.
			return s, nil
		}
		c.removeSub(s)
		s.end(err)
		if pending && s.unsubscribing.CompareAndSwap(false, true) {
			// The SUBSCRIBE still goes out: undo it after it.
			c.queueCtrl(frame.New(frame.CmdUnsubscribe, frame.HdrID, s.id))
		}
		return nil, err
	}
	return s, nil
}

func (c *Conn) addSub(s *Subscription) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return closedError(c.err)
	}
	old := *c.subs.Load()
	if _, dup := old[s.id]; dup {
		return fmt.Errorf("%w: %q", errSubIDInUse, s.id)
	}
	m := maps.Clone(old)
	m[s.id] = s
	c.subs.Store(&m)
	return nil
}

// errSubIDInUse: Subscribe with the id of a live subscription.
var errSubIDInUse = errors.New("stomp: subscription id is in use")

// newSubID generates a subscription id ("sub-N") that names no live
// subscription, nor one that ended recently (whose late messages would
// otherwise reach the new one): an id chosen by WithID may have taken N.
func (c *Conn) newSubID() string {
	for {
		id := c.subIDs.next("sub-")
		c.mu.Lock()
		_, live := (*c.subs.Load())[id]
		_, retired := c.retired.byID[id]
		c.mu.Unlock()
		if !live && !retired {
			return id
		}
	}
}

func (c *Conn) removeSub(s *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.subs.Load()
	if old[s.id] != s {
		return
	}
	m := maps.Clone(old)
	delete(m, s.id)
	c.subs.Store(&m)
	c.retired.add(s)
	s.retired.Store(true)
}

// retiredSubs remembers the last maxRetired subscriptions that ended while
// the connection lived, so that a MESSAGE the server sent before it saw
// the UNSUBSCRIBE is known to belong to an ended subscription.
type retiredSubs struct {
	byID  map[string]*Subscription
	order []string // oldest first
}

const maxRetired = 1024

func (r *retiredSubs) add(s *Subscription) {
	if r.byID == nil {
		r.byID = make(map[string]*Subscription)
	}
	if _, ok := r.byID[s.id]; !ok {
		if len(r.order) == maxRetired {
			delete(r.byID, r.order[0])
			r.order = r.order[1:]
		}
		r.order = append(r.order, s.id)
	}
	r.byID[s.id] = s
}

// retiredSub returns the ended subscription with this id, if remembered.
func (c *Conn) retiredSub(id string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retired.byID[id]
}

// C returns the channel of messages. The library closes it when the
// subscription ends; then Err says why.
func (s *Subscription) C() <-chan Message { return s.ch }

// ID returns the subscription id (the SUBSCRIBE frame's id header).
func (s *Subscription) ID() string { return s.id }

// Destination returns the destination subscribed to.
func (s *Subscription) Destination() string { return s.dest }

// AckMode returns the subscription's ack mode.
func (s *Subscription) AckMode() AckMode { return s.ack }

// Header returns a copy of the headers of the SUBSCRIBE frame as sent
// (without receipt), e.g. to subscribe again elsewhere.
func (s *Subscription) Header() frame.Header { return s.header.Clone() }

// Err returns why the subscription ended: nil while it is live and after
// Unsubscribe; ErrSlowConsumer after an overflow; ErrClosed when the user
// closed the connection; otherwise the connection's error (a
// *ServerError, a *HeartBeatError, ...).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Unsubscribe sends UNSUBSCRIBE, then ends the subscription: its channel
// is closed (buffered messages can still be read) and messages the server
// still sends for it go to Conn.Unrouted. It blocks until the frame is
// flushed, or until ctx ends: before the frame was taken by the writer,
// it returns ctx.Err() and the subscription stays live; after, it returns
// ctx.Err() too but the frame still goes out and the subscription ends.
// On a subscription that has ended it does nothing and returns nil; a
// call concurrent with another waits for the other's outcome.
func (s *Subscription) Unsubscribe(ctx context.Context, opts ...CallOption) error {
	var cc callConfig
	if err := cc.apply(opts); err != nil {
		return cc.settle(err)
	}
	select {
	case s.unsubMu <- struct{}{}:
	case <-ctx.Done():
		return cc.settle(ctx.Err())
	}
	defer func() { <-s.unsubMu }()
	if s.isEnded() || !s.unsubscribing.CompareAndSwap(false, true) {
		return cc.settle(nil)
	}
	c := s.conn
	req := c.newRequest(frame.CmdUnsubscribe)
	req.sub = s
	req.f.Header.Add(frame.HdrID, s.id)
	addHeaders(&req.f.Header, cc.headers)
	pending, err := c.doPending(ctx, req, &cc)
	if err != nil && !pending {
		s.unsubscribing.Store(false)
		// An overflow while our UNSUBSCRIBE was queued left sending one
		// to us: the server must still hear it.
		if errors.Is(s.Err(), ErrSlowConsumer) && s.unsubscribing.CompareAndSwap(false, true) {
			c.queueCtrl(frame.New(frame.CmdUnsubscribe, frame.HdrID, s.id))
		}
		return err
	}
	c.removeSub(s)
	s.end(nil)
	return err
}

func (s *Subscription) isEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// endedHere reports whether the subscription was ended by Unsubscribe or
// an overflow while its connection lives on.
func (s *Subscription) endedHere() bool {
	return s.retired.Load()
}

// end ends the subscription once, recording why: the channel is closed
// now, or by the pump once the backlog is handed on.
func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	if !s.pumping {
		close(s.ch)
	}
}

// deliver is called by the reader goroutine; it never blocks. It reports
// false when the message must go to Unrouted instead: the subscription has
// ended, or has just overflowed (OverflowUnsubscribe).
func (s *Subscription) deliver(m *Message) bool {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	if !s.pumping {
		select {
		case s.ch <- *m:
			s.mu.Unlock()
			return true
		default:
		}
	}
	switch s.overflow {
	case OverflowDrop:
		s.mu.Unlock()
		if s.acks != nil {
			s.acks.dropped(m)
		}
		n := s.dropped.Add(1)
		s.conn.log.Warn("stomp: subscription buffer full: message dropped (OverflowDrop)",
			"subscription", s.id, "destination", s.dest, "message-id", m.ID, "dropped", n)
		return true
	case OverflowUnsubscribe:
		s.ended, s.err = true, ErrSlowConsumer // end is a no-op from here: the close is ours
		s.mu.Unlock()
		s.overflowed()
		return false
	}
	size := m.size()
	s.backlog.push(queued{*m, size}, &s.spare)
	s.conn.recv.add(size)
	if !s.pumping {
		s.pumping = true
		s.conn.wg.Go(s.pump)
	}
	s.mu.Unlock()
	return true
}

// pumpBatch and pumpBatchBytes bound what the pump has sent without
// giving it back to held and the receive budget yet.
const (
	pumpBatch      = 32
	pumpBatchBytes = 64 << 10
)

// pump hands the backlog on to the channel, in order, as the application
// takes messages, and returns once it is empty; it closes the channel if
// the subscription has ended meanwhile. It takes the whole backlog at a
// time, so that the reader appending and the pump sending do not meet on
// the lock for every message. When the Conn finishes, what is left is
// dropped (in the client ack modes the broker redelivers it).
func (s *Subscription) pump() {
	c := s.conn
	for {
		s.mu.Lock()
		if s.backlog.n == 0 {
			s.pumping = false
			s.spare.release() // an idle subscription holds no chunk
			if s.ended {
				close(s.ch)
			}
			s.mu.Unlock()
			return
		}
		// Chunks sent are let go as the pump goes on.
		k := s.backlog.head
		s.held.Store(int64(s.backlog.n))
		s.backlog = backlog{}
		s.mu.Unlock()
		// What was sent is given back to held and to the receive budget
		// in batches (each is an atomic add the reader's core shares),
		// before the pump can block, at the end of each chunk, and every
		// pumpBatch messages or pumpBatchBytes bytes in between.
		var sent, freed int64
		settle := func() {
			s.held.Add(-sent)
			c.recv.release(freed)
			sent, freed = 0, 0
		}
		for k != nil {
			for i := range k.q {
				// Try without the stop channel first: a select on both
				// locks both, and every pump of the Conn shares stop.
				select {
				case s.ch <- k.q[i].m: // only the pump sends while pumping
					sent++
					freed += k.q[i].size
					k.q[i] = queued{}
					if sent == pumpBatch || freed >= pumpBatchBytes {
						settle()
					}
					continue
				default:
				}
				if sent > 0 {
					settle() // the application may take a while
				}
				select {
				case s.ch <- k.q[i].m: // given back with the next settle, before the pump can block again
					sent++
					freed += k.q[i].size
					k.q[i] = queued{}
				case <-c.stop.Done():
					s.mu.Lock()
					n := drop(k, i) + drop(s.backlog.head, 0)
					s.backlog = backlog{}
					s.held.Store(0)
					s.pumping = false
					if !s.ended {
						s.ended, s.err = true, ErrClosed
					}
					close(s.ch)
					s.mu.Unlock()
					c.recv.release(n)
					return
				}
			}
			if sent > 0 {
				settle()
			}
			// Sent (and cleared) to the end: the reader may fill it again,
			// sparing an allocation per chunk while messages keep coming.
			next := k.next
			s.mu.Lock()
			s.spare.put(k)
			s.mu.Unlock()
			k = next
		}
	}
}

// overflowed ends a subscription whose channel was full under the
// OverflowUnsubscribe policy: it queues the UNSUBSCRIBE and frees the id
// before the close tells the user, so that a new SUBSCRIBE with the same
// id follows the UNSUBSCRIBE.
func (s *Subscription) overflowed() {
	c := s.conn
	if s.unsubscribing.CompareAndSwap(false, true) { // else Unsubscribe is sending one
		c.queueCtrl(frame.New(frame.CmdUnsubscribe, frame.HdrID, s.id))
	}
	c.removeSub(s)
	s.mu.Lock()
	close(s.ch) // the reader is the only sender, and ended keeps it away
	s.mu.Unlock()
	c.log.Warn("stomp: slow consumer: subscription buffer full, unsubscribing (OverflowUnsubscribe)",
		"subscription", s.id, "destination", s.dest, "buffer", cap(s.ch))
}

// Dropped returns how many messages the OverflowDrop policy has dropped.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Backlog returns how many messages wait in the subscription's backlog for
// room in its channel (beyond the len(C()) in the channel itself). While
// messages flow into the channel it may count up to a few dozen that have
// just gone in; it is exact whenever the channel is full or the backlog
// empty.
func (s *Subscription) Backlog() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backlog.n + int(s.held.Load())
}

// UnroutedDropped returns how many of the subscription's late messages
// (those the server sent after it ended, which go to Conn.Unrouted) were
// dropped because the Unrouted channel was full; Conn.UnroutedDropped
// counts the drops of the whole Conn.
func (s *Subscription) UnroutedDropped() uint64 { return s.unroutedDropped.Load() }
