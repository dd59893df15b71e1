package stomp_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// ledger counts what a consumer received, by message body.
type ledger struct {
	mu     sync.Mutex
	seen   map[string]int
	unique int // len(seen)
	dups   int
	cond   chan struct{} // closed and replaced on every new message
}

func newLedger() *ledger { return &ledger{seen: make(map[string]int), cond: make(chan struct{})} }

func (l *ledger) add(body string) {
	l.mu.Lock()
	l.seen[body]++
	if l.seen[body] > 1 {
		l.dups++
	} else {
		l.unique++
	}
	close(l.cond)
	l.cond = make(chan struct{})
	l.mu.Unlock()
}

// missing returns how many of want have not been received, and a channel
// closed on the next arrival.
func (l *ledger) missing(want []string) (int, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, b := range want {
		if l.seen[b] == 0 {
			n++
		}
	}
	return n, l.cond
}

// waitAll waits until every body in want has been received, or ctx ends;
// it returns how many are missing. It counts arrivals and checks want only
// once enough have come: checking 100,000 bodies on every arrival made the
// test measure itself (and, under -race, take a minute).
func (l *ledger) waitAll(ctx context.Context, want []string) int {
	for {
		l.mu.Lock()
		enough, next := l.unique >= len(want), l.cond
		l.mu.Unlock()
		if enough {
			if n, _ := l.missing(want); n == 0 {
				return 0
			}
		}
		select {
		case <-next:
		case <-ctx.Done():
			n, _ := l.missing(want)
			return n
		}
	}
}

func (l *ledger) counts() (unique, dups int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen), l.dups
}

// consume ranges over sub with n workers, recording and acking each
// message; acks of messages from a lost transport fail (the broker
// redelivers them) and are counted.
func consume(ctx context.Context, sub *stomp.Subscription, n int, l *ledger, stale *atomic.Int64, work func([]byte)) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for m := range sub.C() {
				if work != nil {
					work(m.Body)
				}
				l.add(string(m.Body))
				if sub.AckMode() == stomp.AckAuto {
					continue
				}
				if err := m.Ack(ctx); errors.Is(err, stomp.ErrStaleMessage) {
					stale.Add(1)
				}
			}
		})
	}
	return &wg
}

// produce sends bodies with a receipt each, at most window unanswered,
// and sends again every one whose outcome is unknown (its receipt
// resolved with ErrConnectionLost), until each is receipted: an
// at-least-once producer. It returns how many SEND frames it made.
func produce(ctx context.Context, t *testing.T, c *stomp.Conn, dest string, bodies []string, window int,
	onReceipted func(n int), headers ...stomp.SendOption) int {
	t.Helper()
	type sent struct {
		body string
		r    *stomp.Receipt
	}
	var (
		sends     atomic.Int64
		receipted atomic.Int64
	)
	todo := make(chan string, len(bodies))
	for _, b := range bodies {
		todo <- b
	}
	inflight := make(chan sent, window)
	var wg sync.WaitGroup
	wg.Go(func() {
		for s := range inflight {
			if err := s.r.Wait(ctx); err != nil {
				if !errors.Is(err, stomp.ErrConnectionLost) {
					t.Errorf("receipt of %s: %v", s.body, err)
					return
				}
				todo <- s.body // outcome unknown: send it again
				continue
			}
			if n := receipted.Add(1); onReceipted != nil {
				onReceipted(int(n))
			}
			if receipted.Load() == int64(len(bodies)) {
				close(todo)
			}
		}
	})
	for b := range todo {
		var r *stomp.Receipt
		opts := append([]stomp.SendOption{stomp.WithReceipt(&r)}, headers...)
		err := c.Send(ctx, dest, []byte(b), opts...)
		sends.Add(1)
		if err != nil && !errors.Is(err, stomp.ErrConnectionLost) {
			t.Errorf("Send: %v", err)
			break
		}
		inflight <- sent{b, r}
	}
	close(inflight)
	wg.Wait()
	return int(sends.Load())
}

func bodies(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// TestZeroLossAcrossCuts: a producer sending 20,000 receipted messages and
// a client-individual consumer, with every connection cut three times in
// the middle: every receipted message is received at least once.
func TestZeroLossAcrossCuts(t *testing.T) {
	const n = 20000
	r := newRig(t, nil)
	producer := r.dial()
	consumer := r.dial()
	sub, err := consumer.Subscribe(r.ctx, "/queue/zero-loss", stomp.WithAck(stomp.AckClientIndividual))
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	var stale atomic.Int64
	workers := consume(r.ctx, sub, 4, l, &stale, nil)
	want := bodies("m-", n)
	var cuts atomic.Int64
	sent := produce(r.ctx, t, producer, "/queue/zero-loss", want, 256, func(k int) {
		if k%(n/4) == 0 && k < n {
			r.p.Cut()
			cuts.Add(1)
		}
	})
	missing := l.waitAll(r.ctx, want)
	unique, dups := l.counts()
	t.Logf("zero loss across cuts: sent=%d (SEND frames, resends included) receipted=%d received=%d duplicates=%d missing=%d cuts=%d stale-acks=%d",
		sent, n, unique, dups, missing, cuts.Load(), stale.Load())
	if missing != 0 || cuts.Load() != 3 {
		t.Fatalf("missing %d, cuts %d", missing, cuts.Load())
	}
	consumer.Close()
	workers.Wait()
}

// TestLosslessDefault: 100,000 messages waiting in a queue, a default
// Subscribe (auto ack, default buffers), a pool of 4 workers doing a
// little work per message: all 100,000 received, nothing dropped.
func TestLosslessDefault(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	testLosslessDefault(ctx, t, b.URL(), 100000, nil)
}

// testLosslessDefault fills a queue with n messages, then drains it with a
// default subscription and 4 workers.
func testLosslessDefault(ctx context.Context, t *testing.T, url string, n int, opts []stomp.Option) {
	producer, err := stomp.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	dest := fmt.Sprintf("/queue/lossless-%d", time.Now().UnixNano())
	want := bodies("b-", n)
	for _, body := range want {
		if err := producer.Send(ctx, dest, []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	var r *stomp.Receipt
	if err := producer.Send(ctx, "/queue/lossless-flush", nil, stomp.WithReceipt(&r)); err != nil {
		t.Fatal(err)
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	consumer, err := stomp.Dial(ctx, url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	start := time.Now()
	sub, err := consumer.Subscribe(ctx, dest) // every default
	if err != nil {
		t.Fatal(err)
	}
	l := newLedger()
	var stale atomic.Int64
	work := func(b []byte) { sha256.Sum256(b) } // a little work per message
	workers := consume(ctx, sub, 4, l, &stale, work)
	missing := l.waitAll(ctx, want)
	unique, dups := l.counts()
	t.Logf("lossless default (%s): waiting=%d received=%d duplicates=%d missing=%d dropped=%d unrouted-dropped=%d in %v",
		url, n, unique, dups, missing, sub.Dropped(), consumer.UnroutedDropped(), time.Since(start).Round(time.Millisecond))
	if missing != 0 || sub.Err() != nil || consumer.Err() != nil {
		t.Fatalf("missing %d; sub.Err %v; Err %v", missing, sub.Err(), consumer.Err())
	}
	if err := sub.Unsubscribe(ctx); err != nil {
		t.Fatal(err)
	}
	workers.Wait()
}
