package stomp

import (
	"context"
	"sync"

	"github.com/stompout/stomp/frame"
)

// Acker settles the messages made by NewTestMessage: their Ack and Nack
// (and a Tx's) call it instead of writing a frame, so that a handler can be
// unit-tested without a broker. AckRecorder is a ready-made one.
type Acker interface {
	Ack(ctx context.Context, m Message) error
	Nack(ctx context.Context, m Message) error
}

// NewTestMessage returns m with a as what settles it: m.Ack(ctx) calls
// a.Ack(ctx, m), m.Nack(ctx) calls a.Nack(ctx, m). Fill in m's exported
// fields (Destination, Body, Header, ...) as the handler under test needs;
// a nil a makes Ack and Nack return ErrNotAckable. It allocates nothing
// beyond m.
func NewTestMessage(m Message, a Acker) Message {
	m.ack, m.mode, m.sub, m.conn, m.sess, m.seq = "", "", nil, nil, nil, 0
	m.acker = a
	if a == nil {
		m.acker = nilAcker{}
	}
	return m
}

// testSettle is Ack and Nack of a message made by NewTestMessage. A
// receipt asked for resolves with the Acker's result.
func testSettle(ctx context.Context, cmd string, m Message, opts []CallOption) error {
	var cc callConfig
	if err := cc.apply(opts); err != nil {
		return cc.settle(err)
	}
	var err error
	if cmd == frame.CmdNack {
		err = m.acker.Nack(ctx, m)
	} else {
		err = m.acker.Ack(ctx, m)
	}
	if cc.receipt != nil {
		r := newReceipt("test")
		r.resolve(err)
		*cc.receipt = r
	}
	return err
}

type nilAcker struct{}

func (nilAcker) Ack(context.Context, Message) error  { return ErrNotAckable }
func (nilAcker) Nack(context.Context, Message) error { return ErrNotAckable }

// AckRecorder is an Acker that records what was acknowledged and nacked,
// for tests. A message is known by its ID: a second Ack or Nack of the same
// ID returns ErrAlreadyAcked, as on a Conn. The zero value is ready to
// use; it is safe for concurrent use.
type AckRecorder struct {
	mu      sync.Mutex
	settled map[string]bool
	acked   []Message
	nacked  []Message
}

// Ack records m as acknowledged.
func (r *AckRecorder) Ack(_ context.Context, m Message) error { return r.record(m, false) }

// Nack records m as nacked.
func (r *AckRecorder) Nack(_ context.Context, m Message) error { return r.record(m, true) }

func (r *AckRecorder) record(m Message, nack bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.settled[m.ID] {
		return ErrAlreadyAcked
	}
	if r.settled == nil {
		r.settled = make(map[string]bool)
	}
	r.settled[m.ID] = true
	if nack {
		r.nacked = append(r.nacked, m)
	} else {
		r.acked = append(r.acked, m)
	}
	return nil
}

// Acked returns the messages acknowledged so far, in call order.
func (r *AckRecorder) Acked() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.acked...)
}

// Nacked returns the messages nacked so far, in call order.
func (r *AckRecorder) Nacked() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.nacked...)
}
