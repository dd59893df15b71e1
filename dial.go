package stomp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/wsstream"
)

// WebSocketSubprotocols are the subprotocols Dial offers on ws:// and
// wss://, most recent STOMP version first.
var WebSocketSubprotocols = []string{"v12.stomp", "v11.stomp", "v10.stomp"}

// Dial opens a transport to addr and runs the STOMP handshake over it,
// like Connect. addr is one of
//
//	tcp://host:port        plain TCP (a bare host:port means the same; port 61613 by default)
//	tls://host:port        TLS over TCP, configured by WithTLSConfig (ssl:// is the same; port 61614 by default)
//	ws://host:port/path    WebSocket, offering WebSocketSubprotocols
//	wss://host:port/path   WebSocket over TLS
//
// e.g. "127.0.0.1:61613" or "ws://127.0.0.1:15674/ws" for RabbitMQ.
// Dial blocks until CONNECTED arrives, the server refuses (a
// *ConnectError), or ctx ends; ctx bounds only the dial and the handshake.
func Dial(ctx context.Context, addr string, opts ...Option) (*Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		scheme, rest = "tcp", addr
	}
	var rw io.ReadWriteCloser
	switch strings.ToLower(scheme) {
	case "tcp":
		var d net.Dialer
		rw, err = d.DialContext(ctx, "tcp", hostPort(rest, "61613"))
	case "tls", "ssl":
		hp := hostPort(rest, "61614")
		d := tls.Dialer{Config: tlsConfig(cfg.tlsConfig, hp)}
		rw, err = d.DialContext(ctx, "tcp", hp)
	case "ws", "wss":
		rw, err = dialWebSocket(ctx, addr, cfg)
	default:
		return nil, fmt.Errorf("stomp: dial %q: unknown scheme %q (want tcp, tls, ssl, ws or wss)", addr, scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("stomp: dial %s: %w", addr, err)
	}
	return connect(ctx, rw, cfg)
}

// hostPort drops any path from rest and adds the default port.
func hostPort(rest, port string) string {
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return net.JoinHostPort(strings.Trim(rest, "[]"), port)
	}
	return rest
}

func tlsConfig(cfg *tls.Config, hp string) *tls.Config {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(hp)
		cfg.ServerName = host
	}
	return cfg
}

func dialWebSocket(ctx context.Context, url string, cfg *config) (io.ReadWriteCloser, error) {
	opts := &websocket.DialOptions{Subprotocols: WebSocketSubprotocols}
	if cfg.tlsConfig != nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.tlsConfig.Clone()}}
	}
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	c.SetReadLimit(wsReadLimit(cfg.limits))
	return newWSConn(c), nil
}

// wsReadLimit bounds one WebSocket message by the frame limit, plus room
// for heart-beats; the STOMP reader enforces the exact limits.
func wsReadLimit(l frame.Limits) int64 {
	switch {
	case l.MaxFrameSize < 0:
		return -1
	case l.MaxFrameSize == 0:
		return frame.DefaultMaxFrameSize + 64<<10
	}
	return int64(l.MaxFrameSize) + 64<<10
}

// wsConn is a byte stream over a WebSocket: STOMP frames in text messages
// (binary ones when the bytes are not UTF-8, as bodies may not be), read
// across message boundaries. Read is used by the reader goroutine only,
// Write by the writer goroutine only.
type wsConn struct {
	*wsstream.Reader
	c *websocket.Conn

	mu       sync.Mutex
	deadline time.Time // for the next Write
}

func newWSConn(c *websocket.Conn) *wsConn {
	return &wsConn{Reader: wsstream.NewReader(context.Background(), c), c: c}
}

// Write sends p as one WebSocket message: text when p is valid UTF-8,
// binary otherwise.
func (w *wsConn) Write(p []byte) (int, error) {
	ctx := context.Background()
	w.mu.Lock()
	d := w.deadline
	w.mu.Unlock()
	if !d.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	typ := websocket.MessageText
	if !utf8.Valid(p) {
		typ = websocket.MessageBinary
	}
	if err := w.c.Write(ctx, typ, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// SetWriteDeadline bounds the following Writes; a Write past it fails
// and closes the WebSocket.
func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	w.deadline = t
	w.mu.Unlock()
	return nil
}

// Close closes the WebSocket at once. By the time the STOMP connection
// closes its transport, DISCONNECT has been answered (or given up on), so
// no close handshake is waited for.
func (w *wsConn) Close() error {
	err := w.c.CloseNow()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
