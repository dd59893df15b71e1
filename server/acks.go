package server

import (
	"github.com/stompout/stomp/frame"
)

// pendingAck is one delivered, unacknowledged message of a subscription in
// a client ack mode. Guarded by Session.mu.
type pendingAck struct {
	sub   *Subscription
	seq   uint64 // delivery order in the session
	ackID string // 1.2 ack header; "" before 1.2
	msgID string
	gone  bool        // acknowledged, or its subscription removed
	next  *pendingAck // the next live delivery with the same key (ackIndex)
}

// ackSlab is how many pendingAcks a session allocates at a time: one
// allocation per slab instead of one per delivery, and a slab that a
// single unacknowledged delivery keeps alive stays small (about 1 KiB).
const ackSlab = 16

// newPending returns a zero pendingAck from the session's slab. s.mu must
// be held.
func (s *Session) newPending() *pendingAck {
	if len(s.ackSlab) == 0 {
		s.ackSlab = make([]pendingAck, ackSlab)
	}
	p := &s.ackSlab[0]
	s.ackSlab = s.ackSlab[1:]
	return p
}

// ackIndex finds a session's unacknowledged deliveries by the id an ACK or
// NACK names (the ack id in 1.2, the message-id before): each key leads to
// its live deliveries, oldest first, chained by next (one, unless a
// message-id was delivered to several subscriptions, or redelivered).
// Every operation is O(1) per delivery it touches. Guarded by Session.mu.
type ackIndex map[string]*pendingAck

func (ix ackIndex) key(p *pendingAck) string {
	if p.ackID != "" {
		return p.ackID
	}
	return p.msgID
}

func (ix ackIndex) add(p *pendingAck) {
	k := ix.key(p)
	q := ix[k]
	if q == nil {
		ix[k] = p
		return
	}
	for q.next != nil {
		q = q.next
	}
	q.next = p
}

func (ix ackIndex) remove(p *pendingAck) {
	k := ix.key(p)
	q := ix[k]
	if q == p {
		if p.next == nil {
			delete(ix, k)
		} else {
			ix[k] = p.next
		}
		p.next = nil
		return
	}
	for ; q != nil; q = q.next {
		if q.next == p {
			q.next, p.next = p.next, nil
			return
		}
	}
}

// find returns the oldest live delivery with key id (of subscription subID,
// if set) for which skip is false (skip may be nil).
func (ix ackIndex) find(id, subID string, skip func(*pendingAck) bool) *pendingAck {
	for p := ix[id]; p != nil; p = p.next {
		if subID != "" && p.sub.ID != subID {
			continue
		}
		if skip != nil && skip(p) {
			continue
		}
		return p
	}
	return nil
}

// track records a delivery to sub as unacknowledged. s.mu must be held.
func (s *Session) track(sub *Subscription, p *pendingAck) {
	p.sub = sub
	sub.pending = append(sub.pending, p)
	if s.acks == nil {
		s.acks = make(ackIndex)
	}
	s.acks.add(p)
}

// take removes what an ACK or NACK of p covers (p alone in
// client-individual mode; in client mode every delivery of the
// subscription up to p) and returns their message-ids, oldest first: in
// one, when p alone. s.mu must be held.
func (s *Session) take(p *pendingAck, one *[1]string) []string {
	sub := p.sub
	if sub.Ack != AckClient {
		p.gone = true
		s.acks.remove(p)
		sub.compact()
		one[0] = p.msgID
		return one[:]
	}
	var ids []string
	i := sub.head
	for ; i < len(sub.pending); i++ {
		q := sub.pending[i]
		if q.gone {
			continue
		}
		q.gone = true
		s.acks.remove(q)
		ids = append(ids, q.msgID)
		if q == p {
			break
		}
	}
	i = min(i, len(sub.pending)-1) // p is always there; never slice past the end
	clear(sub.pending[sub.head : i+1])
	sub.head = i + 1
	sub.compact()
	return ids
}

// compact drops acknowledged deliveries from the front of sub.pending and
// shrinks it when at least half of it is dead space: amortised O(1) per
// delivery.
func (sub *Subscription) compact() {
	for sub.head < len(sub.pending) && (sub.pending[sub.head] == nil || sub.pending[sub.head].gone) {
		sub.pending[sub.head] = nil
		sub.head++
	}
	if sub.head == len(sub.pending) {
		sub.pending, sub.head = sub.pending[:0], 0
		if cap(sub.pending) > 1024 {
			sub.pending = nil
		}
		return
	}
	if sub.head >= 64 && sub.head*2 >= len(sub.pending) {
		n := copy(sub.pending, sub.pending[sub.head:])
		clear(sub.pending[n:])
		sub.pending, sub.head = sub.pending[:n], 0
	}
}

// forget removes every unacknowledged delivery of sub from the index (sub
// was removed). s.mu must be held.
func (s *Session) forget(sub *Subscription) {
	for _, p := range sub.pending[sub.head:] {
		if p != nil && !p.gone {
			p.gone = true
			s.acks.remove(p)
		}
	}
	sub.pending, sub.head = nil, 0
}

// lookup finds the delivery an ACK or NACK frame refers to, skipping those
// skip says are taken (nil: none). s.mu must be held.
func (s *Session) lookup(f *frame.Frame, skip func(*pendingAck) bool) (*pendingAck, string, error) {
	id, subID, err := s.ackKey(f)
	if err != nil {
		return nil, "", err
	}
	p := s.acks.find(id, subID, skip)
	if p == nil {
		return nil, id, violation(f.Command, "unknown ack id", "no unacknowledged message "+id)
	}
	return p, id, nil
}

// resolve finds the unacknowledged delivery f refers to and, if take,
// removes what it covers and returns the Ack. Reader goroutine only.
func (s *Session) resolve(f *frame.Frame, take bool) (*Ack, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, _, err := s.lookup(f, nil)
	if err != nil || !take {
		return nil, err
	}
	// f's header strings may be views (SetViews in newSession): the Ack,
	// which the handler may keep, holds a copy, and its ID is the copy's.
	a := newAck(&f.Header)
	a.Subscription = p.sub
	a.ID = a.Header.Get(s.ackIDHeader()) // the id that ackKey found
	a.MessageIDs = s.take(p, &a.one)
	return a, nil
}

// simulate checks that every ACK and NACK of a transaction resolves when
// they are applied in order, without changing anything: a cumulative ACK
// takes the earlier deliveries of its subscription, so that a later ACK of
// one of them would fail half-way through the COMMIT. Reader goroutine
// only.
func (s *Session) simulate(t *transaction) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var taken map[*pendingAck]bool
	var upTo map[*Subscription]uint64 // client mode: every seq <= it is taken
	skip := func(p *pendingAck) bool {
		if taken[p] {
			return true
		}
		m, ok := upTo[p.sub]
		return ok && p.seq <= m
	}
	for _, op := range t.ops {
		if op.msg != nil {
			continue
		}
		f := &frame.Frame{Command: op.cmd, Header: op.header}
		p, id, err := s.lookup(f, skip)
		if err != nil {
			if s.acks.find(id, "", nil) != nil {
				return violation(op.cmd, "unknown ack id", "message "+id+" is covered by an earlier acknowledgement of the transaction")
			}
			return err
		}
		if p.sub.Ack == AckClient {
			if upTo == nil {
				upTo = make(map[*Subscription]uint64)
			}
			upTo[p.sub] = p.seq
		} else {
			if taken == nil {
				taken = make(map[*pendingAck]bool)
			}
			taken[p] = true
		}
	}
	return nil
}
