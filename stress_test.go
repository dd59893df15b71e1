package stomp_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// TestStressRandomInterleavings runs goroutines that make random calls on
// one Conn to the embedded broker (Subscribe, Unsubscribe twice, Ack after
// Unsubscribe, Send with contexts that end at any moment, transactions
// used after they end, receipts) while the connection is ended by Close
// or Disconnect at a random moment. Whatever the order, nothing may
// panic, every call returns, every receipt resolves, every subscription
// channel closes, and nothing is left in Subscriptions or Transactions.
func TestStressRandomInterleavings(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	for round := range rounds {
		stressRound(t, b.Addr(), uint64(round))
	}
}

func stressRound(t *testing.T, addr string, seed uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := stomp.Dial(ctx, addr, stomp.WithVersions([]stomp.Version{stomp.V10, stomp.V11, stomp.V12}[seed%3]),
		stomp.WithSubscriptionBuffer(4), stomp.WithUnroutedBuffer(4))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		receipts []*stomp.Receipt
		subs     []*stomp.Subscription
	)
	keep := func(r *stomp.Receipt) {
		if r == nil {
			t.Error("WithReceipt left the receipt nil")
			return
		}
		mu.Lock()
		receipts = append(receipts, r)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for g := range 8 {
		rng := rand.New(rand.NewPCG(seed, uint64(g)))
		wg.Go(func() {
			var tx *stomp.Tx
			var sub *stomp.Subscription
			var last stomp.Message
			for range 60 {
				cctx, ccancel := context.WithTimeout(ctx, time.Duration(rng.IntN(300))*time.Microsecond)
				var r *stomp.Receipt
				dest := fmt.Sprint("/queue/s", rng.IntN(3))
				switch rng.IntN(12) {
				case 0, 1:
					c.Send(cctx, dest, []byte("x"), stomp.WithReceipt(&r))
					keep(r)
				case 2:
					s, err := c.Subscribe(ctx, dest, stomp.WithAck([]stomp.AckMode{stomp.AckAuto, stomp.AckClient, stomp.AckClientIndividual}[rng.IntN(3)]),
						stomp.WithReceipt(&r))
					keep(r)
					if err == nil {
						sub = s
						mu.Lock()
						subs = append(subs, s)
						mu.Unlock()
					}
				case 3:
					if sub != nil {
						go sub.Unsubscribe(cctx)
						sub.Unsubscribe(ctx, stomp.WithReceipt(&r))
						keep(r)
					}
				case 4:
					if sub != nil {
						select {
						case m, ok := <-sub.C():
							if ok {
								last = m
							}
						default:
						}
					}
				case 5:
					last.Ack(cctx, stomp.WithReceipt(&r))
					keep(r)
					last = stomp.Message{}
				case 6:
					last.Nack(ctx)
					last = stomp.Message{}
				case 7:
					t, err := c.Begin(cctx, stomp.WithReceipt(&r))
					keep(r)
					if err == nil {
						tx = t
					}
				case 8:
					if tx != nil {
						tx.Send(cctx, dest, []byte("t"))
						tx.Ack(ctx, last)
						last = stomp.Message{}
					}
				case 9:
					if tx != nil {
						if rng.IntN(2) == 0 {
							tx.Commit(cctx, stomp.WithReceipt(&r))
						} else {
							tx.Abort(ctx, stomp.WithReceipt(&r))
						}
						keep(r)
					}
				case 10:
					c.Subscriptions()
					c.Transactions()
				case 11:
					select {
					case <-c.Unrouted():
					default:
					}
				}
				ccancel()
			}
		})
	}
	time.Sleep(time.Duration(seed%5) * time.Millisecond)
	if seed%2 == 0 {
		c.Close()
	} else if err := c.Disconnect(ctx); err != nil && !ackRefused(err) {
		t.Errorf("round %d: Disconnect: %v", seed, err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("calls still blocked after the connection ended")
	}
	<-c.Done()
	stomp.CheckEnded(t, c, receipts, subs)
	if err := c.Err(); err != nil && !ackRefused(err) {
		t.Errorf("round %d: Err: %v", seed, err)
	}
}

// ackRefused: the broker refuses an ACK of a message whose subscription
// has ended (by Unsubscribe or overflow), which the test does not avoid.
func ackRefused(err error) bool {
	var se *stomp.ServerError
	return errors.As(err, &se) && strings.Contains(se.Message, "ack")
}
