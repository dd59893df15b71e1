package stomp

import (
	"context"
	"errors"
	"sync"

	"github.com/stompout/stomp/frame"
)

// ErrAlreadyAcked: Ack or Nack of a message that was already acknowledged
// or nacked (by this call's message value or a copy of it). Nothing is
// sent: a second ACK of a settled message is an ERROR on every broker.
var ErrAlreadyAcked = errors.New("stomp: message already acknowledged or nacked")

// ErrAckOrder: a transactional Ack or Nack (Tx.Ack, Tx.Nack) of a message of
// an AckClient subscription while an earlier message of the subscription is
// still unsettled. A cumulative frame in a transaction would settle the
// earlier ones in it too; settle them first, or use AckClientIndividual.
var ErrAckOrder = errors.New("stomp: transactional ack in client mode of a message after an unsettled one")

// An ackTracker keeps the unsettled messages of one subscription in a
// client ack mode, as delivered on the current session, so that acks from
// any number of goroutines, in any order, become frames the broker
// accepts:
//
//   - AckClient: an ACK is cumulative at the broker, so the client sends
//     one only for the contiguous prefix of messages that are all
//     settled, as TCP acknowledges: a message acked out of order waits for
//     the earlier ones, and no frame ever covers a message still in work.
//     A NACK settles one message (each is sent alone, once every earlier
//     message is settled, so that it covers only itself on brokers where
//     NACK is cumulative, RabbitMQ and the embedded one, as on ActiveMQ
//     where it is not).
//   - AckClientIndividual: frames go out at once; the tracker only refuses
//     a second settlement of the same message.
//
// The order and the prefix are per session: the ack ids of a lost session
// mean nothing to the next (its messages are stale), so the first delivery
// on a new session starts afresh.
type ackTracker struct {
	mode  AckMode
	subID string // the subscription header of 1.1 frames
	// turn is held (capacity 1) by the goroutine that sends the frames of
	// the prefix, so that they are queued in delivery order: a later
	// cumulative ACK queued before an earlier one would cover it, and the
	// earlier one would then be an unknown ack id.
	turn chan struct{}

	mu      sync.Mutex          // guards the fields below; never held while blocking
	sess    *session            // the session the entries were delivered on
	next    uint64              // the seq of the next delivery
	base    uint64              // AckClient: the seq of entries[0]
	entries []ackEntry          // AckClient: unsent messages from base on, in delivery order
	open    map[uint64]struct{} // AckClientIndividual: the unsettled seqs of sess
	watched *session            // the session whose end resolves the receipts of entries
}

// The states of an ackEntry.
const (
	entryOpen uint8 = iota
	entryAck
	entryNack
)

type ackEntry struct {
	ack   string // the ack id
	state uint8
	tx    *Tx        // the transaction it was settled in, or nil
	rcpts []*Receipt // receipts of Acks waiting for the frame that covers this entry
}

func newAckTracker(mode AckMode, subID string) *ackTracker {
	return &ackTracker{mode: mode, subID: subID, turn: make(chan struct{}, 1), open: make(map[uint64]struct{})}
}

// delivered records a message delivered on s with ack id ack and returns
// its seq. Reader goroutine of s.
func (t *ackTracker) delivered(s *session, ack string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sess != s {
		t.resetLocked(s)
	}
	seq := t.next
	t.next++
	if t.mode == AckClient {
		t.entries = append(t.entries, ackEntry{ack: ack})
	} else {
		t.open[seq] = struct{}{}
	}
	return seq
}

// resetLocked forgets the entries of the previous session: the broker
// has taken their messages back. Receipts waiting for them resolve with
// ErrStaleMessage.
func (t *ackTracker) resetLocked(s *session) {
	for i := range t.entries {
		for _, r := range t.entries[i].rcpts {
			r.resolve(ErrStaleMessage)
		}
	}
	clear(t.entries)
	t.entries = t.entries[:0]
	clear(t.open)
	t.sess = s
	t.base = t.next
}

// sessionEnded resolves the receipts that waited for frames s will never
// write: the broker takes the messages back.
func (t *ackTracker) sessionEnded(s *session) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sess != s {
		return // reset has resolved them
	}
	for i := range t.entries {
		for _, r := range t.entries[i].rcpts {
			r.resolve(ErrStaleMessage)
		}
		t.entries[i].rcpts = nil
	}
}

// dropped settles, as acknowledged, a message that OverflowDrop dropped:
// in AckClient mode an open entry would hold back every later ACK.
func (t *ackTracker) dropped(m *Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mode != AckClient || m.sess != t.sess || m.seq < t.base {
		return
	}
	t.entries[m.seq-t.base].state = entryAck
}

// settle acknowledges (cmd ACK) or rejects (NACK) m, in tx if not nil,
// with the options of the call in cc. It returns once the frames m's
// settlement allows are flushed: in AckClient mode, nothing may be sent yet
// (an earlier message is still in work) and it returns nil at once; the
// frame that covers m goes out with the settlement that completes the
// prefix. A receipt asked for resolves when the frame covering m is
// confirmed.
func (c *Conn) settle(ctx context.Context, t *ackTracker, cmd string, tx *Tx, m Message, cc *callConfig) error {
	if t.mode == AckClient {
		return c.settleClient(ctx, t, cmd, tx, m, cc)
	}
	t.mu.Lock()
	if m.sess != t.sess {
		t.mu.Unlock()
		return cc.settle(ErrStaleMessage)
	}
	if _, ok := t.open[m.seq]; !ok {
		t.mu.Unlock()
		return cc.settle(ErrAlreadyAcked)
	}
	delete(t.open, m.seq)
	t.mu.Unlock()
	pending, err := c.doPending(ctx, c.ackRequest(cmd, m.sess, m.ack, m.Subscription, tx, cc), cc)
	if err != nil && !pending {
		t.mu.Lock()
		if m.sess == t.sess {
			t.open[m.seq] = struct{}{} // not sent: it can be settled again
		}
		t.mu.Unlock()
	}
	return err
}

func (c *Conn) settleClient(ctx context.Context, t *ackTracker, cmd string, tx *Tx, m Message, cc *callConfig) error {
	var rcpt *Receipt
	t.mu.Lock()
	// An ended session (its ctx done) may already have run sessionEnded,
	// which resolves the receipts waiting in the entries only once: a
	// receipt added after it would never resolve.
	if m.sess != t.sess || m.sess.ctx.Err() != nil {
		t.mu.Unlock()
		return cc.settle(ErrStaleMessage)
	}
	if m.seq < t.base || t.entries[m.seq-t.base].state != entryOpen {
		t.mu.Unlock()
		return cc.settle(ErrAlreadyAcked)
	}
	i := m.seq - t.base
	if tx != nil {
		for j := range i {
			if t.entries[j].state == entryOpen {
				t.mu.Unlock()
				return cc.settle(ErrAckOrder)
			}
		}
	}
	e := &t.entries[i]
	e.state, e.tx = entryAck, tx
	if cmd == frame.CmdNack {
		e.state = entryNack
	}
	if cc.receipt != nil {
		rcpt = newReceipt(c.rcptIDs.next("rcpt-"))
		*cc.receipt = rcpt
		cc.receipt = nil
		e.rcpts = append(e.rcpts, rcpt)
		if t.watched != t.sess {
			t.watched = t.sess
			s := t.sess
			context.AfterFunc(s.ctx, func() { t.sessionEnded(s) })
		}
	}
	t.mu.Unlock()

	select {
	case t.turn <- struct{}{}:
	case <-ctx.Done():
		t.unsettle(m, rcpt, ctx.Err())
		return ctx.Err()
	}
	defer func() { <-t.turn }()
	for {
		req, n, rcpts := t.nextFrame(c, cc)
		if req == nil {
			return nil
		}
		r := req.rcpt // req is freed by doPending
		pending, err := c.doPending(ctx, req, &callConfig{})
		if err != nil && !pending {
			t.unsettle(m, rcpt, err)
			return err
		}
		t.sent(m.sess, n, r, rcpts)
		if err != nil {
			return err // ctx ended; the frame still goes out
		}
	}
}

// nextFrame returns the request for the next frame of the prefix (an ACK
// covering a run of acknowledged entries, or the NACK of one entry), how
// many entries it covers, and the receipts that wait for it beyond the
// frame's own; nil when the first entry is still open. Called with the
// turn held.
func (t *ackTracker) nextFrame(c *Conn, cc *callConfig) (req *request, n int, rcpts []*Receipt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 || t.entries[0].state == entryOpen {
		return nil, 0, nil
	}
	first := t.entries[0]
	n = 1
	if first.state == entryAck {
		for n < len(t.entries) && t.entries[n].state == entryAck && t.entries[n].tx == first.tx {
			n++
		}
	}
	for _, e := range t.entries[:n] {
		rcpts = append(rcpts, e.rcpts...)
	}
	cmd := frame.CmdAck
	if first.state == entryNack {
		cmd = frame.CmdNack
	}
	req = c.ackRequest(cmd, t.sess, t.entries[n-1].ack, t.subID, first.tx, cc)
	if len(rcpts) > 0 {
		// The frame carries the first receipt; the others follow it.
		req.rcpt = rcpts[0]
		req.f.Header.Add(frame.HdrReceipt, req.rcpt.id)
		rcpts = rcpts[1:]
	}
	return req, n, rcpts
}

// sent removes the n first entries, whose frame is flushed (or buffered),
// and makes the receipts of the run follow the frame's.
func (t *ackTracker) sent(s *session, n int, r *Receipt, rcpts []*Receipt) {
	t.mu.Lock()
	if t.sess == s && len(t.entries) >= n {
		clear(t.entries[:n])
		t.entries = t.entries[n:]
		t.base += uint64(n)
	}
	t.mu.Unlock()
	if len(rcpts) > 0 {
		go func() {
			<-r.Done()
			for _, x := range rcpts {
				x.resolve(r.Err())
			}
		}()
	}
}

// unsettle undoes the settlement of m when the frame covering it could not
// be sent: it can be settled again (the others of the prefix stay settled,
// for the next frame to carry). A receipt of the call resolves with err.
func (t *ackTracker) unsettle(m Message, rcpt *Receipt, err error) {
	t.mu.Lock()
	if m.sess == t.sess && m.seq >= t.base {
		e := &t.entries[m.seq-t.base]
		e.state, e.tx = entryOpen, nil
		if rcpt != nil {
			e.rcpts = deleteReceipt(e.rcpts, rcpt)
		}
	}
	t.mu.Unlock()
	if rcpt != nil {
		rcpt.resolve(err)
	}
}

func deleteReceipt(rs []*Receipt, r *Receipt) []*Receipt {
	for i, x := range rs {
		if x == r {
			return append(rs[:i], rs[i+1:]...)
		}
	}
	return rs
}

// ackRequest builds an ACK or NACK for the message with ack id ack,
// delivered on s, with the headers s's version wants.
func (c *Conn) ackRequest(cmd string, s *session, ack, sub string, tx *Tx, cc *callConfig) *request {
	req := c.newRequest(cmd)
	req.bound = s
	h := &req.f.Header
	switch s.version {
	case V10:
		h.Add(frame.HdrMessageID, ack)
	case V11:
		h.Add(frame.HdrMessageID, ack)
		h.Add(frame.HdrSubscription, sub)
	default:
		h.Add(frame.HdrID, ack)
	}
	if tx != nil {
		h.Add(frame.HdrTransaction, tx.id)
		req.tx = tx
	}
	addHeaders(h, cc.headers)
	return req
}
