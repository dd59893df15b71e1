package server

import (
	"context"
	"net"
	"net/http"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stompout/stomp/internal/wsstream"
)

// WebSocketSubprotocols are the subprotocols the WebSocket handler
// negotiates, preferred first. A client that asks for none is accepted too;
// the STOMP version is negotiated by CONNECT in any case.
var WebSocketSubprotocols = []string{"v12.stomp", "v11.stomp", "v10.stomp"}

// WithOriginPatterns lets the WebSocket handler accept cross-origin
// requests from these host patterns (coder/websocket's OriginPatterns; by
// default only same-origin requests are accepted).
func WithOriginPatterns(patterns ...string) Option {
	return func(c *config) { c.origins = append(c.origins, patterns...) }
}

// WebSocketHandler returns an http.Handler that upgrades requests to
// WebSocket and serves a STOMP session on each, for mounting in an existing
// HTTP server. Client messages may be text or binary and may hold one frame,
// part of one or several (the session reads them as one stream); the
// session sends one frame (or heart-beat) per message, as text when it is
// valid UTF-8 and the client has not been sending binary, else as binary.
// The handler returns when the session ends; Shutdown and Close cover its
// sessions like any other.
func (srv *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			Subprotocols:   WebSocketSubprotocols,
			OriginPatterns: srv.cfg.origins,
		})
		if err != nil {
			srv.cfg.logger.Debug("stomp websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
			return
		}
		c.SetReadLimit(-1) // the frame Reader enforces the limits
		ctx, cancel := context.WithCancel(context.Background())
		wc := &wsConn{Reader: wsstream.NewReader(ctx, c), c: c, ctx: ctx, cancel: cancel, remote: remoteAddr(r.RemoteAddr)}
		srv.ServeConn(context.Background(), wc)
	})
}

// wsConn adapts a WebSocket to the session: reads see the messages as one
// byte stream; writes are collected and sent as one message by EndMessage.
// Read is called by the reader goroutine only, Write and EndMessage by the
// writer goroutine only.
type wsConn struct {
	*wsstream.Reader // the client's messages as one stream; reader goroutine
	c                *websocket.Conn
	ctx              context.Context // cancelled by Close, ending blocked reads and writes
	cancel           context.CancelFunc
	remote           net.Addr

	buf []byte // the message being written; writer goroutine
}

// Write adds p to the message EndMessage will send.
func (w *wsConn) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// EndMessage sends what was written since the last call as one message.
func (w *wsConn) EndMessage() error {
	if len(w.buf) == 0 {
		return nil
	}
	typ := websocket.MessageText
	if w.Binary() || !utf8.Valid(w.buf) {
		typ = websocket.MessageBinary
	}
	err := w.c.Write(w.ctx, typ, w.buf)
	if cap(w.buf) > 64<<10 {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return err
}

// Close performs the WebSocket close handshake (normal closure), bounded
// by coder/websocket's own timeouts.
func (w *wsConn) Close() error {
	err := w.c.Close(websocket.StatusNormalClosure, "")
	w.cancel()
	return err
}

// CloseNow closes the WebSocket without a close handshake.
func (w *wsConn) CloseNow() error {
	err := w.c.CloseNow()
	w.cancel()
	return err
}

// RemoteAddr returns the client's address as the HTTP request had it.
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }

func remoteAddr(s string) net.Addr {
	if ap, err := net.ResolveTCPAddr("tcp", s); err == nil {
		return ap
	}
	return nil
}
