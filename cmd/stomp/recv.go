package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/stompout/stomp"
)

func runRecv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recv", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs, defaultURL)
	var (
		dest     = fs.String("d", "", "destination, e.g. /queue/a (required)")
		ackMode  = fs.String("a", "auto", "ack `mode`: auto, client or client-individual")
		receipts = fs.Bool("r", false, "ask receipts for SUBSCRIBE and every ACK, and wait for them")
		count    = fs.Int("n", 0, "exit after `N` messages (0: until Ctrl-C)")
		headers  = fs.Bool("headers", false, "print each message's headers before its body")
		prefetch = fs.Int("prefetch", 0, "unacknowledged messages the broker may send ahead (0: the broker's default)")
	)
	if err := parseFlags(fs, args, stderr, "-d DEST [-u URL] [-a auto|client|client-individual] [-r] [-n N] [--headers]"); err != nil {
		return err
	}
	if *dest == "" {
		fmt.Fprintln(stderr, "stomp recv: -d is required")
		return errUsage
	}
	mode := stomp.AckMode(*ackMode)
	switch mode {
	case stomp.AckAuto, stomp.AckClient, stomp.AckClientIndividual:
	default:
		fmt.Fprintf(stderr, "stomp recv: bad -a %q: want auto, client or client-individual\n", *ackMode)
		return errUsage
	}
	subOpts, err := headerOpts[stomp.SubscribeOption](&cf)
	if err != nil {
		return err
	}
	subOpts = append(subOpts, stomp.WithAck(mode))
	if *prefetch > 0 {
		subOpts = append(subOpts, stomp.WithPrefetch(*prefetch))
	}

	conn, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	var r *stomp.Receipt
	if *receipts {
		subOpts = append(subOpts, stomp.WithReceipt(&r))
	}
	sub, err := conn.Subscribe(ctx, *dest, subOpts...)
	if err != nil {
		return err
	}
	if r != nil {
		if err := r.Wait(ctx); err != nil {
			return fmt.Errorf("subscribe receipt: %w", err)
		}
	}
	fmt.Fprintf(stderr, "subscribed to %s (STOMP %s, ack %s)\n", *dest, conn.Version(), mode)

	got := 0
	err = func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case m, ok := <-sub.C():
				if !ok {
					return sub.Err()
				}
				got++
				if *headers {
					for k, v := range m.Header.All() {
						fmt.Fprintf(stdout, "%s:%s\n", k, v)
					}
					fmt.Fprintln(stdout)
				}
				fmt.Fprintf(stdout, "%s\n", m.Body)
				if mode != stomp.AckAuto {
					var ar *stomp.Receipt
					var ackOpts []stomp.CallOption
					if *receipts {
						ackOpts = append(ackOpts, stomp.WithReceipt(&ar))
					}
					if err := m.Ack(ctx, ackOpts...); err != nil {
						return fmt.Errorf("ack: %w", err)
					}
					if ar != nil {
						if err := ar.Wait(ctx); err != nil {
							return fmt.Errorf("ack receipt: %w", err)
						}
					}
				}
				if *count > 0 && got >= *count {
					return nil
				}
			}
		}
	}()
	if derr := disconnect(conn); derr != nil && err == nil {
		err = derr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	fmt.Fprintf(stderr, "received %d messages\n", got)
	return err
}
