package stomp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/stompout/stomp/frame"
)

// Subscription is one SUBSCRIBE: a channel of messages to range over, from
// as many goroutines as you like, until it is closed.
//
// The channel is closed when the subscription ends: after Unsubscribe,
// when the connection ends, or on overflow. Err then says why. Messages
// already buffered stay readable after the close.
//
// Overflow policy. The reader goroutine never waits for a subscription:
// each has a buffer (WithBuffer, WithSubscriptionBuffer). When a message
// arrives and the buffer is full, the subscription ends with
// ErrSlowConsumer: the client sends UNSUBSCRIBE, closes the channel (what
// is buffered can still be read) and Err reports ErrSlowConsumer. The
// message that did not fit, and any that the server sends for the
// subscription before it handles the UNSUBSCRIBE, go to Conn.Unrouted,
// where they can still be read (Ack and Nack return ErrSubscriptionEnded:
// the broker redelivers them). Only if Unrouted is full
// too is a message dropped, and then it is logged at warn level and
// counted (Conn.UnroutedDropped); in the client ack modes the broker
// still holds it unacknowledged and redelivers it when the connection
// ends. Other subscriptions, receipts and heart-beats
// are not affected. For backpressure instead, subscribe with AckClient or
// AckClientIndividual and WithPrefetch(n) with n no larger than the
// buffer: the broker then never has more than n unacknowledged messages in
// flight, and the buffer cannot overflow.
//
// A Subscription remembers its destination, id and SUBSCRIBE headers.
type Subscription struct {
	conn   *Conn
	id     string
	dest   string
	ack    AckMode
	header frame.Header // the SUBSCRIBE headers as sent, receipt excluded; read-only
	seq    uint64

	ch            chan Message  // sent to by the reader goroutine under mu; closed by end under mu, or by deliver
	unsubscribing atomic.Bool   // an UNSUBSCRIBE is queued or sent
	unsubMu       chan struct{} // capacity 1: held by the Unsubscribe in progress

	mu    sync.Mutex // guards ended, err and sends on ch
	ended bool
	err   error
}

// Subscribe sends SUBSCRIBE for dest and returns the subscription once the
// frame is written. Options: WithAck (default AckAuto), WithID (default
// "sub-N"), WithBuffer, WithPrefetch, WithHeader (selector, durable
// subscription headers, ...), WithReceipt. Any number of subscriptions
// may share a destination. It blocks until the frame is flushed, or ctx
// ends (ctx.Err(); if the writer had already taken the SUBSCRIBE, an
// UNSUBSCRIBE follows it).
func (c *Conn) Subscribe(ctx context.Context, dest string, opts ...CallOption) (*Subscription, error) {
	var cc callConfig
	if err := cc.apply(opts); err != nil {
		return nil, cc.settle(err)
	}
	id := cc.id
	if id == "" {
		id = c.subIDs.next("sub-")
	}
	ack := cc.ack
	if ack == "" {
		ack = AckAuto
	}
	n := cc.buffer
	if n == 0 {
		n = c.cfg.subBuffer
	}
	req := c.newRequest(frame.CmdSubscribe)
	h := &req.f.Header
	h.Add(frame.HdrDestination, dest)
	h.Add(frame.HdrID, id)
	h.Add(frame.HdrAck, string(ack))
	if cc.prefetch > 0 {
		p := fmt.Sprint(cc.prefetch)
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

		unsubMu: make(chan struct{}, 1),
	}
	// Registered before the frame goes out: the first MESSAGE may follow
	// the SUBSCRIBE at once.
	if err := c.addSub(s); err != nil {
		freeRequest(req)
		return nil, cc.settle(err)
	}
	if pending, err := c.doPending(ctx, req, &cc); err != nil {
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
		return fmt.Errorf("stomp: subscription id %q is in use", s.id)
	}
	m := maps.Clone(old)
	m[s.id] = s
	c.subs.Store(&m)
	return nil
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
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended && (s.err == nil || s.err == ErrSlowConsumer)
}

// end closes the channel once, recording why.
func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	s.ended, s.err = true, err
	close(s.ch)
}

// deliver is called by the reader goroutine; it never blocks. It reports
// false when the message must go to Unrouted instead: the subscription has
// ended, or has just overflowed.
func (s *Subscription) deliver(m Message) bool {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return false
	}
	select {
	case s.ch <- m:
		s.mu.Unlock()
		return true
	default:
	}
	s.ended, s.err = true, ErrSlowConsumer // end is a no-op from here: the close is ours
	s.mu.Unlock()

	// Queue the UNSUBSCRIBE and free the id before the close tells the
	// user: a new SUBSCRIBE with the same id then follows the UNSUBSCRIBE.
	c := s.conn
	if s.unsubscribing.CompareAndSwap(false, true) { // else Unsubscribe is sending one
		c.queueCtrl(frame.New(frame.CmdUnsubscribe, frame.HdrID, s.id))
	}
	c.removeSub(s)
	close(s.ch) // the reader is the only sender, and ended keeps it away
	c.log.Warn("stomp: slow consumer: subscription buffer full, unsubscribing",
		"subscription", s.id, "destination", s.dest, "buffer", cap(s.ch))
	return false
}
