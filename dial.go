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

	"github.com/coder/websocket"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/wire"
	"github.com/stompout/stomp/reconnect"
)

// WebSocketSubprotocols are the subprotocols Dial offers on ws:// and
// wss://, most recent STOMP version first.
var WebSocketSubprotocols = []string{"v12.stomp", "v11.stomp", "v10.stomp"}

// Dial opens a transport to addr and runs the STOMP handshake over it,
// like Connect, and returns a Conn that reconnects by itself (see
// WithReconnect). addr is one URL or a failover list of them:
//
//	tcp://host:port        plain TCP (a bare host:port means the same; port 61613 by default; stomp:// too)
//	tls://host:port        TLS over TCP, configured by WithTLSConfig (ssl:// and stomp+ssl:// too; port 61614 by default)
//	ws://host:port/path    WebSocket, offering WebSocketSubprotocols
//	wss://host:port/path   WebSocket over TLS
//	tcp://a:61613,tcp://b:61613               failover: every address is tried in turn
//	failover:(tcp://a:61613,tcp://b:61613)    the same, as ActiveMQ writes it (?randomize=true shuffles)
//
// A URL may carry a login, tcp://user:pass@host:port, used when no
// WithLogin is given; the passcode never appears in an error or a log.
// Dial tries each address once, in order (or shuffled, WithShuffle), and
// fails with the errors of all of them unless WithConnectRetry asks it to
// go on by the reconnect policy. It blocks until CONNECTED arrives, the
// server refuses (a *ConnectError), or ctx ends; ctx bounds only the dial
// and the handshake.
func Dial(ctx context.Context, addr string, opts ...Option) (*Conn, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	eps, shuffle, err := parseAddrs(addr)
	if err != nil {
		return nil, err
	}
	sh := cfg.shuffle
	if shuffle != nil && !cfg.shuffleSet {
		sh = *shuffle
	}
	c := newConn(cfg, &dialer{rot: reconnect.NewRotation(eps, sh)})
	s, err := c.firstSession(ctx)
	if err != nil {
		c.abandon()
		return nil, err
	}
	c.start(s)
	return c, nil
}

// dialer opens transports for a Conn: to Dial's addresses, or with
// Connect's WithRedial function.
type dialer struct {
	rot    *reconnect.Rotation[endpoint]
	redial func(ctx context.Context) (io.ReadWriteCloser, error)
}

// round tries every address once, in the rotation's order, and returns
// the first session that connects, or the errors of all (a final one at
// once: see isFinal).
func (c *Conn) round(ctx context.Context) (*session, error) {
	d := c.dialer
	if d.redial != nil {
		ctx, cancel := context.WithTimeout(ctx, c.cfg.connectTimeout)
		defer cancel()
		rw, err := d.redial(ctx)
		if err != nil {
			return nil, fmt.Errorf("stomp: redial: %w", err)
		}
		return c.handshake(ctx, rw, endpoint{})
	}
	var errs []error
	for _, ep := range d.rot.Round() {
		s, err := c.open(ctx, ep)
		if err == nil {
			return s, nil
		}
		c.log.Debug("stomp: connect failed", "addr", ep.String(), "err", err)
		if ctx.Err() != nil || c.stop.Err() != nil || isFinal(err) {
			return nil, err
		}
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// open dials ep and runs the handshake, within the connect timeout.
func (c *Conn) open(ctx context.Context, ep endpoint) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.connectTimeout)
	defer cancel()
	rw, err := c.dialEndpoint(ctx, ep)
	if err != nil {
		return nil, fmt.Errorf("stomp: dial %s: %w", ep, err)
	}
	return c.handshake(ctx, rw, ep)
}

func (c *Conn) dialEndpoint(ctx context.Context, ep endpoint) (io.ReadWriteCloser, error) {
	cfg := c.cfg
	// Close ends a dial in progress too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.stop, cancel)
	defer stop()
	switch ep.scheme {
	case "tcp":
		return cfg.netDialer().DialContext(ctx, "tcp", ep.addr)
	case "tls":
		d := tls.Dialer{NetDialer: cfg.netDialer(), Config: tlsConfig(cfg.tlsConfig, ep.addr)}
		return d.DialContext(ctx, "tcp", ep.addr)
	case "ws", "wss":
		return dialWebSocket(ctx, ep.addr, cfg)
	}
	return nil, fmt.Errorf("unknown scheme %q", ep.scheme)
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
	opts := &websocket.DialOptions{Subprotocols: WebSocketSubprotocols, HTTPHeader: cfg.wsHeader.Clone()}
	if cfg.tlsConfig != nil || cfg.dialer != nil {
		tr := &http.Transport{DialContext: cfg.netDialer().DialContext}
		if cfg.tlsConfig != nil {
			tr.TLSClientConfig = cfg.tlsConfig.Clone()
		}
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	c.SetReadLimit(wsReadLimit(cfg.limits))
	var remote net.Addr
	if host, _, ok := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(url, "ws://"), "wss://"), "/"); ok || host != "" {
		remote, _ = net.ResolveTCPAddr("tcp", host)
	}
	ws := wire.NewWS(c, remote)
	// RabbitMQ's Web-STOMP sends binary bodies in text messages: the
	// client takes what it is sent (the server half is strict).
	ws.AcceptInvalidUTF8()
	return ws, nil
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

// display is the endpoint for State and logs: String, or "" for the zero
// endpoint of Connect's transports.
func (e endpoint) display() string {
	if e.scheme == "" {
		return ""
	}
	return e.String()
}
