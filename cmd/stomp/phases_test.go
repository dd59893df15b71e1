package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stompout/stomp/server"
)

// phaseHandler is a server that delivers one message per SUBSCRIBE,
// records how each session ended, and can hold one kind of frame in its
// handler until released, so that a command is interrupted while it
// waits for the server's answer.
type phaseHandler struct {
	server.NopHandler
	block   string        // "connect", "subscribe", "ack" or "send": hold that frame
	entered chan struct{} // closed when the held frame's handler is entered
	release chan struct{} // closed by the test: the held handler returns

	once    sync.Once
	mu      sync.Mutex
	reasons []error // of every session that ended, in order
}

func (h *phaseHandler) hold(ctx context.Context, what string) error {
	if h.block != what {
		return nil
	}
	h.once.Do(func() { close(h.entered) })
	select {
	case <-h.release:
	case <-ctx.Done():
	}
	if what == "connect" {
		return errors.New("phase test: CONNECT held and refused")
	}
	return nil
}

func (h *phaseHandler) Connect(ctx context.Context, _ *server.Session, _ *server.ConnectRequest) error {
	return h.hold(ctx, "connect")
}

func (h *phaseHandler) Subscribe(ctx context.Context, s *server.Session, sub *server.Subscription) error {
	if err := s.Deliver(server.Delivery{Subscription: sub.ID, Message: &server.Message{Destination: sub.Destination, Body: []byte("one")}}); err != nil {
		return err
	}
	return h.hold(ctx, "subscribe")
}

func (h *phaseHandler) Ack(ctx context.Context, _ *server.Session, _ *server.Ack) error {
	return h.hold(ctx, "ack")
}

func (h *phaseHandler) Send(ctx context.Context, _ *server.Session, _ *server.Message) error {
	return h.hold(ctx, "send")
}

func (h *phaseHandler) Disconnect(_ context.Context, _ *server.Session, reason error) {
	h.mu.Lock()
	h.reasons = append(h.reasons, reason)
	h.mu.Unlock()
}

// TestInterruptAtEveryPhase interrupts recv and send at each phase of
// their lives, deterministically: either by a phase hook that cancels the
// command's context just before the command enters the phase (so the
// call of that phase starts with a cancelled context: the race that made
// TestInterruptDisconnectsGracefully flaky), or by a server that holds the
// frame of the phase, so that the interrupt comes while the command waits
// for the answer. Each must exit 0, print no error, and, where a
// connection existed, end it with a DISCONNECT (the server sees reason
// nil) and nothing else.
func TestInterruptAtEveryPhase(t *testing.T) {
	recv := []string{"recv", "-d", "/queue/phase", "-n", "5"}
	send := []string{"send", "-d", "/queue/phase", "-m", "hi", "-n", "3"}
	with := func(base []string, more ...string) []string { return append(append([]string(nil), base...), more...) }
	tests := []struct {
		name  string
		args  []string
		hook  string // interrupt on entering this phase
		block string // or: interrupt once the server holds this frame
		// connected: a connection existed, so the server must see one
		// session, ended by DISCONNECT.
		connected bool
	}{
		{name: "recv/before dial", args: recv, hook: "dial"},
		{name: "recv/while connecting", args: recv, block: "connect"},
		{name: "recv/inside Subscribe", args: recv, hook: "subscribe", connected: true},
		{name: "recv/waiting for the SUBSCRIBE receipt", args: with(recv, "-r"), block: "subscribe", connected: true},
		{name: "recv/before the SUBSCRIBE receipt", args: with(recv, "-r"), hook: "subscribe-receipt", connected: true},
		{name: "recv/while receiving", args: recv, hook: "receive", connected: true},
		{name: "recv/inside Ack", args: with(recv, "-a", "client"), hook: "ack", connected: true},
		{name: "recv/inside Ack, client-individual", args: with(recv, "-a", "client-individual"), hook: "ack", connected: true},
		{name: "recv/waiting for the ACK receipt", args: with(recv, "-a", "client", "-r"), block: "ack", connected: true},
		{name: "recv/before the ACK receipt", args: with(recv, "-a", "client", "-r"), hook: "ack-receipt", connected: true},
		{name: "send/before dial", args: send, hook: "dial"},
		{name: "send/while connecting", args: send, block: "connect"},
		{name: "send/inside Send", args: send, hook: "send", connected: true},
		{name: "send/inside Send, receipts", args: with(send, "-r"), hook: "send", connected: true},
		{name: "send/waiting for a receipt", args: with(send, "-r"), block: "send", connected: true},
		{name: "send/before a receipt", args: with(send, "-r"), hook: "receipt", connected: true},
		{name: "send/reading stdin", args: []string{"send", "-d", "/queue/phase"}, hook: "read", connected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &phaseHandler{block: tt.block, entered: make(chan struct{}), release: make(chan struct{})}
			srv, err := server.New(h)
			require.NoError(t, err)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			defer func() {
				srv.Close()
				<-served
			}()

			ctx, interrupt := context.WithCancel(t.Context())
			defer interrupt()
			hooked := make(chan struct{})
			var hookOnce sync.Once
			if tt.hook != "" {
				ctx = withPhaseHook(ctx, func(phase string) {
					if phase == tt.hook {
						hookOnce.Do(func() { close(hooked) })
						interrupt()
					}
				})
			}
			args := with(tt.args[:1], "-u", "tcp://"+l.Addr().String())
			args = append(args, tt.args[1:]...)
			c := start(ctx, nil, args...)
			if tt.block != "" {
				select {
				case <-h.entered:
				case <-c.done:
					t.Fatalf("the command ended before the server held its %s: %s", tt.block, c.stderr)
				}
				interrupt()
				close(h.release)
			}
			code := c.wait(t)
			if tt.block == "" {
				close(h.release)
				select {
				case <-hooked:
				default:
					t.Fatalf("the command never reached phase %q", tt.hook)
				}
			}
			assert.Equal(t, 0, code, c.stderr.String())
			assert.NotContains(t, c.stderr.String(), "stomp "+tt.args[0]+":", "no error may be printed")
			if tt.args[0] == "recv" {
				assert.Contains(t, c.stderr.String(), "received ")
			} else {
				assert.True(t, strings.HasPrefix(c.stdout.String(), "sent "), c.stdout.String())
			}

			require.NoError(t, srv.Shutdown(t.Context())) // waits for the sessions: Disconnect has been called
			h.mu.Lock()
			defer h.mu.Unlock()
			if tt.connected {
				assert.Equal(t, []error{nil}, h.reasons, "the session must end with a DISCONNECT frame")
			} else {
				assert.NotContains(t, h.reasons, nil, "no session was connected, none can have disconnected")
			}
		})
	}
}

// TestInterruptWhileReadingStdin interrupts a send that waits for its
// next line on a stdin that never ends: it must not wait for input to
// exit 0 with a DISCONNECT.
func TestInterruptWhileReadingStdin(t *testing.T) {
	h := &phaseHandler{entered: make(chan struct{}), release: make(chan struct{})}
	srv, err := server.New(h)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()

	ctx, interrupt := context.WithCancel(t.Context())
	defer interrupt()
	in, feed := io.Pipe()
	defer feed.Close() // ends the stdin reader, blocked in Read
	c := start(ctx, in, "send", "-u", "tcp://"+l.Addr().String(), "-d", "/queue/stdin")
	c.stderr.waitContains(t, c.done, "connected to ", 1)
	interrupt()
	assert.Equal(t, 0, c.wait(t), c.stderr.String())
	assert.Equal(t, "sent 0 messages to /queue/stdin\n", c.stdout.String())

	require.NoError(t, srv.Shutdown(t.Context()))
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Equal(t, []error{nil}, h.reasons, "the session must end with a DISCONNECT frame")
}

// dropper closes every session that sends a message, before any RECEIPT.
type dropper struct {
	server.NopHandler
	mu    sync.Mutex
	sends int
}

func (d *dropper) Send(_ context.Context, s *server.Session, _ *server.Message) error {
	d.mu.Lock()
	d.sends++
	d.mu.Unlock()
	s.Close(nil)
	return nil
}

// TestSendGivesUp: a message whose every sending loses the connection
// before its receipt (here the server closes each session that sends it)
// is sent maxTries times, then send fails instead of looping forever.
func TestSendGivesUp(t *testing.T) {
	d := &dropper{}
	srv, err := server.New(d)
	require.NoError(t, err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()
	c := start(t.Context(), nil, "send", "-q", "-u", "tcp://"+l.Addr().String(), "-d", "/queue/poison", "-m", "poison", "-r")
	assert.Equal(t, 1, c.wait(t))
	assert.Contains(t, c.stderr.String(), fmt.Sprintf("stomp send: message sent %d times", maxTries))
	d.mu.Lock()
	defer d.mu.Unlock()
	assert.Equal(t, maxTries, d.sends)
}
