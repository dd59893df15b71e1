package stomp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	embedded "github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/internal/stomptest"
)

// handled records what handlers saw, per body.
type handledLog struct {
	mu    sync.Mutex
	seen  map[string][]bool // body -> the Redelivered flag of each handling
	count int
}

func (h *handledLog) add(m Message) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = make(map[string][]bool)
	}
	h.seen[string(m.Body)] = append(h.seen[string(m.Body)], m.Redelivered)
	h.count++
	return h.count
}

// The test: 20,000 messages, 8 handlers, a graceful stop in the
// middle, then a second pool for the rest: every message handled and
// acknowledged, none lost, none handled twice without the redelivered flag.
func TestPoolGracefulStop(t *testing.T) {
	noLeaks(t)
	for _, mode := range []AckMode{AckClient, AckClientIndividual} {
		t.Run(string(mode), func(t *testing.T) {
			b, err := embedded.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ctx := ctxT(t)
			c, err := Dial(ctx, b.URL(), noLoss(t)...)
			if err != nil {
				t.Fatal(err)
			}
			const n, workers, q = 20000, 8, "/queue/jobs"
			for i := range n {
				if err := c.Send(ctx, q, fmt.Appendf(nil, "job-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			var log handledLog
			var errs atomic.Int64
			onErr := WithErrorFunc(func(m Message, err error) {
				errs.Add(1)
				t.Errorf("%s: %v", m.Body, err)
			})

			// First pool: stopped once half the messages are handled.
			half := make(chan struct{})
			sub, err := c.Subscribe(ctx, q, WithAck(mode), WithPrefetch(2*workers))
			if err != nil {
				t.Fatal(err)
			}
			p1, err := sub.Serve(ctx, workers, func(ctx context.Context, m Message) error {
				if log.add(m) == n/2 {
					close(half)
				}
				return nil
			}, onErr)
			if err != nil {
				t.Fatal(err)
			}
			<-half
			if err := p1.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			<-p1.Done()
			st1 := p1.Stats()
			if st1.Acked != st1.Handled || st1.InFlight != 0 || p1.Err() != nil {
				t.Fatalf("first pool: %+v, Err %v", st1, p1.Err())
			}
			if _, ok := <-sub.C(); ok {
				// Unsubscribed: the channel may hold prefetched messages,
				// which the broker has taken back.
				for range sub.C() {
				}
			}

			// Second pool: the rest, then stopped.
			p2 := serveRest(ctx, t, c, q, mode, workers, n, &log, onErr)
			if err := p2.Stop(ctx); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if err := c.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			st2 := p2.Stats()
			if got := st1.Acked + st2.Acked; got != uint64(log.count) {
				t.Errorf("acked %d, handled %d", got, log.count)
			}
			twice := 0
			for body, flags := range log.seen {
				if flags[0] && len(flags) == 1 {
					continue // redelivered after the first pool took it back
				}
				for _, r := range flags[1:] {
					if !r {
						t.Fatalf("%s handled again without the redelivered flag: %v", body, flags)
					}
				}
				if len(flags) > 1 {
					twice++
				}
			}
			bs := b.Stats()
			if bs.Acked != uint64(log.count) || errs.Load() != 0 {
				t.Errorf("broker acked %d, handled %d (twice %d)", bs.Acked, log.count, twice)
			}
			for _, qs := range bs.Queues {
				if qs.Depth != 0 || qs.Unacked != 0 {
					t.Errorf("queue %s: depth %d unacked %d", qs.Name, qs.Depth, qs.Unacked)
				}
			}
			t.Logf("first pool %d, second %d, redelivered %d, handled twice %d", st1.Handled, st2.Handled, bs.Redelivered, twice)
		})
	}
}

// A handler's error or panic nacks the message (redelivered, then acked);
// the panic is recovered and reported as a *PanicError.
func TestPoolErrorsAndPanics(t *testing.T) {
	noLeaks(t)
	b, err := embedded.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := ctxT(t)
	c, err := Dial(ctx, b.URL(), noLoss(t)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 300
	sub, err := c.Subscribe(ctx, "/queue/flaky", WithAck(AckClient), WithPrefetch(16))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		panics  int
		failed  int
		allDone = make(chan struct{})
	)
	errBoom := errors.New("boom")
	pool, err := sub.Serve(ctx, 8, func(ctx context.Context, m Message) error {
		var i int
		fmt.Sscanf(string(m.Body), "%d", &i)
		if !m.Redelivered {
			switch i % 10 {
			case 3:
				return fmt.Errorf("job %d: %w", i, errBoom)
			case 7:
				panic("job " + string(m.Body))
			}
		}
		mu.Lock()
		acked[string(m.Body)] = true
		if len(acked) == n {
			close(allDone)
		}
		mu.Unlock()
		return nil
	}, WithErrorFunc(func(m Message, err error) {
		mu.Lock()
		defer mu.Unlock()
		var pe *PanicError
		switch {
		case errors.As(err, &pe):
			if pe.Value != "job "+string(m.Body) || len(pe.Stack) == 0 {
				t.Errorf("panic error %v", pe)
			}
			panics++
		case errors.Is(err, errBoom):
			failed++
		default:
			t.Errorf("%s: %v", m.Body, err)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c.Send(ctx, "/queue/flaky", fmt.Append(nil, i))
	}
	<-allDone
	if err := pool.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	st := pool.Stats()
	if panics != n/10 || failed != n/10 || st.Panics != uint64(panics) || st.Failed != uint64(panics+failed) || st.Acked != n {
		t.Errorf("panics %d failed %d, stats %+v", panics, failed, st)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if bs := b.Stats(); bs.Acked != n || bs.Nacked != 2*n/10 {
		t.Errorf("broker: acked %d nacked %d", bs.Acked, bs.Nacked)
	}
}

// Stop bounded by its ctx: the handlers' ctx is cancelled, Stop returns
// ctx.Err(), and the Pool ends once they return, unsubscribed; the message
// in work is not settled.
func TestPoolStopDeadline(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClientIndividual), WithID("s"))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	started := make(chan struct{})
	pool, err := sub.Serve(ctx, 2, func(ctx context.Context, m Message) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Send("MESSAGE", "x", "subscription", "s", "destination", "/queue/a", "message-id", "m1", "ack", "a1")
	<-started
	sctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := pool.Stop(sctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop: %v", err)
	}
	p.ExpectBytes(stomptest.Wire("UNSUBSCRIBE", "", "id", "s"))
	select {
	case <-pool.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("pool did not end")
	}
	if st := pool.Stats(); st.Acked != 0 || st.Handled != 1 || st.Failed != 1 {
		t.Errorf("stats %+v", st)
	}
	marker(t, c, p) // no NACK, no ACK before it
}

// A Pool survives a reconnect: a message of the lost transport is not
// acknowledged (its Ack would be stale: the broker redelivers it), no
// error is reported, and the next transport's messages are handled and
// acknowledged.
func TestPoolAcrossReconnect(t *testing.T) {
	noLeaks(t)
	c, peers := redialPeers(t, V12)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClient), WithID("s"))
	if err != nil {
		t.Fatal(err)
	}
	p1 := <-peers
	p1.Expect("SUBSCRIBE")
	release, started := make(chan struct{}), make(chan struct{})
	handled := make(chan string, 4)
	pool, err := sub.Serve(ctx, 1, func(ctx context.Context, m Message) error {
		if string(m.Body) == "old" {
			close(started)
			<-release
		}
		handled <- string(m.Body)
		return nil
	}, WithErrorFunc(func(m Message, err error) { t.Errorf("%s: %v", m.Body, err) }))
	if err != nil {
		t.Fatal(err)
	}
	p1.Send("MESSAGE", "old", "subscription", "s", "destination", "/queue/a", "message-id", "m1", "ack", "a1")
	<-started // in the handler while its transport is lost
	p1.Close()
	p2 := <-peers
	p2.Expect("SUBSCRIBE")
	close(release)
	if b := recvString(t, handled); b != "old" {
		t.Fatal(b)
	}
	p2.Send("MESSAGE", "new", "subscription", "s", "destination", "/queue/a", "message-id", "m2", "ack", "a2")
	if b := recvString(t, handled); b != "new" {
		t.Fatal(b)
	}
	p2.ExpectBytes(stomptest.Wire("ACK", "", "id", "a2"))
	if err := pool.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	p2.ExpectBytes(stomptest.Wire("UNSUBSCRIBE", "", "id", "s"))
	if st := pool.Stats(); st.Stale != 1 || st.Acked != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Serve refuses what cannot work, and a Pool whose subscription ends
// (the Conn closed) ends with its error.
func TestPoolEnds(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a")
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	h := func(context.Context, Message) error { return nil }
	if _, err := sub.Serve(ctx, 0, h); err == nil {
		t.Error("Serve with 0 workers")
	}
	if _, err := sub.Serve(ctx, 1, nil); err == nil {
		t.Error("Serve with a nil handler")
	}
	pool, err := sub.Serve(ctx, 3, h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	<-pool.Done()
	if !errors.Is(pool.Err(), ErrClosed) {
		t.Errorf("Err %v", pool.Err())
	}
	if err := pool.Stop(ctx); err != nil || !errors.Is(pool.Err(), ErrClosed) {
		t.Errorf("Stop of an ended pool: %v, Err %v", err, pool.Err())
	}
	if _, err := sub.Serve(ctx, 1, h); !errors.Is(err, ErrSubscriptionEnded) {
		t.Errorf("Serve on an ended subscription: %v", err)
	}
}

// The graceful stop against the real brokers, 5,000 messages: the first
// pool's connection ends after its Stop (RabbitMQ takes back what a
// subscription held only then), a second connection's pool handles the
// rest; then nothing is left.
func TestInteropPoolGracefulStop(t *testing.T) {
	for _, b := range interopBrokers(t) {
		t.Run(b.name, func(t *testing.T) {
			const n, workers = 5000, 8
			q := uniqueQueue(t)
			ctx := ctxT(t)
			c1 := dialBroker(t, b, V12, append(noLoss(t), wsHeartBeatWorkaround(b)...)...)
			for i := range n {
				if err := c1.Send(ctx, q, fmt.Appendf(nil, "job-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			var log handledLog
			onErr := WithErrorFunc(func(m Message, err error) { t.Errorf("%s: %v", m.Body, err) })
			half := make(chan struct{})
			sub, err := c1.Subscribe(ctx, q, WithAck(AckClient), WithPrefetch(2*workers))
			if err != nil {
				t.Fatal(err)
			}
			p1, err := sub.Serve(ctx, workers, func(ctx context.Context, m Message) error {
				if log.add(m) == n/2 {
					close(half)
				}
				return nil
			}, onErr)
			if err != nil {
				t.Fatal(err)
			}
			<-half
			if err := p1.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c1.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			c2 := dialBroker(t, b, V12, append(noLoss(t), wsHeartBeatWorkaround(b)...)...)
			p2 := serveRest(ctx, t, c2, q, AckClient, workers, n, &log, onErr)
			if err := p2.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c2.Disconnect(ctx); err != nil {
				t.Fatal(err)
			}
			for body, flags := range log.seen {
				for _, r := range flags[1:] {
					if !r {
						t.Fatalf("%s handled again without the redelivered flag: %v", body, flags)
					}
				}
			}
			c3 := dialBroker(t, b, V12)
			sub3, err := c3.Subscribe(ctx, q, WithAck(AckClientIndividual))
			if err != nil {
				t.Fatal(err)
			}
			expectNone(t, sub3.C(), 500*time.Millisecond, "after both pools")
			t.Logf("first pool %d, second %d, handled %d", p1.Stats().Handled, p2.Stats().Handled, log.count)
		})
	}
}

// serveRest subscribes to q again with a pool of workers that records
// every message in log, and returns the pool once log has seen n distinct
// messages (or fails the test when ctx ends first).
func serveRest(ctx context.Context, t *testing.T, c *Conn, q string, mode AckMode, workers, n int,
	log *handledLog, onErr PoolOption) *Pool {
	t.Helper()
	all := make(chan struct{})
	var once sync.Once
	sub, err := c.Subscribe(ctx, q, WithAck(mode), WithPrefetch(2*workers))
	if err != nil {
		t.Fatal(err)
	}
	p, err := sub.Serve(ctx, workers, func(ctx context.Context, m Message) error {
		log.add(m)
		log.mu.Lock()
		if len(log.seen) == n {
			once.Do(func() { close(all) })
		}
		log.mu.Unlock()
		return nil
	}, onErr)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-all:
	case <-ctx.Done():
		log.mu.Lock()
		t.Fatalf("handled %d distinct of %d", len(log.seen), n)
	}
	return p
}

func recvString(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("nothing handled")
	}
	return ""
}
