package stomp

import (
	"errors"
	"fmt"
	"io"

	"github.com/stompout/stomp/frame"
)

// readLoop is the reader goroutine. It never blocks on anything but the
// transport: messages go to subscription buffers without waiting (see
// Subscription for what happens when one is full), receipts resolve their
// futures, and an ERROR frame or a read error ends the connection.
func (c *Conn) readLoop() {
	defer c.exited()
	defer close(c.unrouted)
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			c.shutdown(c.readError(err))
			return
		}
		switch f.Command {
		case "": // heart-beat
		case frame.CmdMessage:
			c.dispatch(f)
		case frame.CmdReceipt:
			c.receipt(f.Header.Get(frame.HdrReceiptID))
		case frame.CmdError:
			se := newServerError(f)
			c.log.Debug("stomp: ERROR frame", "message", se.Message, "receipt-id", se.ReceiptID)
			c.shutdown(se)
			return
		default:
			c.shutdown(&frame.ProtocolError{Err: frame.ErrUnknownCommand, Command: f.Command,
				Detail: "unexpected " + f.Command + " frame from the server"})
			return
		}
	}
}

// transportReader is what the frame.Reader reads through: every read that
// brings bytes tells the heart-beat monitor, so that a large frame
// arriving slowly counts as data, as the specification wants.
type transportReader struct{ c *Conn }

// Read reads from the transport and touches the heart-beat monitor.
func (r transportReader) Read(p []byte) (int, error) {
	n, err := r.c.rw.Read(p)
	if n > 0 && r.c.mon != nil {
		r.c.mon.Touch()
	}
	return n, err
}

func (c *Conn) readError(err error) error {
	select {
	case <-c.closing:
		return c.closedErr()
	default:
	}
	if c.disconnecting.Load() && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isNetClosed(err)) {
		return nil // the server closed after our DISCONNECT: a clean end
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("stomp: connection closed by the server: %w", err)
	}
	return fmt.Errorf("stomp: read: %w", err)
}

// receipt resolves the future of a RECEIPT; one nobody asked for is logged.
func (c *Conn) receipt(id string) {
	c.mu.Lock()
	r := c.receipts[id]
	delete(c.receipts, id)
	c.mu.Unlock()
	if r == nil {
		c.log.Warn("stomp: RECEIPT for no pending receipt", "receipt-id", id)
		return
	}
	r.resolve(nil)
}

// dispatch hands a MESSAGE to its subscription, or to Unrouted. It makes
// the message's own copies of the header entries and of the body (the
// Reader reuses its memory); header strings are shared, not copied.
func (c *Conn) dispatch(f *frame.Frame) {
	subs := *c.subs.Load()
	id, ok := f.Header.Lookup(frame.HdrSubscription)
	var s *Subscription
	if ok {
		s = subs[id]
	} else {
		s = byDestination(subs, f.Header.Get(frame.HdrDestination))
	}
	m := Message{
		Destination:  f.Header.Get(frame.HdrDestination),
		ContentType:  f.Header.Get(frame.HdrContentType),
		ID:           f.Header.Get(frame.HdrMessageID),
		Subscription: id,
		Redelivered:  f.Header.Get("redelivered") == "true",
		Header:       f.Header.Clone(),
		Body:         clone(f.Body),
		conn:         c,
	}
	if c.version == V12 {
		m.ack = f.Header.Get(frame.HdrAck)
	} else {
		m.ack = m.ID
	}
	if s != nil {
		if !ok {
			m.Subscription = s.id
		}
		m.mode, m.sub = s.ack, s
		if s.deliver(m) {
			return
		}
	} else if ok {
		if rs := c.retiredSub(id); rs != nil {
			m.mode, m.sub = rs.ack, rs
		}
	}
	c.toUnrouted(m)
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
		n := c.unroutedDropped.Add(1)
		c.log.Warn("stomp: unrouted message dropped: Unrouted channel full",
			"subscription", m.Subscription, "destination", m.Destination, "message-id", m.ID, "dropped", n)
	}
}
