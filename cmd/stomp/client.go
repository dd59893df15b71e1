package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/stompout/stomp"
)

// connFlags are the connection flags send, recv and bench share.
type connFlags struct {
	url       string
	login     string
	passcode  string
	host      string
	version   string
	heartBeat time.Duration
	insecure  bool
	headers   multiFlag
}

// defaultURL is where send and recv connect without -u.
const defaultURL = "tcp://127.0.0.1:61613"

// register adds the connection flags to fs, with url the default of -u.
func (c *connFlags) register(fs *flag.FlagSet, url string) {
	fs.StringVar(&c.url, "u", url, "broker `URL`: tcp://, tls://, ws://, wss:// (user:pass@ in it sets the login)")
	fs.StringVar(&c.login, "login", "", "login (overrides the URL's)")
	fs.StringVar(&c.passcode, "passcode", "", "passcode (overrides the URL's)")
	fs.StringVar(&c.host, "host", "/", "virtual host sent in CONNECT")
	fs.StringVar(&c.version, "version", "", "accept only this STOMP `version` (1.0, 1.1 or 1.2); default any")
	fs.DurationVar(&c.heartBeat, "heart-beat", 10*time.Second, "heart-beat interval in both directions (0 turns them off)")
	fs.BoolVar(&c.insecure, "insecure", false, "skip TLS certificate verification (tls:// and wss://)")
	fs.Var(&c.headers, "H", "extra frame header `key:value` (repeatable)")
}

// dial connects as the flags say. The URL's user info, if any, is the
// login unless -login/-passcode say otherwise; it is stripped before
// dialling.
func (c *connFlags) dial(ctx context.Context) (*stomp.Conn, error) {
	u, err := url.Parse(c.url)
	if err != nil {
		return nil, fmt.Errorf("bad -u: %w", err)
	}
	login, passcode := c.login, c.passcode
	if u.User != nil {
		if login == "" {
			login = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && passcode == "" {
			passcode = p
		}
		u.User = nil
	}
	opts := []stomp.Option{
		stomp.WithHost(c.host),
		stomp.WithHeartBeat(c.heartBeat, c.heartBeat),
	}
	if login != "" || passcode != "" {
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
	return stomp.Dial(ctx, u.String(), opts...)
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
