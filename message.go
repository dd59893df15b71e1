package stomp

import (
	"context"

	"github.com/stompout/stomp/frame"
)

// Message is a MESSAGE frame received on a subscription (or on
// Conn.Unrouted). It is a value: copying it is cheap and shares Header and
// Body. Body and Header belong to the receiver; the library keeps no
// reference to them. Receiving one costs one allocation: a block for the
// header entries, the header text and a body of up to 4 KiB (so a header
// string kept alone, say the ID, keeps such a body alive with it; a larger
// body has its own).
type Message struct {
	Destination  string       // the destination header
	ContentType  string       // the content-type header, "" if absent
	ID           string       // the message-id header
	Subscription string       // the subscription header (the Subscription's id)
	Redelivered  bool         // the redelivered header is "true" (RabbitMQ sends it)
	Header       frame.Header // every header, in wire order, repeats included
	Body         []byte       // the body

	ack  string        // what ACK/NACK name the message by: the ack header in 1.2, message-id before
	mode AckMode       // the subscription's ack mode; "" when unknown (unrouted)
	sub  *Subscription // the subscription it came for, live or ended; nil if never made here
	conn *Conn
	sess *session // the session that delivered it: its ack ids mean nothing to another
	seq  uint64   // its place in the subscription's ack tracker (client ack modes)
	// acker settles a message made by NewTestMessage instead of a Conn.
	acker Acker
}

// Ack acknowledges the message, with the headers the negotiated version
// wants: message-id in 1.0; message-id and subscription in 1.1; id, the
// MESSAGE's ack header, in 1.2. Ack and Nack are safe to call from any
// number of goroutines, in any order:
//
//   - In AckClient mode, where an ACK frame covers every earlier message of
//     the subscription, the client keeps the delivery order and sends one
//     cumulative ACK only for the prefix of messages that are all settled:
//     an Ack of a message while an earlier one is still unsettled records it
//     and returns nil at once, sending nothing; the ACK that covers it goes
//     out with the settlement that completes the prefix (and a receipt asked
//     for resolves with that frame's). No frame ever covers a message still
//     in work.
//   - A second Ack or Nack of a message returns ErrAlreadyAcked and sends
//     nothing.
//
// It returns ErrAutoAck for a message of an AckAuto subscription,
// ErrNotAckable for one without the needed header, ErrSubscriptionEnded,
// sending nothing, once the message's subscription was ended by
// Unsubscribe, an overflow or a cancelled Subscribe (the broker redelivers
// the message), and ErrStaleMessage, sending nothing, for a message
// delivered on a transport that has since been lost (the broker has taken
// it back and redelivers it). It blocks until the frame is in the write
// buffer, as Send does, or ctx ends (see Conn.Send for what is sent then; in AckClient mode the
// settlement is then undone if its frame was not taken); WithReceipt asks
// the server to confirm. A message made by NewTestMessage calls its Acker.
func (m Message) Ack(ctx context.Context, opts ...CallOption) error {
	return m.conn.ackFrame(ctx, frame.CmdAck, nil, m, opts)
}

// AckReceipt is Ack asking the server for a RECEIPT of the ACK, and returns
// its future (never nil; see SendReceipt). In AckClient mode it resolves
// once the cumulative ACK that covers the message is confirmed.
func (m Message) AckReceipt(ctx context.Context, opts ...CallOption) (*Receipt, error) {
	var r *Receipt
	err := m.Ack(ctx, append(opts, WithReceipt(&r))...)
	return r, err
}

// Nack tells the server the message was not consumed (STOMP 1.1 and 1.2;
// on 1.0 it returns ErrNackUnsupported). RabbitMQ redelivers the message.
// Otherwise it behaves as Ack.
func (m Message) Nack(ctx context.Context, opts ...CallOption) error {
	return m.conn.ackFrame(ctx, frame.CmdNack, nil, m, opts)
}

func (c *Conn) ackFrame(ctx context.Context, cmd string, tx *Tx, m Message, opts []CallOption) error {
	if m.acker != nil {
		return testSettle(ctx, cmd, m, opts)
	}
	if m.mode == AckAuto {
		return settleOpts(opts, ErrAutoAck)
	}
	if m.sub != nil && m.sub.endedHere() {
		return settleOpts(opts, ErrSubscriptionEnded)
	}
	if c == nil || m.ack == "" {
		return settleOpts(opts, ErrNotAckable)
	}
	if m.sess != nil && m.sess != c.current() {
		return settleOpts(opts, ErrStaleMessage)
	}
	v := c.Version()
	if m.sess != nil {
		v = m.sess.version
	}
	if cmd == frame.CmdNack && v == V10 {
		return settleOpts(opts, ErrNackUnsupported)
	}
	var cc callConfig
	if err := cc.apply(opts); err != nil {
		return cc.settle(err)
	}
	if m.sub != nil && m.sub.acks != nil && m.sess != nil {
		return c.settle(ctx, m.sub.acks, cmd, tx, m, &cc)
	}
	s := m.sess
	if s == nil {
		s = c.lastSession()
	}
	req := c.ackRequest(cmd, s, m.ack, m.Subscription, tx, &cc)
	req.bound = m.sess
	return c.do(ctx, req, &cc)
}

// Send sends a SEND frame with body to dest and returns once the frame is
// in the connection's write buffer, before it reaches the transport: the
// writer writes it at once, together with every frame sent meanwhile, so
// that a producer sending one frame after another pays neither a hand-off
// to another goroutine nor a write to the transport per frame. Returning
// proves nothing about the broker: if the transport fails before the
// write, the frame is lost with it; a receipt (SendReceipt, WithReceipt)
// is the only proof of delivery, and it resolves with ErrConnectionLost
// if the transport is lost first. Options: WithContentType,
// WithContentLength (on by default), WithHeader, WithReceipt. body is not
// retained after Send returns.
//
// Send blocks while 64 KiB of frames wait for the writer (the transport
// is slower than the producers), while the writer's queue is full
// (WithOutageQueue), during an outage until the next transport
// (WithOutageWait), and, for a frame the writer takes from its queue (one
// with a receipt or in a transaction, or a body over 16 KiB), until the
// writer has taken it. If ctx ends first, Send returns ctx.Err(): nothing
// is sent if the frame was not buffered yet, otherwise it still goes out
// (a receipt asked for then stays pending). Only a body of 32 KiB or
// more, which the writer writes straight from the caller's slice, keeps
// Send waiting after ctx ends until it is written (bounded by
// WithWriteTimeout).
func (c *Conn) Send(ctx context.Context, dest string, body []byte, opts ...SendOption) error {
	return c.send(ctx, nil, dest, body, opts)
}

// SendReceipt is Send asking the server for a RECEIPT, and returns the
// future of that RECEIPT: the proof that the broker has the message once
// r.Wait returns nil (an error matching ErrConnectionLost means the outcome
// is unknown). The Receipt is never nil: if the frame could not be sent it
// is already resolved with the error SendReceipt returns. It allocates the
// Receipt.
func (c *Conn) SendReceipt(ctx context.Context, dest string, body []byte, opts ...SendOption) (*Receipt, error) {
	var r *Receipt
	err := c.Send(ctx, dest, body, append(opts, WithReceipt(&r))...)
	return r, err
}

func (c *Conn) send(ctx context.Context, tx *Tx, dest string, body []byte, opts []SendOption) error {
	req := c.newRequest(frame.CmdSend)
	cc := &req.cc
	if err := cc.applySend(opts); err != nil {
		cc.settle(err)
		freeRequest(req)
		return err
	}
	h := &req.f.Header
	h.Add(frame.HdrDestination, dest)
	if cc.contentType != "" {
		h.Add(frame.HdrContentType, cc.contentType)
	}
	if tx != nil {
		h.Add(frame.HdrTransaction, tx.id)
		req.tx = tx
	}
	addHeaders(h, cc.headers)
	req.f.Body = body
	req.mode = frame.ContentLengthAlways
	if cc.contentLength < 0 {
		req.mode = frame.ContentLengthNever
	}
	return c.do(ctx, req, cc)
}
