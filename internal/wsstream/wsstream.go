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

	"github.com/coder/websocket"
)

// Reader is the stream of a WebSocket's incoming messages, of either type.
// Read is for one goroutine; Binary may be called from any.
type Reader struct {
	c      *websocket.Conn
	ctx    context.Context // ends blocked reads
	r      io.Reader       // the message being read; owned by Read
	binary atomic.Bool     // the last message started was binary
}

// NewReader returns a Reader of c's messages; ctx, when it ends, ends a
// blocked Read.
func NewReader(ctx context.Context, c *websocket.Conn) *Reader {
	return &Reader{c: c, ctx: ctx}
}

// Read reads the stream, going on from one message to the next. A close
// with status 1000 (normal) or 1001 (going away) is io.EOF.
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
			s.r = r
		}
		n, err := s.r.Read(p)
		if errors.Is(err, io.EOF) {
			s.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// Binary reports whether the last message the peer started was binary.
func (s *Reader) Binary() bool { return s.binary.Load() }
