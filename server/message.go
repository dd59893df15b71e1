package server

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/stompout/stomp/frame"
)

// msgBox is a Message from a SEND together with what the engine keeps for
// it, so that they cost one allocation: the send control Defer uses
// (which also counts the box's references, see Message.Release) and room
// for the header entries. A sizedBox adds room for the body and the header
// text: its byte array comes after every pointer, so the collector does
// not scan it.
type msgBox struct {
	m    Message
	ctl  sendCtl
	room frame.HeaderRoom
}

// sizedBox is a msgBox with room for up to len(A) bytes of body and
// header text.
type sizedBox[A bodyRoom] struct {
	msgBox
	body A
}

// bodyRoom lists the byte rooms of the box classes.
type bodyRoom interface {
	[32]byte | [64]byte | [128]byte | [192]byte | [256]byte | [384]byte |
		[512]byte | [640]byte | [768]byte | [896]byte | [1024]byte |
		[1152]byte | [1280]byte | [1536]byte | [1792]byte | [2048]byte |
		[2560]byte | [3072]byte | [3584]byte | [4096]byte
}

// boxClass is one size of msgBox, with the released boxes of that size.
type boxClass struct {
	max  int // the most body and header text it holds
	pool sync.Pool
	// get returns a box of this class, kept or new, and its body room
	// cut to n bytes; put keeps b, zeroed but for its body room.
	get func(c *boxClass, n int) (*msgBox, []byte)
	put func(c *boxClass, b *msgBox)
}

// boxClasses are the classes by the size of body and header text: class
// 0 holds none (above 4 KiB they get an array of their own), the others
// step by at most 128 bytes up to 1 KiB (64 up to 256) and by at most a
// quarter of their size above, so that the room left unused stays small
// next to what the byte budgets count. sendCtl.class is an index here
// plus one (0: the Message is in no box).
var boxClasses = [...]boxClass{
	{max: 0, get: getPlain, put: putPlain},
	sized[[32]byte](), sized[[64]byte](), sized[[128]byte](), sized[[192]byte](),
	sized[[256]byte](), sized[[384]byte](), sized[[512]byte](), sized[[640]byte](),
	sized[[768]byte](), sized[[896]byte](), sized[[1024]byte](),
	sized[[1152]byte](), sized[[1280]byte](), sized[[1536]byte](), sized[[1792]byte](),
	sized[[2048]byte](), sized[[2560]byte](), sized[[3072]byte](), sized[[3584]byte](),
	sized[[4096]byte](),
}

// maxBoxed is the most body and header text a box holds.
const maxBoxed = 4096

func sized[A bodyRoom]() boxClass {
	var a A
	return boxClass{
		max: len(a),
		get: func(c *boxClass, n int) (*msgBox, []byte) {
			x, _ := c.pool.Get().(*sizedBox[A])
			if x == nil {
				x = new(sizedBox[A])
			}
			return &x.msgBox, unsafe.Slice((*byte)(unsafe.Pointer(&x.body)), n)
		},
		put: func(c *boxClass, b *msgBox) {
			// b is the first field of its sizedBox[A] (get made it so).
			x := (*sizedBox[A])(unsafe.Pointer(b))
			x.msgBox = msgBox{}
			c.pool.Put(x)
		},
	}
}

func getPlain(c *boxClass, n int) (*msgBox, []byte) {
	b, _ := c.pool.Get().(*msgBox)
	if b == nil {
		b = new(msgBox)
	}
	if n == 0 {
		return b, nil
	}
	return b, make([]byte, n)
}

func putPlain(c *boxClass, b *msgBox) {
	*b = msgBox{}
	c.pool.Put(b)
}

// newMessage returns a Message holding copies of f's headers and body
// (which the Reader reuses: a SEND's header strings are views, see
// SetViews in newSession), in a box of its own or one released by a
// handler (Message.Release). The box's byte room holds the body and, after
// it, the header text: one allocation for up to 4 KiB of both and at most
// four header entries (receipt and transaction included), two beyond,
// none when a released box is reused and the header fits its room. Its
// ctl is set, for callSend, holding two references: the engine's, which
// callSend gives up, and the handler's.
func newMessage(f *frame.Frame) *Message {
	n, text := len(f.Body), headerText(&f.Header)
	i := 0
	if n+text <= maxBoxed {
		for boxClasses[i].max < n+text {
			i++
		}
	}
	c := &boxClasses[i]
	b, room := c.get(c, n+text)
	copy(room, f.Body)
	m := &b.m
	if f.Body != nil {
		m.Body = room[:n:n]
	}
	// The header entries go into b.room as far as they fit, their text
	// into the byte room after the body.
	m.Header = copyHeader(&f.Header, &b.room, room[n:])
	m.Destination = m.Header.Get(frame.HdrDestination)
	m.ctl = &b.ctl
	b.ctl.class = int8(i + 1)
	b.ctl.refs.Store(2)
	return m
}

// headerText is the number of bytes of h's keys and values.
func headerText(h *frame.Header) int {
	n := 0
	for k, v := range h.All() {
		n += len(k) + len(v)
	}
	return n
}

// copyHeader returns a copy of h that shares nothing with it: its entries
// in room as far as they fit, its keys and values copied into text, which
// must hold headerText(h) bytes. It is how the engine keeps a header whose
// strings are views of the Reader's buffer (SetViews in newSession).
func copyHeader(h *frame.Header, room *frame.HeaderRoom, text []byte) frame.Header {
	c := (&frame.Header{}).CloneInto(room)
	at := 0
	str := func(s string) string {
		if s == "" {
			return ""
		}
		k := copy(text[at:], s)
		at += k
		return unsafe.String(&text[at-k], k)
	}
	for k, v := range h.All() {
		c.Add(str(k), str(v))
	}
	return c
}

// ownHeader is copyHeader into memory of its own.
func ownHeader(h *frame.Header) frame.Header {
	return copyHeader(h, new(frame.HeaderRoom), make([]byte, headerText(h)))
}

// ackText is the header text an ackBox holds: an ACK's id, subscription,
// receipt and transaction headers fit, with ids of up to about 40 bytes.
const ackText = 96

// ackBox is an Ack with room for the entries and the text of its frame's
// header: one allocation for a typical ACK or NACK, whose header strings
// are views the Ack must not keep (SetViews in newSession), and none once
// the handler gives Acks back (Ack.Release).
type ackBox struct {
	a        Ack
	released atomic.Bool
	room     frame.HeaderRoom
	text     [ackText]byte
}

// ackBoxes holds the ackBoxes handlers released.
var ackBoxes = sync.Pool{New: func() any { return new(ackBox) }}

// newAck returns an Ack holding a copy of h.
func newAck(h *frame.Header) *Ack {
	b := ackBoxes.Get().(*ackBox)
	b.released.Store(false)
	b.a.box = b
	text := b.text[:]
	if n := headerText(h); n > len(text) {
		text = make([]byte, n)
	}
	b.a.Header = copyHeader(h, &b.room, text)
	return &b.a
}

// Release tells the engine that the handler is done with a, an Ack the
// engine passed to Handler.Ack or Handler.Nack: the handler keeps no
// reference to a, to its MessageIDs or its Header, nor any string taken
// from its fields (keep a strings.Clone). The engine then reuses a's
// memory for a later ACK or NACK. Calling Release is optional (an Ack
// never released is left to the garbage collector); a second call does
// nothing, but only until the memory is reused. On an Ack the handler
// made itself, it does nothing.
func (a *Ack) Release() {
	if b := a.box; b != nil && a == &b.a && b.released.CompareAndSwap(false, true) {
		b.a = Ack{}
		clear(b.room[:])
		ackBoxes.Put(b)
	}
}

// Release tells the engine that the handler is done with m, a Message the
// engine passed to Handler.Send: the handler keeps no reference to m, to
// its Body or its Header, nor to a copy of the Message that shares them,
// nor any string taken from its Header or its Destination (they are
// bytes of m's memory: keep a strings.Clone; the engine copies an ID the
// handler set from them where it keeps one, for a client ack mode).
// The engine then reuses m's memory for a later SEND once it is done with
// m too: once Send has returned and every Delivery of m has been written
// (its Written called). Calling Release is optional (a Message never
// released is left to the garbage collector) and it saves the collector
// work for a handler that passes many messages through. A second call
// does nothing, but only until the memory is reused: after Release, m is
// no longer the handler's to touch. On a Message the handler made itself,
// it does nothing.
func (m *Message) Release() {
	if c := m.ctl; c != nil && c.class != 0 && m == &c.box().m && c.released.CompareAndSwap(false, true) {
		c.unref()
	}
}

// ref counts one more reference to m's box (a Delivery of m), if m is in
// one.
func (m *Message) ref() {
	if c := m.ctl; c != nil && c.class != 0 {
		c.refs.Add(1)
	}
}

// unref gives up a reference to m's box, if m is in one.
func (m *Message) unref() {
	if c := m.ctl; c != nil && c.class != 0 {
		c.unref()
	}
}

// box returns the msgBox c is in (c.class is not 0).
func (c *sendCtl) box() *msgBox {
	return (*msgBox)(unsafe.Add(unsafe.Pointer(c), -int(unsafe.Offsetof(msgBox{}.ctl))))
}

// unref gives up a reference to c's box (c.class is not 0), and keeps the
// box for reuse when it was the last.
func (c *sendCtl) unref() {
	switch n := c.refs.Add(-1); {
	case n == 0:
		k := &boxClasses[c.class-1]
		k.put(k, c.box())
	case n < 0:
		// Release counts once per Message: only the engine can get here.
		panic("server: a Message box lost more references than it had")
	}
}

// keptID returns m.ID as a string that outlives m (the pending ack of a
// delivery keeps it until the ACK): a copy if m is in a box the engine
// reuses once it is released, since a handler may have set ID from the
// box's bytes (a header value).
func (m *Message) keptID() string {
	if m.ID != "" && m.ctl != nil && m.ctl.class != 0 {
		return strings.Clone(m.ID)
	}
	return m.ID
}

// deliveryIDs returns the message-id (keptID, else the one m.Seq stands
// for, else the engine's own for sequence number seq) and the 1.2 ack id
// (s.ackSeq; "" before 1.2) of a delivery of m in a client ack mode, the
// new ones cut from the session's slab of id text. s.mu must be held.
func (s *Session) deliveryIDs(m *Message, seq uint64) (msgID, ackID string) {
	msgID = m.keptID()
	v12 := s.version == frame.V12
	if msgID != "" && !v12 {
		return msgID, ""
	}
	// The ids are cut from a slab of text (idSlab), as the pendingAcks
	// that hold them are (ackSlab): bytes once written there are never
	// written again, so the strings may view them.
	t := s.idText
	if cap(t)-len(t) < 48 {
		t = make([]byte, 0, idSlab)
	}
	start := len(t)
	if msgID == "" {
		t = s.appendMessageID(t, m, seq)
	}
	k := len(t)
	if v12 {
		t = strconv.AppendUint(t, s.ackSeq, 10)
	}
	s.idText = t
	if msgID == "" {
		msgID = unsafe.String(&t[start], k-start)
	}
	if v12 {
		ackID = unsafe.String(&t[k], len(t)-k)
	}
	return msgID, ackID
}

// idSlab is the size of the slabs deliveryIDs cuts ids from: one
// allocation per few dozen deliveries instead of one per delivery, and a
// slab that a single unacknowledged delivery keeps alive stays small.
const idSlab = 512

// appendMessageID appends the message-id of a delivery of m without an ID
// (see deliveryIDs) to b.
func (s *Session) appendMessageID(b []byte, m *Message, seq uint64) []byte {
	if m.Seq != 0 {
		b = append(b, "m-"...)
		return strconv.AppendUint(b, m.Seq, 10)
	}
	b = append(b, s.id...)
	b = append(b, '-')
	return strconv.AppendUint(b, seq, 10)
}
