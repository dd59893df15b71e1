package server

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"
	"github.com/stompout/stomp/internal/wire"
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
		srv.ServeConn(context.Background(), wire.NewWS(c, remoteAddr(r.RemoteAddr)))
	})
}

func remoteAddr(s string) net.Addr {
	if ap, err := net.ResolveTCPAddr("tcp", s); err == nil {
		return ap
	}
	return nil
}
