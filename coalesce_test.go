package stomp

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/internal/stomptest"
)

// TestReadCoalesce: with WithReadCoalesce(d) the reader, having handled
// every frame it had, waits d before it reads again, so a frame written in
// the meantime arrives at the end of the wait together with whatever
// followed it; frames already buffered are not held, and a frame after a
// longer silence arrives at once. It does not wait right after the
// connection wrote (here the SUBSCRIBE, before message 0). Without the
// option a frame arrives when it is written.
func TestReadCoalesce(t *testing.T) {
	const d = time.Millisecond
	msg := func(sub *Subscription, i int) string {
		return stomptest.Wire("MESSAGE", fmt.Sprint(i), "subscription", sub.ID(), "destination", "/queue/a", "message-id", fmt.Sprint(i))
	}
	for _, tc := range []struct {
		name string
		opts []Option
		// when each of messages 0-4 reaches the application, from the
		// first's arrival
		want [5]time.Duration
	}{
		{"off", nil, [5]time.Duration{0, 300 * time.Microsecond, 300 * time.Microsecond, 300 * time.Microsecond, 10300 * time.Microsecond}},
		{"1ms", []Option{WithReadCoalesce(d)}, [5]time.Duration{0, 300 * time.Microsecond, 300*time.Microsecond + d, 300*time.Microsecond + d, 10300*time.Microsecond + d}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, p, sub := subscribed(t, tc.opts...)
				start := time.Now()
				go func() {
					p.Write(msg(sub, 0))
					time.Sleep(300 * time.Microsecond)
					p.Write(msg(sub, 1))
					p.Write(msg(sub, 2) + msg(sub, 3)) // two frames in one write, waiting for the reader
					time.Sleep(10 * time.Millisecond)
					p.Write(msg(sub, 4))
				}()
				for i, want := range tc.want {
					m := <-sub.C()
					if got := time.Since(start); string(m.Body) != fmt.Sprint(i) || got != want {
						t.Fatalf("message %q at %v, want %d at %v", m.Body, got, i, want)
					}
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestReadCoalesceNotWhileWriting: a connection that writes expects an
// answer (a RECEIPT, the next messages of a prefetch window), so a write
// ends the reader's wait, and the reader does not wait right after one:
// a window is not slowed to one per d.
func TestReadCoalesceNotWhileWriting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p, sub := subscribed(t, WithReadCoalesce(MaxReadCoalesce))
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			msg := func(i int) {
				p.Send("MESSAGE", fmt.Sprint(i), "subscription", sub.ID(), "destination", "/queue/a", "message-id", fmt.Sprint(i))
			}
			msg(0)
			time.Sleep(time.Millisecond)
			msg(1)
			p.Expect("SEND")
			msg(2)
		}()
		// 0 at once (no wait after the SUBSCRIBE), 1 a millisecond later;
		// the reader then waits until the Send at 1.5 ms, so 2, sent when
		// the peer has read the SEND, arrives at 1.5 ms too.
		for i, want := range []time.Duration{0, time.Millisecond, 1500 * time.Microsecond} {
			if i == 2 {
				time.Sleep(500 * time.Microsecond)
				if err := c.Send(ctxT(t), "/queue/b", nil); err != nil {
					t.Fatal(err)
				}
			}
			m := <-sub.C()
			if got := time.Since(start); string(m.Body) != fmt.Sprint(i) || got != want {
				t.Fatalf("message %q at %v, want %d at %v", m.Body, got, i, want)
			}
		}
		<-done
	})
}

// TestReadCoalesceEndsWithTheSession: Close does not wait for the reader's
// wait to end.
func TestReadCoalesceEndsWithTheSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p, sub := subscribed(t, WithReadCoalesce(MaxReadCoalesce))
		p.Send("MESSAGE", "x", "subscription", sub.ID(), "destination", "/queue/a", "message-id", "1")
		<-sub.C() // the reader now waits MaxReadCoalesce
		start := time.Now()
		c.Close()
		if got := time.Since(start); got != 0 {
			t.Fatalf("Close took %v", got)
		}
	})
}

func TestReadCoalesceRange(t *testing.T) {
	for _, d := range []time.Duration{-1, MaxReadCoalesce + 1} {
		client, _ := stomptest.Pipe(t)
		_, err := Connect(ctxT(t), client, WithReadCoalesce(d))
		if err == nil || !strings.Contains(err.Error(), "invalid option: read coalesce") {
			t.Fatalf("WithReadCoalesce(%v): err = %v", d, err)
		}
	}
}

// subscribed connects to a peer with opts and subscribes to /queue/a in
// auto mode.
func subscribed(t *testing.T, opts ...Option) (*Conn, *stomptest.Peer, *Subscription) {
	t.Helper()
	c, p := connectPeer(t, V12, opts)
	sub, err := c.Subscribe(ctxT(t), "/queue/a")
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	return c, p, sub
}
