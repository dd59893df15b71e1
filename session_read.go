package stomp

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/stompout/stomp/frame"
)

// readLoop is the reader goroutine of a session. It hands messages to
// subscriptions without waiting while they fit in the receive budget
// (WithReceiveBuffer), and waits for the application past it (the
// transport then pushes back on the server); receipts resolve their
// futures; an ERROR frame or a read error ends the session.
func (s *session) readLoop() error {
	c := s.c
	// A MESSAGE becomes the user's: the Reader hands its header entries and
	// body over instead of dispatch copying them out of its buffers.
	s.r.SetOwned(frame.CmdMessage)
	co := coalescer{d: c.cfg.readCoalesce, wrote: s.wrote} // WithReadCoalesce
	for read := false; ; read = true {
		if co.d > 0 && read && s.r.Buffered() == 0 {
			co.wait(s)
		}
		f, err := s.r.ReadFrame()
		if err != nil {
			err = s.readError(err)
			s.fail(err)
			return err
		}
		switch f.Command {
		case "": // heart-beat
		case frame.CmdMessage:
			c.dispatch(s, f)
			if c.recv.full() && !s.waitRoom() {
				return nil // the session ended while waiting
			}
		case frame.CmdReceipt:
			s.receipt(f.Header.Get(frame.HdrReceiptID))
		case frame.CmdError:
			se := newServerError(f)
			if c.ignorableError(se) {
				n := c.ignoredErrors.Add(1)
				c.log.Warn("stomp: ERROR about a subscription the client had ended; ignored",
					"message", se.Message, "body", string(truncate(se.Body, 200)), "ignored", n)
				continue
			}
			c.log.Debug("stomp: ERROR frame", "message", se.Message, "receipt-id", se.ReceiptID)
			s.fail(se)
			return se
		default:
			err := &frame.ProtocolError{Err: frame.ErrUnknownCommand, Command: f.Command,
				Detail: "unexpected " + f.Command + " frame from the server"}
			s.fail(err)
			return err
		}
	}
}

// coalescer is the reader's wait of WithReadCoalesce.
type coalescer struct {
	d     time.Duration
	t     *time.Timer     // made at the first wait
	wrote <-chan struct{} // signalled by every write of the session
	seen  uint64          // the session's writes when last looked at
}

// wait waits d before the reader reads the transport again, unless the
// session has written since the last wait, or until it writes or ends.
// A session that writes (ACKs, SENDs with receipts) expects the server's
// answer: holding it back would slow every flow bounded by a window (a
// prefetch, receipts awaited) to a window per d.
func (co *coalescer) wait(s *session) {
	n := s.w.Writes()
	if n != co.seen {
		co.seen = n
		return
	}
	select {
	case <-co.wrote: // for a write counted already
	default:
	}
	if n2 := s.w.Writes(); n2 != n {
		co.seen = n2
		return
	}
	if co.t == nil {
		co.t = time.NewTimer(co.d)
	} else {
		co.t.Reset(co.d)
	}
	select {
	case <-co.t.C:
		return
	case <-co.wrote:
	case <-s.ctx.Done():
	}
	co.t.Stop()
}

// waitRoom waits until the messages waiting for the application are back
// under the receive budget. The server's bytes wait unread in the
// transport meanwhile, and its silence is ours: the heart-beat monitor
// does not count it (wire.Liveness counts silence only inside a read). It
// reports false if the session ended first.
func (s *session) waitRoom() bool {
	return s.c.recv.wait(s.ctx.Done())
}

func (s *session) readError(err error) error {
	if s.ctx.Err() != nil {
		return s.endErr() // fail has run: its cause is the story
	}
	if s.disconnectOut.Load() && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isNetClosed(err)) {
		return nil // the server closed after our DISCONNECT: a clean end
	}
	if errors.Is(err, io.EOF) {
		return lost(fmt.Errorf("stomp: connection closed by the server: %w", err))
	}
	return lost(fmt.Errorf("stomp: read: %w", err))
}

// receipt resolves the future of a RECEIPT; one nobody asked for is logged.
func (s *session) receipt(id string) {
	s.mu.Lock()
	r := s.receipts[id]
	delete(s.receipts, id)
	s.mu.Unlock()
	if r == nil {
		s.c.log.Warn("stomp: RECEIPT for no pending receipt", "receipt-id", id)
		return
	}
	r.resolve(nil)
}

// ignorableError reports an ERROR frame that ends nothing: RabbitMQ
// answers deliveries that were in flight when it received an UNSUBSCRIBE
// with "Subscription not found" (naming the subscription in the body) and
// keeps the connection open. Only an ERROR about a subscription this
// client has ended or is ending (its UNSUBSCRIBE on its way), and no
// other, is let pass.
func (c *Conn) ignorableError(se *ServerError) bool {
	if !strings.Contains(strings.ToLower(se.Message), "subscription not found") {
		return false
	}
	names := func(id string) bool {
		return mentions(string(se.Body), id) || mentions(se.Message, id)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.retired.byID {
		if names(id) {
			return true
		}
	}
	// A subscription whose UNSUBSCRIBE is on its way: it is retired only
	// once the frame is flushed, and the server's answer may be read first.
	for id, sub := range *c.subs.Load() {
		if sub.unsubscribing.Load() && names(id) {
			return true
		}
	}
	return false
}

// mentions reports whether text names id: an id followed by a letter,
// digit, '-', '_' or a '.' with more of an id after it is the start of
// another (sub-1 in "sub-12" or "sub-1.2"), and an ERROR about that other
// subscription is no answer to this one's UNSUBSCRIBE; a full stop ending
// a sentence ("sub-1.") is not. What comes before it is not checked: RabbitMQ names the
// subscription by its tag, the id with "T_" before it ("There is no
// current subscription with tag 'T_sub-1'.").
func mentions(text, id string) bool {
	if id == "" {
		return false
	}
	for i := 0; ; {
		j := strings.Index(text[i:], id)
		if j < 0 {
			return false
		}
		end := i + j + len(id)
		if end < len(text) && text[end] == '.' && (end+1 == len(text) || !idByte(text[end+1])) {
			end++ // a sentence's full stop, not a '.' inside an id
		}
		if end == len(text) || !idByte(text[end]) {
			return true
		}
		i += j + 1
	}
}

// idByte reports whether b may continue a subscription id in mentions.
func idByte(b byte) bool {
	return b == '-' || b == '_' || b == '.' || '0' <= b && b <= '9' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// dispatch hands a MESSAGE to its subscription, or to Unrouted. The
// message takes the frame's header entries and body as they are: the
// Reader hands them over (SetOwned) and will not touch them again.
func (c *Conn) dispatch(s *session, f *frame.Frame) {
	m := Message{
		Header: f.Header,
		Body:   f.Body,
		conn:   c,
		sess:   s,
	}
	id, ok := m.fields(s.version)
	if c.routeReply(&m, id) {
		return
	}
	subs := *c.subs.Load()
	var sub *Subscription
	if ok {
		sub = subs[id]
	} else {
		sub = byDestination(subs, m.Destination)
	}
	if sub != nil {
		if !ok {
			m.Subscription = sub.id
		}
		m.mode, m.sub = sub.ack, sub
		if sub.acks != nil {
			m.seq = sub.acks.delivered(s, m.ack)
		}
		if sub.deliver(&m) {
			return
		}
	} else if ok {
		if rs := c.retiredSub(id); rs != nil {
			m.mode, m.sub = rs.ack, rs
		}
	}
	c.toUnrouted(m)
}

// fields sets the fields m takes from its headers, in one pass over them
// (the first entry of a key wins), and returns the subscription header
// and whether there is one. The ack id is the ack header in 1.2, the
// message-id before.
func (m *Message) fields(v Version) (sub string, hasSub bool) {
	const (
		seenDest = 1 << iota
		seenType
		seenID
		seenSub
		seenRedelivered
		seenAck
	)
	var seen uint8
	var ack string
	first := func(bit uint8) bool {
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	}
	for i := range m.Header.Len() {
		k, val := m.Header.At(i)
		switch k {
		case frame.HdrDestination:
			if first(seenDest) {
				m.Destination = val
			}
		case frame.HdrContentType:
			if first(seenType) {
				m.ContentType = val
			}
		case frame.HdrMessageID:
			if first(seenID) {
				m.ID = val
			}
		case frame.HdrSubscription:
			if first(seenSub) {
				sub = val
			}
		case "redelivered":
			if first(seenRedelivered) {
				m.Redelivered = val == "true"
			}
		case frame.HdrAck:
			if first(seenAck) {
				ack = val
			}
		}
	}
	m.Subscription = sub
	if v == V12 {
		m.ack = ack
	} else {
		m.ack = m.ID
	}
	return sub, seen&seenSub != 0
}

// byDestination finds the subscription of a MESSAGE without a subscription
// header (some 1.0 servers), if exactly one live subscription has its
// destination.
func byDestination(subs map[string]*Subscription, dest string) *Subscription {
	var found *Subscription
	for _, s := range subs {
		if s.dest == dest {
			if found != nil {
				return nil
			}
			found = s
		}
	}
	return found
}

func (c *Conn) toUnrouted(m Message) {
	select {
	case c.unrouted <- m:
	default:
		if m.sub != nil {
			m.sub.unroutedDropped.Add(1)
		}
		n := c.unroutedDropped.Add(1)
		c.log.Warn("stomp: unrouted message dropped: Unrouted channel full",
			"subscription", m.Subscription, "destination", m.Destination, "message-id", m.ID, "dropped", n)
	}
}
