// Package wsstream reads a WebSocket's messages as one byte stream, the
// way STOMP over WebSocket is read on both sides: a message may hold one
// frame, part of one, or several, so message boundaries mean nothing.
// The client (package stomp) and the server engine both use it.
package wsstream

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"unicode/utf8"

	"github.com/coder/websocket"
)

// ErrInvalidUTF8 is returned by Read when a text message is not valid
// UTF-8; the Reader has then failed the connection with close status 1007
// (invalid frame payload data), as RFC 6455 requires.
var ErrInvalidUTF8 = errors.New("wsstream: text message is not valid UTF-8")

// Reader is the stream of a WebSocket's incoming messages, of either type.
// Read is for one goroutine; Binary may be called from any.
type Reader struct {
	c      *websocket.Conn
	ctx    context.Context // ends blocked reads
	r      io.Reader       // the message being read; owned by Read
	text   bool            // the message being read is text: check its UTF-8
	check  utf8Check       // owned by Read
	binary atomic.Bool     // the last message started was binary
	lax    bool            // text messages are not checked (AcceptInvalidUTF8)
}

// AcceptInvalidUTF8 makes Read take text messages that are not valid
// UTF-8 as they are, against RFC 6455, for a client of a server that sends
// binary bodies in text messages: RabbitMQ's Web-STOMP does by default
// (web_stomp.ws_frame = text). Call it before the first Read.
func (s *Reader) AcceptInvalidUTF8() { s.lax = true }

// NewReader returns a Reader of c's messages; ctx, when it ends, ends a
// blocked Read.
func NewReader(ctx context.Context, c *websocket.Conn) *Reader {
	return &Reader{c: c, ctx: ctx}
}

// Read reads the stream, going on from one message to the next. A close
// with status 1000 (normal) or 1001 (going away) is io.EOF. A text message
// that is not valid UTF-8 fails the connection (close status 1007) and
// Read returns ErrInvalidUTF8; its bytes are not returned.
func (s *Reader) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			typ, r, err := s.c.Reader(s.ctx)
			if err != nil {
				switch websocket.CloseStatus(err) {
				case websocket.StatusNormalClosure, websocket.StatusGoingAway:
					return 0, io.EOF
				}
				return 0, err
			}
			s.binary.Store(typ == websocket.MessageBinary)
			s.text = typ == websocket.MessageText && !s.lax
			s.check = utf8Check{}
			s.r = r
		}
		n, err := s.r.Read(p)
		if s.text && !s.check.feed(p[:n]) {
			return 0, s.invalid()
		}
		if errors.Is(err, io.EOF) {
			s.r = nil
			if s.text && s.check.n > 0 { // the message ends inside a character
				return 0, s.invalid()
			}
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// invalid fails the connection for a text message that is not UTF-8.
func (s *Reader) invalid() error {
	s.r = nil
	s.c.Close(websocket.StatusInvalidFramePayloadData, "invalid UTF-8 in text message")
	return ErrInvalidUTF8
}

// Binary reports whether the last message the peer started was binary.
func (s *Reader) Binary() bool { return s.binary.Load() }

// utf8Check validates UTF-8 that arrives in pieces, which may cut a
// character in two.
type utf8Check struct {
	pend [utf8.UTFMax]byte // the start of a character cut by the last piece
	n    int
}

// feed checks the next piece and reports whether everything so far is
// valid UTF-8 (a character it ends inside is checked with the next piece).
func (u *utf8Check) feed(b []byte) bool {
	for u.n > 0 && len(b) > 0 {
		u.pend[u.n] = b[0]
		u.n++
		b = b[1:]
		if utf8.FullRune(u.pend[:u.n]) {
			if r, size := utf8.DecodeRune(u.pend[:u.n]); r == utf8.RuneError && size <= 1 || size != u.n {
				return false
			}
			u.n = 0
		}
	}
	if u.n > 0 || len(b) == 0 {
		return true
	}
	// Keep a character cut at the end for the next piece.
	j := len(b) - 1
	for j > 0 && j > len(b)-utf8.UTFMax && b[j]&0xC0 == 0x80 {
		j--
	}
	if !utf8.FullRune(b[j:]) {
		u.n = copy(u.pend[:], b[j:])
		b = b[:j]
	}
	return utf8.Valid(b)
}
