package stomp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/internal/faultproxy"
	"github.com/stompout/stomp/reconnect"
	"github.com/stompout/stomp/server"
)

// fastRetry reconnects at once and then every few milliseconds.
var fastRetry = func() reconnect.Policy {
	p, err := reconnect.Exponential(reconnect.Initial(5*time.Millisecond), reconnect.Max(50*time.Millisecond))
	if err != nil {
		panic(err)
	}
	return p
}()

// rig is the embedded broker behind a fault-injection proxy, and the state
// changes of the Conns dialled through it.
type rig struct {
	t      *testing.T
	ctx    context.Context
	b      *broker.Broker
	p      *faultproxy.Proxy
	states chan stomp.StateChange
}

func newRig(t *testing.T, handler func(*broker.Broker) server.Handler, bopts ...broker.Option) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	r := &rig{t: t, ctx: ctx, states: make(chan stomp.StateChange, 4096)}
	var addr string
	if handler == nil {
		b, err := broker.Start("127.0.0.1:0", bopts...)
		if err != nil {
			t.Fatal(err)
		}
		r.b, addr = b, b.Addr()
		t.Cleanup(func() { b.Close() })
	} else {
		b := newBroker(t, bopts...)
		r.b = b
		srv := mustServer(t, handler(b), server.WithHeartBeat(100*time.Millisecond, 100*time.Millisecond))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(ln) }()
		t.Cleanup(func() { srv.Close(); <-done })
		addr = ln.Addr().String()
	}
	p, err := faultproxy.Start(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	r.p = p
	return r
}

// dial connects through the proxy, reconnecting fast, recording states.
func (r *rig) dial(opts ...stomp.Option) *stomp.Conn {
	r.t.Helper()
	opts = append([]stomp.Option{
		stomp.WithReconnect(fastRetry),
		stomp.WithStateListener(func(e stomp.StateChange) {
			select {
			case r.states <- e:
			default:
			}
		}),
	}, opts...)
	c, err := stomp.Dial(r.ctx, r.p.URL(), opts...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { c.Close() })
	return c
}

// waitState waits for a state change to want, and returns it.
func (r *rig) waitState(want stomp.State) stomp.StateChange {
	r.t.Helper()
	for {
		select {
		case e := <-r.states:
			if e.State == want {
				return e
			}
		case <-r.ctx.Done():
			r.t.Fatalf("no %v state", want)
		}
	}
}

func recvCtx(t *testing.T, ctx context.Context, ch <-chan stomp.Message) stomp.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription channel closed")
		}
		return m
	case <-ctx.Done():
		t.Fatal("no message")
	}
	panic("unreachable")
}

// killer is the embedded broker, except that a SEND to /queue/kill is
// answered with an ERROR frame (and the session closed), as a broker
// does for a frame it refuses.
type killer struct{ *broker.Broker }

func (k killer) Send(ctx context.Context, s *server.Session, m *server.Message) error {
	switch m.Destination {
	case "/queue/kill":
		return &server.ApplicationError{Message: "refused", Body: "this destination is for tests"}
	case "/queue/close":
		s.Close(nil) // the transport just closes: EOF, no ERROR
		return nil
	}
	return k.Broker.Send(ctx, s, m)
}

// TestReconnectTriggers: each way a transport can end reconnects; the
// subscription is made again (its channel never closes), and a Send made
// during the outage goes out on the new transport.
func TestReconnectTriggers(t *testing.T) {
	triggers := []struct {
		name    string
		handler func(*broker.Broker) server.Handler
		opts    []stomp.Option
		cut     func(r *rig, c *stomp.Conn)
		want    func(error) bool
		after   func(r *rig) // once lost
	}{
		{"proxy cuts every connection", nil, nil,
			func(r *rig, c *stomp.Conn) { r.p.Cut() },
			func(err error) bool { return errors.Is(err, stomp.ErrConnectionLost) }, nil},
		{"silence: only heart-beats can tell", func(b *broker.Broker) server.Handler { return b },
			[]stomp.Option{stomp.WithHeartBeat(100*time.Millisecond, 100*time.Millisecond)},
			func(r *rig, c *stomp.Conn) { r.p.Stall() },
			func(err error) bool { return errors.Is(err, stomp.ErrHeartBeatTimeout) },
			func(r *rig) {
				r.p.Cut() // the stalled connections; new ones are forwarded again
				r.p.Resume()
			}},
		{"new connections refused for a while", nil, nil,
			func(r *rig, c *stomp.Conn) {
				r.p.Refuse(true)
				r.p.Cut()
			},
			func(err error) bool { return errors.Is(err, stomp.ErrConnectionLost) },
			func(r *rig) {
				r.waitState(stomp.StateReconnecting)
				r.waitState(stomp.StateReconnecting)
				r.p.Refuse(false)
			}},
		{"the server closes the transport (EOF)", func(b *broker.Broker) server.Handler { return killer{b} }, nil,
			func(r *rig, c *stomp.Conn) {
				if err := c.Send(r.ctx, "/queue/close", []byte("x")); err != nil {
					r.t.Fatal(err)
				}
			},
			func(err error) bool { return errors.Is(err, stomp.ErrConnectionLost) && errors.Is(err, io.EOF) }, nil},
		{"ERROR frame from the server", func(b *broker.Broker) server.Handler { return killer{b} }, nil,
			func(r *rig, c *stomp.Conn) {
				if err := c.Send(r.ctx, "/queue/kill", []byte("x")); err != nil {
					r.t.Fatal(err)
				}
			},
			func(err error) bool {
				var se *stomp.ServerError
				return errors.As(err, &se) && se.Message == "refused"
			}, nil},
	}
	for _, tt := range triggers {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.handler)
			c := r.dial(tt.opts...)
			r.waitState(stomp.StateConnected)
			// Client acks: in auto mode a MESSAGE the broker writes to the
			// old connection before it sees it cut is gone (at most once),
			// and the test would be racing the broker.
			sub, err := c.Subscribe(r.ctx, "/queue/triggers", stomp.WithAck(stomp.AckClientIndividual))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Send(r.ctx, "/queue/triggers", []byte("before")); err != nil {
				t.Fatal(err)
			}
			if m := recvCtx(t, r.ctx, sub.C()); string(m.Body) != "before" {
				t.Fatalf("got %q", m.Body)
			} else if err := m.Ack(r.ctx); err != nil {
				t.Fatal(err)
			}
			tt.cut(r, c)
			lost := r.waitState(stomp.StateLost)
			if !tt.want(lost.Err) {
				t.Fatalf("lost with %v", lost.Err)
			}
			if tt.after != nil {
				tt.after(r)
			}
			// Sent while reconnecting: waits for the new transport, which
			// has the subscription back before the SEND is written.
			if err := c.Send(r.ctx, "/queue/triggers", []byte("after")); err != nil {
				t.Fatal(err)
			}
			for {
				m := recvCtx(t, r.ctx, sub.C())
				if string(m.Body) == "before" && m.Redelivered {
					continue // its ACK was cut off with the transport
				}
				if string(m.Body) != "after" {
					t.Fatalf("got %q", m.Body)
				}
				if err := m.Ack(r.ctx); err != nil {
					t.Fatal(err)
				}
				break
			}
			if e := c.State(); e.State != stomp.StateConnected || e.Addr != r.p.URL() {
				t.Fatalf("state %v", e)
			}
			if c.Err() != nil || sub.Err() != nil {
				t.Fatalf("Err %v, sub.Err %v", c.Err(), sub.Err())
			}
			if err := c.Disconnect(r.ctx); err != nil {
				t.Fatal(err)
			}
			// The channel closes after what came before the DISCONNECT. That
			// may include a redelivered "before": its ACK cut off, the broker
			// requeues it when it sees the old session end, which can be
			// after the new subscription got "after" (3 runs in 300).
			for closed := false; !closed; {
				select {
				case m, ok := <-sub.C():
					switch {
					case !ok:
						closed = true
					case string(m.Body) == "before" && m.Redelivered:
					default:
						t.Fatalf("message after Disconnect: %q (redelivered %v)", m.Body, m.Redelivered)
					}
				case <-r.ctx.Done():
					t.Fatal("subscription channel not closed by Disconnect")
				}
			}
			if e := c.State(); e.State != stomp.StateClosed {
				t.Fatalf("state after Disconnect %v", e)
			}
		})
	}
}

// TestNoReconnect: with reconnect.Never the Conn ends with its transport.
func TestNoReconnect(t *testing.T) {
	r := newRig(t, nil)
	c := r.dial(stomp.WithReconnect(reconnect.Never()))
	sub, err := c.Subscribe(r.ctx, "/queue/never")
	if err != nil {
		t.Fatal(err)
	}
	r.p.Cut()
	<-c.Done()
	if !errors.Is(c.Err(), stomp.ErrConnectionLost) {
		t.Fatalf("Err = %v", c.Err())
	}
	for range sub.C() {
	}
	if err := c.Send(r.ctx, "/queue/never", nil); !errors.Is(err, stomp.ErrClosed) {
		t.Fatalf("Send after the end = %v", err)
	}
}

// TestReconnectRefusedLogin: a reconnect whose CONNECT is refused for its
// login ends the Conn with the *ConnectError instead of retrying forever.
func TestReconnectRefusedLogin(t *testing.T) {
	users := map[string]string{"app": "secret"}
	r := newRig(t, nil, broker.WithUsers(users))
	c := r.dial(stomp.WithLogin("app", "secret"))
	// The broker behind the proxy is replaced by one with other users.
	b2, err := broker.Start("127.0.0.1:0", broker.WithUsers(map[string]string{"other": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	r.p.SetTarget(b2.Addr())
	r.p.Cut()
	select {
	case <-c.Done():
	case <-r.ctx.Done():
		t.Fatal("still reconnecting")
	}
	var ce *stomp.ConnectError
	if !errors.As(c.Err(), &ce) || ce.Server == nil || ce.Server.Message != "access refused" {
		t.Fatalf("Err = %v, want the refused CONNECT", c.Err())
	}
}

// TestReconnectWhatDiesWithTheSession: a receipt in flight resolves with
// ErrConnectionLost (outcome unknown), an Ack of a message of the lost
// transport is ErrStaleMessage and sends nothing (the broker redelivers
// it), and an open transaction is aborted.
func TestReconnectWhatDiesWithTheSession(t *testing.T) {
	r := newRig(t, nil)
	c := r.dial()
	sub, err := c.Subscribe(r.ctx, "/queue/dies", stomp.WithAck(stomp.AckClientIndividual))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(r.ctx, "/queue/dies", []byte("one")); err != nil {
		t.Fatal(err)
	}
	m := recvCtx(t, r.ctx, sub.C())
	tx, err := c.Begin(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r.p.Stall() // nothing is answered from here
	var rc *stomp.Receipt
	if err := c.Send(r.ctx, "/queue/other", []byte("unknown"), stomp.WithReceipt(&rc)); err != nil {
		t.Fatal(err)
	}
	r.p.Cut()
	r.p.Resume()
	if err := rc.Wait(r.ctx); !errors.Is(err, stomp.ErrConnectionLost) {
		t.Fatalf("receipt in flight resolved with %v, want ErrConnectionLost", err)
	}
	r.waitState(stomp.StateConnected)
	if err := m.Ack(r.ctx); !errors.Is(err, stomp.ErrStaleMessage) {
		t.Fatalf("Ack of a message of the lost transport = %v", err)
	}
	if err := tx.Send(r.ctx, "/queue/dies", nil); !errors.Is(err, stomp.ErrTxAborted) || !errors.Is(err, stomp.ErrConnectionLost) {
		t.Fatalf("Tx.Send after the loss = %v", err)
	}
	if len(c.Transactions()) != 0 {
		t.Fatalf("transactions %v", c.Transactions())
	}
	// The broker redelivers the unacknowledged message on the new transport.
	m2 := recvCtx(t, r.ctx, sub.C())
	if string(m2.Body) != "one" || !m2.Redelivered {
		t.Fatalf("redelivery %q %v", m2.Body, m2.Redelivered)
	}
	if err := m2.Ack(r.ctx, stomp.WithReceipt(&rc)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Wait(r.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestOutageFailFast: WithOutageWait(false) makes calls during an outage
// fail at once with ErrNotConnected.
func TestOutageFailFast(t *testing.T) {
	r := newRig(t, nil)
	c := r.dial(stomp.WithOutageWait(false))
	r.p.Refuse(true)
	r.p.Cut()
	r.waitState(stomp.StateLost)
	if err := c.Send(r.ctx, "/queue/x", nil); !errors.Is(err, stomp.ErrNotConnected) {
		t.Fatalf("Send during the outage = %v", err)
	}
	r.p.Refuse(false)
	r.waitState(stomp.StateConnected)
	if err := c.Send(r.ctx, "/queue/x", nil); err != nil {
		t.Fatal(err)
	}
}

// TestFailover: the first address down, the second up: connected to the
// second; the second dies and the first comes back: connected to the first.
func TestFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var ps [2]*faultproxy.Proxy
	for i := range ps {
		b, err := broker.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		p, err := faultproxy.Start(b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		ps[i] = p
	}
	ps[0].Down()
	for _, form := range []string{"%s,%s", "failover:(%s,%s)"} {
		t.Run(form, func(t *testing.T) {
			addr := fmt.Sprintf(form, ps[0].URL(), ps[1].URL())
			connected := make(chan string, 16)
			c, err := stomp.Dial(ctx, addr, stomp.WithReconnect(fastRetry), stomp.WithStateListener(func(e stomp.StateChange) {
				if e.State == stomp.StateConnected {
					connected <- e.Addr
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if a := <-connected; a != ps[1].URL() || c.Addr() != a {
				t.Fatalf("connected to %q (Addr %q), want the second, %q", a, c.Addr(), ps[1].URL())
			}
			if err := ps[0].Up(); err != nil {
				t.Fatal(err)
			}
			ps[1].Down()
			ps[1].Cut()
			if a := <-connected; a != ps[0].URL() {
				t.Fatalf("connected to %q, want the first, %q", a, ps[0].URL())
			}
			if err := c.Send(ctx, "/queue/failover", nil); err != nil {
				t.Fatal(err)
			}
			// Back to the start for the next form.
			if err := ps[1].Up(); err != nil {
				t.Fatal(err)
			}
			ps[0].Down()
		})
	}
}

// TestFirstConnectRetry: without WithConnectRetry a dead address fails
// Dial at once; with it Dial waits for the broker to come.
func TestFirstConnectRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, err := faultproxy.Start(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.Down()
	if _, err := stomp.Dial(ctx, p.URL()); err == nil {
		t.Fatal("Dial to a dead address succeeded")
	}
	var once sync.Once
	c, err := stomp.Dial(ctx, p.URL(), stomp.WithConnectRetry(true), stomp.WithReconnect(fastRetry),
		stomp.WithStateListener(func(e stomp.StateChange) {
			if e.State == stomp.StateReconnecting {
				once.Do(func() { p.Up() })
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func newBroker(t *testing.T, opts ...broker.Option) *broker.Broker {
	t.Helper()
	b, err := broker.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func mustServer(t *testing.T, h server.Handler, opts ...server.Option) *server.Server {
	t.Helper()
	srv, err := server.New(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestURLLogin: user:pass@ in the URL is the login, and the passcode
// appears in no address, state or error.
func TestURLLogin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	b, err := broker.Start("127.0.0.1:0", broker.WithUsers(map[string]string{"app": "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var states []string
	var mu sync.Mutex
	c, err := stomp.Dial(ctx, "tcp://app:s3cret@"+b.Addr(), stomp.WithStateListener(func(e stomp.StateChange) {
		mu.Lock()
		states = append(states, e.String())
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "tcp://"+b.Addr() {
		t.Errorf("Addr() = %q", c.Addr())
	}
	c.Close()
	mu.Lock()
	for _, s := range states {
		if strings.Contains(s, "s3cret") {
			t.Errorf("state %q shows the passcode", s)
		}
	}
	mu.Unlock()
	_, err = stomp.Dial(ctx, "tcp://app:wrong-s3cret@"+b.Addr())
	var ce *stomp.ConnectError
	if !errors.As(err, &ce) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("refused login: %v", err)
	}
	_, err = stomp.Dial(ctx, "tcp://app:s3cret@127.0.0.1:1")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("dial error: %v", err)
	}
}
