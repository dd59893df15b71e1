package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stompout/stomp/server"
)

// disconnects records how each session ended.
type disconnects struct {
	server.NopHandler
	mu         sync.Mutex
	subscribed chan struct{}
	reasons    []error
}

func (d *disconnects) Subscribe(context.Context, *server.Session, *server.Subscription) error {
	close(d.subscribed)
	return nil
}

func (d *disconnects) Disconnect(_ context.Context, _ *server.Session, reason error) {
	d.mu.Lock()
	d.reasons = append(d.reasons, reason)
	d.mu.Unlock()
}

// TestInterruptDisconnectsGracefully plays Ctrl-C (the command's context
// ending) on a recv that waits for messages: it must send DISCONNECT, so
// the server sees a graceful end (reason nil), and exit 0.
func TestInterruptDisconnectsGracefully(t *testing.T) {
	h := &disconnects{subscribed: make(chan struct{})}
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
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"recv", "-u", "tcp://" + l.Addr().String(), "-d", "/queue/never"}, strings.NewReader(""), &stdout, &stderr)
	}()
	select {
	case <-h.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("recv did not subscribe")
	}
	interrupt()
	select {
	case c := <-code:
		assert.Equal(t, 0, c, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("recv did not exit after the interrupt")
	}
	srv.Shutdown(t.Context()) // waits for the session, so Disconnect has been called
	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Equal(t, []error{nil}, h.reasons, "the session must end with a DISCONNECT frame")
	assert.Contains(t, stderr.String(), "received 0 messages")
}
