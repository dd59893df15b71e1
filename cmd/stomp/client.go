package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/reconnect"
)

// connFlags are the connection flags send, recv and bench share.
type connFlags struct {
	url       string
	login     string
	passcode  string
	host      string
	version   string
	heartBeat time.Duration
	coalesce  time.Duration
	insecure  bool
	headers   multiFlag

	// Set by registerReconnect (send and recv); their zero values are
	// what commands without those flags get: reconnect by default, no
	// state lines.
	noReconnect bool
	quiet       bool
}

// defaultURL is where send and recv connect without -u.
const defaultURL = "tcp://127.0.0.1:61613"

// register adds the connection flags to fs, with url the default of -u.
func (c *connFlags) register(fs *flag.FlagSet, url string) {
	fs.StringVar(&c.url, "u", url, "broker `URL`: tcp://, tls://, ws://, wss:// (user:pass@ in it sets the login), or a failover list: tcp://a:61613,tcp://b:61613 or failover:(tcp://a:61613,tcp://b:61613)")
	fs.StringVar(&c.login, "login", "", "login (overrides the URL's)")
	fs.StringVar(&c.passcode, "passcode", "", "passcode (overrides the URL's)")
	fs.StringVar(&c.host, "host", "/", "virtual host sent in CONNECT")
	fs.StringVar(&c.version, "version", "", "accept only this STOMP `version` (1.0, 1.1 or 1.2); default any")
	fs.DurationVar(&c.heartBeat, "heart-beat", 10*time.Second, "heart-beat interval in both directions (0 turns them off)")
	fs.DurationVar(&c.coalesce, "read-coalesce", 0, "after the last frame read, unless the connection has written since, wait this long before reading again: fewer system calls against a broker that writes one frame at a time (RabbitMQ, ActiveMQ), each frame up to this much later (0: off; at most 100ms)")
	fs.BoolVar(&c.insecure, "insecure", false, "skip TLS certificate verification (tls:// and wss://)")
	fs.Var(&c.headers, "H", "extra frame header `key:value` (repeatable)")
}

// registerReconnect adds the flags of the commands that keep a
// connection open through outages: --no-reconnect and -q.
func (c *connFlags) registerReconnect(fs *flag.FlagSet) {
	fs.BoolVar(&c.noReconnect, "no-reconnect", false, "end with an error when the connection is lost, instead of reconnecting (with backoff, to every address of -u in turn)")
	fs.BoolVar(&c.quiet, "q", false, "do not print connection state changes (connected, lost, reconnecting) and progress on stderr")
}

// dial connects as the flags say, reconnecting by default. The URL's user
// info, if any, is the login unless -login/-passcode say otherwise.
func (c *connFlags) dial(ctx context.Context) (*stomp.Conn, error) {
	return c.dialStatus(ctx, nil)
}

// dialStatus is dial that prints every state change (connected to X,
// connection lost, reconnecting) as one line on status, unless status is
// nil or -q was given. status must be safe for concurrent use: the Conn's
// own goroutine writes to it. A Conn that ends by itself (--no-reconnect)
// gets no line: the command says why as it exits.
func (c *connFlags) dialStatus(ctx context.Context, status io.Writer) (*stomp.Conn, error) {
	opts := []stomp.Option{
		stomp.WithHost(c.host),
		stomp.WithHeartBeat(c.heartBeat, c.heartBeat),
		stomp.WithReadCoalesce(c.coalesce),
	}
	if c.login != "" || c.passcode != "" {
		login, passcode := c.login, c.passcode
		// A flag overrides the URL's half of the login; the other half
		// still comes from a single URL's user info.
		if u, err := url.Parse(c.url); err == nil && u.User != nil && !strings.Contains(c.url, ",") {
			if login == "" {
				login = u.User.Username()
			}
			if p, ok := u.User.Password(); ok && passcode == "" {
				passcode = p
			}
		}
		opts = append(opts, stomp.WithLogin(login, passcode))
	}
	if c.version != "" {
		v := stomp.Version(c.version)
		if !v.Valid() {
			return nil, fmt.Errorf("bad -version %q: want 1.0, 1.1 or 1.2", c.version)
		}
		opts = append(opts, stomp.WithVersions(v))
	}
	if c.insecure {
		opts = append(opts, stomp.WithTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	}
	if c.noReconnect {
		opts = append(opts, stomp.WithReconnect(reconnect.Never()))
	}
	status = c.statusOut(status)
	if status != nil {
		first := true // Dial's own connection: said below, before Dial's caller goes on
		opts = append(opts, stomp.WithStateListener(func(e stomp.StateChange) {
			switch {
			case e.State == stomp.StateConnected && first:
				first = false
			case e.State == stomp.StateConnected, e.State == stomp.StateLost, e.State == stomp.StateReconnecting:
				fmt.Fprintln(status, e)
			}
		}))
	}
	conn, err := stomp.Dial(ctx, c.url, opts...)
	if err == nil && status != nil {
		fmt.Fprintf(status, "connected to %s\n", conn.Addr())
	}
	return conn, err
}

// statusOut is where progress goes: status, or nil with -q.
func (c *connFlags) statusOut(status io.Writer) io.Writer {
	if c.quiet {
		return nil
	}
	return status
}

// headerOpts turns -H key:value flags into options of the calls that take
// O (stomp.SendOption, stomp.SubscribeOption, ...).
func headerOpts[O any](c *connFlags) ([]O, error) {
	var opts []O
	for _, h := range c.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok || k == "" {
			return nil, fmt.Errorf("bad -H %q: want key:value", h)
		}
		opts = append(opts, any(stomp.WithHeader(k, v)).(O))
	}
	return opts, nil
}

// disconnect ends conn gracefully, bounded in time even when ctx is
// already cancelled (Ctrl-C).
func disconnect(conn *stomp.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return conn.Disconnect(ctx)
}
