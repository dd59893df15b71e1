package stomp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/stompout/stomp/reconnect"
)

// firstSession connects for Dial: one round of every address, or, with
// WithConnectRetry, rounds by the reconnect policy until one connects, a
// final error, or ctx ends.
func (c *Conn) firstSession(ctx context.Context) (*session, error) {
	s, err := c.round(ctx)
	if err == nil || !c.cfg.connectRetry || isFinal(err) || ctx.Err() != nil {
		return s, err
	}
	sched := c.cfg.policy.Start()
	for {
		d, ok := sched.Next()
		if !ok {
			return nil, err
		}
		c.setState(StateChange{State: StateReconnecting, Err: err, Attempt: sched.Attempts(), Delay: d})
		if werr := reconnect.Sleep(ctx, d); werr != nil {
			return nil, werr
		}
		if s, err = c.round(ctx); err == nil || isFinal(err) || ctx.Err() != nil {
			return s, err
		}
	}
}

// supervise is the Conn's supervisor goroutine: it waits for each session
// to end, resolves what died with it, and connects again by the policy,
// until the Conn is finished.
func (c *Conn) supervise(s *session) {
	for {
		cause := s.wait()
		c.detach(s, cause)
		if err, final := c.endOf(cause); final {
			c.finish(err)
			return
		}
		c.log.Warn("stomp: connection lost; reconnecting", "addr", s.addr, "err", cause)
		c.setState(StateChange{State: StateLost, Addr: s.addr, Err: cause})
		if s = c.reconnect(); s == nil {
			return
		}
	}
}

// endOf says whether a session's end is the Conn's, and with what error.
func (c *Conn) endOf(cause error) (error, bool) {
	c.mu.Lock()
	closed, err := c.closed, c.err
	c.mu.Unlock()
	switch {
	case closed:
		return err, true
	case cause == nil: // the server closed after our DISCONNECT
		return nil, true
	case c.disconnecting.Load():
		return nil, true
	case c.dialer == nil || !c.cfg.policy.Enabled():
		return cause, true
	}
	return nil, false
}

// reconnect connects again after a loss, by the policy: a round of every
// address, then the policy's delay, until a session connects; it returns
// that session, in service. If Close comes first, or the policy gives up,
// or an attempt fails for good (a refused login), it finishes the Conn and
// returns nil.
func (c *Conn) reconnect() *session {
	sched := c.cfg.policy.Start()
	for {
		s, err := c.round(c.stop)
		if err == nil {
			if c.attach(s) {
				return s
			}
			closeTransport(s.rw) // closed meanwhile
			c.finish(nil)
			return nil
		}
		switch {
		case c.stop.Err() != nil:
			c.finish(nil)
			return nil
		case isFinal(err):
			c.finish(err)
			return nil
		}
		d, ok := sched.Next()
		if !ok {
			c.finish(fmt.Errorf("stomp: reconnect: %w: %w", sched.Err(), err))
			return nil
		}
		c.log.Debug("stomp: reconnect failed", "attempt", sched.Attempts(), "delay", d, "err", err)
		c.setState(StateChange{State: StateReconnecting, Err: err, Attempt: sched.Attempts(), Delay: d})
		if reconnect.Sleep(c.stop, d) != nil {
			c.finish(nil)
			return nil
		}
	}
}

// isFinal reports a connect error that retrying cannot mend: the server
// refused the login (retrying a wrong passcode forever helps nobody), or
// answered CONNECT with something else than CONNECTED or ERROR, or chose
// a version that was not offered.
func isFinal(err error) bool {
	var ce *ConnectError
	if !errors.As(err, &ce) {
		return false
	}
	return ce.Server == nil || loginRefused(ce.Server)
}

// loginRefused reports an ERROR answering CONNECT that says the login was
// refused, as brokers word it: the embedded broker's "access refused",
// RabbitMQ's "Bad CONNECT" with "Access refused for user", ActiveMQ's
// "User name [...] or password is invalid".
func loginRefused(se *ServerError) bool {
	text := strings.ToLower(se.Message + " " + string(se.Body))
	for _, w := range []string{"access refused", "access denied", "login", "passcode", "password",
		"authenticat", "credential", "not authorized", "unauthorized", "not allowed"} {
		if strings.Contains(text, w) {
			return true
		}
	}
	return false
}

// detach takes s out of service: the transactions begun on it are
// aborted (the server has aborted them).
func (c *Conn) detach(s *session, cause error) {
	var aborted []*Tx
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	for id, t := range c.txs {
		if t.sess.Load() == s {
			delete(c.txs, id)
			aborted = append(aborted, t)
		}
	}
	c.mu.Unlock()
	for _, t := range aborted {
		t.abortedBy(cause)
	}
}

// attach puts s in service and starts its goroutines; it reports false,
// starting nothing, if the Conn has been closed meanwhile.
func (c *Conn) attach(s *session) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.sess, c.last = s, s
	c.mu.Unlock()
	// Connected before the session's goroutines start: once they run, a
	// message can reach the application, or the session fail, before
	// this goroutine is scheduled again.
	c.setState(StateChange{State: StateConnected, Addr: s.addr})
	s.run()
	c.log.Debug("stomp: connected", "addr", s.addr, "version", s.version, "session", s.id, "server", s.server,
		"heart-beat-send", s.hbSend, "heart-beat-recv", s.hbRecv)
	return true
}

// finish ends the Conn: cause is its error (nil when the user ended it).
// Subscriptions end, Unrouted closes, and the goroutines of the Conn are
// told to stop; done is closed once they have.
func (c *Conn) finish(cause error) {
	c.mu.Lock()
	if !c.closed {
		c.closed, c.err = true, cause
	}
	cause = c.err
	c.sess = nil
	subs := *c.subs.Swap(&map[string]*Subscription{})
	c.mu.Unlock()
	c.closeOnce.Do(func() { close(c.closing) })
	c.cancel()

	end := cause
	if end == nil {
		end = ErrClosed
		c.log.Debug("stomp: connection closed")
	} else {
		c.log.Warn("stomp: connection failed", "err", cause)
	}
	for _, s := range subs {
		s.end(end)
	}
	close(c.unrouted)
	c.setState(StateChange{State: StateClosed, Err: cause})
	if c.events != nil {
		c.events.close()
	}
}

// willReconnect reports whether a lost session is followed by another.
func (c *Conn) willReconnect() bool {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	return !closed && c.dialer != nil && c.cfg.policy.Enabled() && !c.disconnecting.Load()
}
