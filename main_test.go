package stomp

import (
	"context"
	"testing"
	"time"

	"github.com/stompout/stomp/internal/stomptest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// connectPeer connects a client to a scripted peer that answers CONNECTED
// with version v (and the extra CONNECTED headers kv). The client is
// closed when the test ends.
func connectPeer(t testing.TB, v Version, opts []Option, kv ...string) (*Conn, *stomptest.Peer) {
	t.Helper()
	client, p := stomptest.Pipe(t)
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := Connect(context.Background(), client, opts...)
		ch <- result{c, err}
	}()
	p.Accept(v, append([]string{"session", "sess-1", "server", "peer/1.0"}, kv...)...)
	r := <-ch
	if r.err != nil {
		t.Fatalf("Connect: %v", r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c, p
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// recv takes one message from ch or fails after a while.
func recv(t testing.TB, ch <-chan Message) Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed, want a message")
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	return Message{}
}

// async runs f on a goroutine and returns a channel with its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func waitErr(t testing.TB, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("call did not return")
	}
	return nil
}

// noLeaks fails the test if it leaves a goroutine behind. Call it first,
// so that its check runs after every other cleanup. (Tests in a synctest
// bubble need not: the bubble itself fails when goroutines are left.)
func noLeaks(t *testing.T) {
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}
