package stomp

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	embedded "github.com/stompout/stomp/broker"
)

// ackWorkersResult is what runAckWorkers saw.
type ackWorkersResult struct {
	acked  map[string]int // body -> successful Acks
	nacked map[string]int // body -> successful Nacks
}

// runAckWorkers has workers goroutines range over an AckClient
// subscription to q with the given prefetch, each finishing its messages
// after a random short while (so that acks come in random order), until
// every one of n messages (bodies "m<i>") has been acknowledged. With
// failEvery > 0, the first delivery of every failEvery-th message is
// nacked instead (redelivered by the broker when redeliver, the others
// sent to a dead-letter queue). It fails the test on any Ack or Nack
// error, on a second successful ack of a body, on a transport loss.
func runAckWorkers(t *testing.T, c *Conn, q string, n, workers, prefetch, failEvery int, redeliver bool) ackWorkersResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sub, err := c.Subscribe(ctx, q, WithAck(AckClient), WithPrefetch(prefetch))
	if err != nil {
		t.Fatal(err)
	}
	want := n
	if failEvery > 0 && !redeliver {
		want = n - (n+failEvery-1)/failEvery
	}
	res := ackWorkersResult{acked: make(map[string]int), nacked: make(map[string]int)}
	var (
		mu       sync.Mutex
		finished = make(chan struct{})
		wg       sync.WaitGroup
		failures []error
	)
	fail := func(err error) {
		mu.Lock()
		failures = append(failures, err)
		mu.Unlock()
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 8))
			for {
				var m Message
				select {
				case m = <-sub.C():
				case <-finished:
					return
				case <-ctx.Done():
					return
				}
				if d := rng.IntN(300); d > 0 {
					time.Sleep(time.Duration(d) * time.Microsecond) // random finishing order
				}
				var i int
				fmt.Sscanf(string(m.Body), "m%d", &i)
				if failEvery > 0 && i%failEvery == 0 && !m.Redelivered {
					if err := m.Nack(ctx); err != nil {
						fail(fmt.Errorf("Nack %s: %w", m.Body, err))
						return
					}
					mu.Lock()
					res.nacked[string(m.Body)]++
					mu.Unlock()
					continue
				}
				if err := m.Ack(ctx); err != nil {
					fail(fmt.Errorf("Ack %s: %w", m.Body, err))
					return
				}
				mu.Lock()
				res.acked[string(m.Body)]++
				if res.acked[string(m.Body)] > 1 {
					failures = append(failures, fmt.Errorf("%s acked twice", m.Body))
				}
				if len(res.acked) == want {
					close(finished)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		if err := c.Send(ctx, q, fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-finished:
	case <-ctx.Done():
		mu.Lock()
		t.Errorf("only %d of %d messages acknowledged", len(res.acked), want)
		mu.Unlock()
	case <-c.Done():
		t.Errorf("connection ended: %v", c.Err())
	}
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
	if st := c.State(); st.State != StateConnected {
		t.Errorf("state %v", st)
	}
	return res
}

// noLoss fails the test unless the Conn stayed on its first transport.
func noLoss(t *testing.T) []Option {
	return []Option{WithStateListener(func(e StateChange) {
		if e.State == StateLost {
			t.Errorf("transport lost: %v", e.Err)
		}
	})}
}

// The test: 8 workers over an AckClient subscription with prefetch
// 16, 5,000 messages acknowledged in random order: each exactly once, no
// ERROR (which would end the transport), nothing left on the broker.
func TestAckClientWorkersEmbedded(t *testing.T) {
	noLeaks(t)
	for _, failEvery := range []int{0, 10} {
		t.Run(fmt.Sprint("fail-every-", failEvery), func(t *testing.T) {
			b, err := embedded.Start("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			c, err := Dial(ctxT(t), b.URL(), noLoss(t)...)
			if err != nil {
				t.Fatal(err)
			}
			const n = 5000
			res := runAckWorkers(t, c, "/queue/work", n, 8, 16, failEvery, true)
			if err := c.Disconnect(ctxT(t)); err != nil { // its RECEIPT: the broker has every ACK
				t.Fatal(err)
			}
			st := b.Stats()
			wantNacked := 0
			if failEvery > 0 {
				wantNacked = n / failEvery
			}
			if st.Acked != n || st.Nacked != uint64(wantNacked) || len(res.acked) != n || len(res.nacked) != wantNacked {
				t.Errorf("broker acked %d nacked %d, client acked %d nacked %d; want %d, %d",
					st.Acked, st.Nacked, len(res.acked), len(res.nacked), n, wantNacked)
			}
			for _, q := range st.Queues {
				if q.Depth != 0 || q.Unacked != 0 {
					t.Errorf("queue %s: depth %d unacked %d", q.Name, q.Depth, q.Unacked)
				}
			}
			if c.Err() != nil {
				t.Errorf("Err: %v", c.Err())
			}
		})
	}
}

// The same against the real brokers. ActiveMQ moves a NACKed message to
// its dead-letter queue instead of redelivering it.
func TestInteropAckClientWorkers(t *testing.T) {
	for _, b := range interopBrokers(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, failEvery := range []int{0, 10} {
				t.Run(fmt.Sprint("fail-every-", failEvery), func(t *testing.T) {
					q := uniqueQueue(t)
					c := dialBroker(t, b, V12, append(noLoss(t), wsHeartBeatWorkaround(b)...)...)
					const n = 5000
					res := runAckWorkers(t, c, q, n, 8, 16, failEvery, b.rabbit)
					if err := c.Disconnect(ctxT(t)); err != nil {
						t.Fatal(err)
					}
					if failEvery > 0 && len(res.nacked) != n/failEvery {
						t.Errorf("nacked %d, want %d", len(res.nacked), n/failEvery)
					}
					// Nothing is left: a new subscriber gets nothing.
					c2 := dialBroker(t, b, V12)
					sub, err := c2.Subscribe(ctxT(t), q, WithAck(AckClientIndividual))
					if err != nil {
						t.Fatal(err)
					}
					expectNone(t, sub.C(), 500*time.Millisecond, "after every message was acknowledged")
					if err := c2.Disconnect(ctxT(t)); err != nil && !errors.Is(err, context.Canceled) {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// wsHeartBeatWorkaround turns heart-beats off against RabbitMQ's
// Web-STOMP: under flow control (a fast producer on the same connection)
// its heart-beater process crashes on an unexpected "resume" message and
// the broker drops the connection (RabbitMQ 3.10.8: rabbit_heartbeat
// {unexpected_message,resume} in the log).
func wsHeartBeatWorkaround(b broker) []Option {
	if b.name == "rabbitmq-ws" {
		return []Option{WithHeartBeat(0, 0)}
	}
	return nil
}
