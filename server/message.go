package server

import (
	"strconv"

	"github.com/stompout/stomp/frame"
)

// msgBox is a Message from a SEND together with what the engine keeps for
// it, so that they cost one allocation: the send control Defer uses and
// room for the header entries. The sized variants below add the body:
// their byte arrays come after every pointer, so the collector does not
// scan them.
type msgBox struct {
	m    Message
	ctl  sendCtl
	room frame.HeaderRoom
}

type (
	msgBox32 struct {
		msgBox
		body [32]byte
	}
	msgBox64 struct {
		msgBox
		body [64]byte
	}
	msgBox128 struct {
		msgBox
		body [128]byte
	}
	msgBox192 struct {
		msgBox
		body [192]byte
	}
	msgBox256 struct {
		msgBox
		body [256]byte
	}
	msgBox384 struct {
		msgBox
		body [384]byte
	}
	msgBox512 struct {
		msgBox
		body [512]byte
	}
	msgBox640 struct {
		msgBox
		body [640]byte
	}
	msgBox768 struct {
		msgBox
		body [768]byte
	}
	msgBox896 struct {
		msgBox
		body [896]byte
	}
	msgBox1024 struct {
		msgBox
		body [1024]byte
	}
)

// newMessage returns a Message holding copies of f's headers and body
// (which the Reader reuses): one allocation for a body up to 1 KiB and at
// most four header entries (receipt and transaction included), two
// beyond. The body arrays step by at most 128 bytes (64 up to 256), so
// that the room a body leaves unused stays small next to what the byte
// budgets count. Its ctl is set, for callSend.
func newMessage(f *frame.Frame, dest string) *Message {
	var b *msgBox
	var body []byte
	switch n := len(f.Body); {
	case n == 0:
		b = new(msgBox)
	case n <= 32:
		x := new(msgBox32)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 64:
		x := new(msgBox64)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 128:
		x := new(msgBox128)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 192:
		x := new(msgBox192)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 256:
		x := new(msgBox256)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 384:
		x := new(msgBox384)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 512:
		x := new(msgBox512)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 640:
		x := new(msgBox640)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 768:
		x := new(msgBox768)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 896:
		x := new(msgBox896)
		b, body = &x.msgBox, x.body[:n:n]
	case n <= 1024:
		x := new(msgBox1024)
		b, body = &x.msgBox, x.body[:n:n]
	default:
		b = new(msgBox)
		body = make([]byte, n)
	}
	copy(body, f.Body)
	m := &b.m
	m.Destination = dest
	m.Header = f.Header.CloneInto(&b.room)
	if f.Body != nil {
		m.Body = body
	}
	m.ctl = &b.ctl
	return m
}

// messageID returns the message-id of a delivery of m: m.ID, else the
// one m.Seq stands for, else the engine's own for sequence number seq.
func (s *Session) messageID(m *Message, seq uint64) string {
	if m.ID != "" {
		return m.ID
	}
	return string(s.appendMessageID(nil, m, seq))
}

// deliveryIDs returns the message-id (messageID's) and the 1.2 ack id
// (s.ackSeq; "" before 1.2) of a delivery of m in a client ack mode, made
// in one string when both are new. s.mu must be held.
func (s *Session) deliveryIDs(m *Message, seq uint64) (msgID, ackID string) {
	if s.version != frame.V12 {
		return s.messageID(m, seq), ""
	}
	var buf [48]byte
	b := buf[:0]
	if m.ID == "" {
		b = s.appendMessageID(b, m, seq)
	}
	k := len(b)
	ids := string(strconv.AppendUint(b, s.ackSeq, 10))
	if msgID = m.ID; msgID == "" {
		msgID = ids[:k]
	}
	return msgID, ids[k:]
}

// appendMessageID appends the message-id of a delivery of m without an ID
// (see messageID) to b.
func (s *Session) appendMessageID(b []byte, m *Message, seq uint64) []byte {
	if m.Seq != 0 {
		b = append(b, "m-"...)
		return strconv.AppendUint(b, m.Seq, 10)
	}
	b = append(b, s.id...)
	b = append(b, '-')
	return strconv.AppendUint(b, seq, 10)
}
