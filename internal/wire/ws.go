package wire

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stompout/stomp/internal/wsstream"
)

// WS is a STOMP transport over a WebSocket, for both halves: reads see
// the peer's messages as one byte stream (a message may hold one frame,
// part of one, or several); writes are collected and sent as one message
// by EndMessage, which the Writer calls after every frame, so each frame
// is one message: text when it is valid UTF-8 and the peer has not been
// sending binary, else binary. Read is for the reader goroutine; Write,
// EndMessage and SetWriteDeadline for the writer goroutine; Close and
// CloseNow for anyone.
type WS struct {
	*wsstream.Reader
	c      *websocket.Conn
	ctx    context.Context // ended by Close and CloseNow: blocked reads and writes return
	cancel context.CancelFunc
	remote net.Addr

	buf []byte // the message being written; writer goroutine

	mu       sync.Mutex
	deadline time.Time // for the next EndMessage
}

// NewWS wraps c; remote is the peer's address, or nil.
func NewWS(c *websocket.Conn, remote net.Addr) *WS {
	ctx, cancel := context.WithCancel(context.Background())
	return &WS{Reader: wsstream.NewReader(ctx, c), c: c, ctx: ctx, cancel: cancel, remote: remote}
}

// Write adds p to the message EndMessage sends.
func (w *WS) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// EndMessage sends what was written since the last call as one message,
// under the write deadline if one is set; a write past it fails and
// closes the WebSocket.
func (w *WS) EndMessage() error {
	if len(w.buf) == 0 {
		return nil
	}
	typ := websocket.MessageText
	if w.Binary() || !utf8.Valid(w.buf) {
		typ = websocket.MessageBinary
	}
	ctx := w.ctx
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	if !d.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	err := w.c.Write(ctx, typ, w.buf)
	if cap(w.buf) > 64<<10 {
		w.buf = nil // do not keep a large body's buffer
	} else {
		w.buf = w.buf[:0]
	}
	return err
}

// SetWriteDeadline bounds the following EndMessage calls.
func (w *WS) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	w.deadline = t
	w.mu.Unlock()
	return nil
}

// Close performs the WebSocket close handshake (normal closure), bounded
// by coder/websocket's own timeouts.
func (w *WS) Close() error {
	err := w.c.Close(websocket.StatusNormalClosure, "")
	w.cancel()
	return ignoreClosed(err)
}

// CloseNow closes the WebSocket without a close handshake.
func (w *WS) CloseNow() error {
	err := w.c.CloseNow()
	w.cancel()
	return ignoreClosed(err)
}

// RemoteAddr returns the peer's address as given to NewWS.
func (w *WS) RemoteAddr() net.Addr { return w.remote }

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
