package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs, "") // no -u: the embedded broker
	var (
		dest = fs.String("d", "", "destination (default: a fresh /queue/stompout-bench-*)")
		n    = fs.Int("n", 10000, "messages")
		size = fs.Int("s", 128, "body size in bytes")
	)
	if err := parseFlags(fs, args, stderr, "[-u URL] [-n MESSAGES] [-s BYTES] [-d DEST]   (no -u: the embedded broker)"); err != nil {
		return err
	}
	if *n < 1 || *size < 0 {
		return fmt.Errorf("-n must be at least 1 and -s at least 0")
	}
	if cf.url == "" {
		b, err := broker.Start("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer b.Close()
		cf.url = b.URL()
	}
	if *dest == "" {
		*dest = fmt.Sprintf("/queue/stompout-bench-%d", time.Now().UnixNano())
	}

	consumer, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer consumer.Close()
	sub, err := consumer.Subscribe(ctx, *dest, stomp.WithBuffer(*n))
	if err != nil {
		return err
	}
	producer, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer producer.Close()

	body := bytes.Repeat([]byte("x"), *size)
	received := make(chan time.Time, 1)
	go func() {
		got := 0
		for range sub.C() {
			if got++; got == *n {
				received <- time.Now()
				return
			}
		}
		close(received)
	}()

	start := time.Now()
	for i := range *n {
		var opts []stomp.SendOption
		var r *stomp.Receipt
		if i == *n-1 {
			opts = append(opts, stomp.WithReceipt(&r))
		}
		if err := producer.Send(ctx, *dest, body, opts...); err != nil {
			return err
		}
		if r != nil {
			if err := r.Wait(ctx); err != nil {
				return err
			}
		}
	}
	sent := time.Since(start)
	var end time.Time
	select {
	case t, ok := <-received:
		if !ok {
			return fmt.Errorf("subscription ended early: %v", sub.Err())
		}
		end = t
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return fmt.Errorf("timed out waiting for %d messages", *n)
	}
	total := end.Sub(start)
	fmt.Fprintf(stdout, "broker   %s (STOMP %s)\n", cf.url, producer.Version())
	fmt.Fprintf(stdout, "send     %d x %d B in %v: %.0f msg/s, %.1f MB/s\n", *n, *size, sent.Round(time.Microsecond),
		float64(*n)/sent.Seconds(), float64(*n**size)/sent.Seconds()/1e6)
	fmt.Fprintf(stdout, "receive  %d in %v end to end: %.0f msg/s\n", *n, total.Round(time.Microsecond), float64(*n)/total.Seconds())
	if err := disconnect(producer); err != nil {
		return err
	}
	return disconnect(consumer)
}
