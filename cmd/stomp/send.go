package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/stompout/stomp"
)

func runSend(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs, defaultURL)
	var (
		dest     = fs.String("d", "", "destination, e.g. /queue/a (required)")
		messages multiFlag
		receipts = fs.Bool("r", false, "ask a receipt for every message and wait for them all")
		repeat   = fs.Int("n", 1, "send each message `N` times")
		asJSON   = fs.Bool("json", false, "send as application/json (each message must be valid JSON)")
		ctype    = fs.String("content-type", "text/plain", "content-type of the messages")
	)
	fs.Var(&messages, "m", "message body (repeatable); without -m, each line of stdin is a message")
	if err := parseFlags(fs, args, stderr, "-d DEST [-u URL] [-m MSG]... [-r] [-n N] [-H k:v]... [--json]"); err != nil {
		return err
	}
	if *dest == "" {
		fmt.Fprintln(stderr, "stomp send: -d is required")
		return errUsage
	}
	callOpts, err := headerOpts[stomp.SendOption](&cf)
	if err != nil {
		return err
	}
	if *asJSON {
		*ctype = "application/json"
	}
	callOpts = append(callOpts, stomp.WithContentType(*ctype))

	conn, err := cf.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()

	var pending []*stomp.Receipt
	sent := 0
	send := func(body []byte) error {
		if *asJSON && !json.Valid(body) {
			return fmt.Errorf("message %q is not valid JSON", body)
		}
		for range *repeat {
			opts := callOpts
			var r *stomp.Receipt
			if *receipts {
				opts = append(opts[:len(opts):len(opts)], stomp.WithReceipt(&r))
			}
			if err := conn.Send(ctx, *dest, body, opts...); err != nil {
				return err
			}
			if r != nil {
				pending = append(pending, r)
			}
			sent++
		}
		return nil
	}
	if len(messages) > 0 {
		for _, m := range messages {
			if err = send([]byte(m)); err != nil {
				break
			}
		}
	} else {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for err == nil && sc.Scan() {
			err = send(append([]byte(nil), sc.Bytes()...))
		}
		if err == nil {
			err = sc.Err()
		}
	}
	for _, r := range pending {
		if werr := r.Wait(ctx); werr != nil && err == nil {
			err = fmt.Errorf("receipt %s: %w", r.ID(), werr)
		}
	}
	if derr := disconnect(conn); derr != nil && err == nil {
		err = derr
	}
	if errors.Is(err, context.Canceled) {
		err = nil // Ctrl-C: stop quietly, after the graceful disconnect
	}
	confirmed := ""
	if *receipts {
		confirmed = fmt.Sprintf(", %d receipts", len(pending))
	}
	fmt.Fprintf(stdout, "sent %d messages to %s%s\n", sent, *dest, confirmed)
	return err
}
