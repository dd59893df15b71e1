package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// order is what the demo's producer sends and its workers decode.
type order struct {
	ID    int    `json:"id"`
	Item  string `json:"item"`
	Count int    `json:"count"`
}

func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var (
		n       = fs.Int("n", 1000, "messages to produce")
		workers = fs.Int("w", 4, "workers ranging over the subscription")
	)
	if err := parseFlags(fs, args, stderr, "[-n MESSAGES] [-w WORKERS]"); err != nil {
		return err
	}
	if *n < 1 || *workers < 1 {
		return fmt.Errorf("-n and -w must be at least 1")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "broker   listening on %s\n", b.URL())

	consumer, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		return err
	}
	defer consumer.Close()
	const queue = "/queue/orders"
	sub, err := consumer.Subscribe(ctx, queue, stomp.WithAck(stomp.AckClientIndividual), stomp.WithPrefetch(64))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "consumer connected (STOMP %s, session %s), subscribed to %s with ack %s\n",
		consumer.Version(), consumer.Session(), queue, sub.AckMode())

	// The worker pool: each worker ranges over the same channel and acks
	// what it handled.
	var (
		wg       sync.WaitGroup
		handled  = make([]int, *workers)
		acked    atomic.Int64
		items    atomic.Int64
		allDone  = make(chan struct{})
		failOnce sync.Once
		failure  error
	)
	fail := func(err error) { failOnce.Do(func() { failure = err; cancel() }) }
	start := time.Now()
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range sub.C() {
				var o order
				if err := m.JSON(&o); err != nil {
					fail(fmt.Errorf("worker %d: %w", w, err))
					return
				}
				items.Add(int64(o.Count))
				handled[w]++
				if err := m.Ack(ctx); err != nil {
					fail(fmt.Errorf("worker %d: ack: %w", w, err))
					return
				}
				if acked.Add(1) == int64(*n) {
					close(allDone)
				}
			}
		}()
	}

	producer, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		return err
	}
	defer producer.Close()
	var receipts []*stomp.Receipt
	for i := range *n {
		var opts []stomp.SendOption
		var r *stomp.Receipt
		if (i+1)%100 == 0 || i == *n-1 {
			opts = append(opts, stomp.WithReceipt(&r))
		}
		o := order{ID: i + 1, Item: fmt.Sprintf("item-%d", i%7), Count: i%3 + 1}
		if err := producer.SendJSON(ctx, queue, o, opts...); err != nil {
			return fmt.Errorf("producer: %w", err)
		}
		if r != nil {
			receipts = append(receipts, r)
		}
	}
	for _, r := range receipts {
		if err := r.Wait(ctx); err != nil {
			return fmt.Errorf("producer receipt: %w", err)
		}
	}
	sendTime := time.Since(start)
	fmt.Fprintf(stdout, "producer sent %d orders as JSON in %v, %d receipts confirmed\n", *n, sendTime.Round(time.Millisecond), len(receipts))

	// A transaction: two orders that only arrive together, on commit.
	err = producer.Transact(ctx, func(tx *stomp.Tx) error {
		for i := range 2 {
			if err := tx.SendJSON(ctx, "/queue/orders.tx", order{ID: *n + i + 1, Item: "bundle", Count: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("transaction: %w", err)
	}

	select {
	case <-allDone:
	case <-ctx.Done():
		if failure != nil {
			return failure
		}
		return fmt.Errorf("only %d of %d messages were acked: %w", acked.Load(), *n, ctx.Err())
	}
	elapsed := time.Since(start)
	for w, c := range handled {
		fmt.Fprintf(stdout, "worker %d handled %d orders\n", w, c)
	}
	fmt.Fprintf(stdout, "acked    %d messages (%d items) in %v: %.0f msg/s end to end\n",
		acked.Load(), items.Load(), elapsed.Round(time.Millisecond), float64(acked.Load())/elapsed.Seconds())

	txSub, err := consumer.Subscribe(ctx, "/queue/orders.tx")
	if err != nil {
		return err
	}
	for range 2 {
		select {
		case m := <-txSub.C():
			fmt.Fprintf(stdout, "committed transaction delivered %s\n", m.Body)
		case <-ctx.Done():
			return fmt.Errorf("transactional messages did not arrive: %w", ctx.Err())
		}
	}

	if err := disconnect(producer); err != nil {
		return fmt.Errorf("producer disconnect: %w", err)
	}
	if err := disconnect(consumer); err != nil {
		return fmt.Errorf("consumer disconnect: %w", err)
	}
	wg.Wait()
	if failure != nil {
		return failure
	}
	fmt.Fprintf(stdout, "broker   %+v\n", b.Stats())
	fmt.Fprintln(stdout, "demo done: every message delivered once and acked")
	return nil
}
