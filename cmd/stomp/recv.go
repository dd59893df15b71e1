package main

import (
	"bufio"
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
	cf.registerReconnect(fs)
	var (
		dest     = fs.String("d", "", "destination, e.g. /queue/a (required)")
		ackMode  = fs.String("a", "", "ack `mode`: auto, client or client-individual (default auto; client with -n, so that what the broker sends past the N-th message stays in the queue)")
		receipts = fs.Bool("r", false, "ask receipts for SUBSCRIBE and every ACK, and wait for them")
		count    = fs.Int("n", 0, "exit after `N` messages (0: until Ctrl-C)")
		headers  = fs.Bool("headers", false, "print each message's headers before its body")
		prefetch = fs.Int("prefetch", 0, "unacknowledged messages the broker may send ahead (0: in the client ack modes the subscription channel's capacity, 256, or -n if smaller; in auto the broker's default)")
	)
	if err := parseFlags(fs, args, stderr, "-d DEST [-u URL[,URL...]] [-a auto|client|client-individual] [-r] [-n N] [--headers] [--no-reconnect] [-q]"); err != nil {
		return err
	}
	if *dest == "" {
		fmt.Fprintln(stderr, "stomp recv: -d is required")
		return errUsage
	}
	mode := stomp.AckMode(*ackMode)
	if mode == "" {
		// In auto mode a message is consumed once the broker has written
		// it: those past the N-th, already on their way, would be lost at
		// exit. Acknowledged one by one, they go back to the queue.
		mode = stomp.AckAuto
		if *count > 0 {
			mode = stomp.AckClient
		}
	}
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
	switch {
	case *prefetch > 0:
		subOpts = append(subOpts, stomp.WithPrefetch(*prefetch))
	case mode != stomp.AckAuto && *count > 0 && *count < stomp.DefaultSubscriptionBuffer:
		// The broker need not send what recv will not print.
		subOpts = append(subOpts, stomp.WithPrefetch(*count))
	}
	stderr = &syncWriter{w: stderr}

	atPhase(ctx, "dial")
	conn, err := cf.dialStatus(ctx, stderr)
	if err != nil {
		if interrupted(ctx) { // nothing to disconnect from
			fmt.Fprintln(stderr, "received 0 messages")
			return nil
		}
		return err
	}
	defer conn.Close()

	r := &receiver{
		conn: conn, dest: *dest, mode: mode, receipts: *receipts, count: *count,
		headers: *headers, out: bufio.NewWriter(stdout), stderr: stderr, status: cf.statusOut(stderr),
	}
	err = r.run(ctx, subOpts)
	if ferr := r.out.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	err = endCommand(ctx, err, disconnect(conn), stderr, "recv")
	fmt.Fprintf(stderr, "received %d messages%s\n", r.got, r.notes())
	return err
}

// receiver is one recv: a subscription printed to out, acknowledged in
// its mode.
type receiver struct {
	conn     *stomp.Conn
	dest     string
	mode     stomp.AckMode
	receipts bool
	count    int
	headers  bool
	out      *bufio.Writer // flushed whenever the subscription has nothing more waiting
	stderr   io.Writer     // for warnings
	status   io.Writer     // for progress; nil with -q

	got         int // messages printed
	stale       int // acks not sent: the message came on a lost transport (the broker redelivers it)
	unconfirmed int // acks whose receipt was lost with the transport
}

// run subscribes and prints messages until count is reached, the
// subscription ends, or ctx ends (then its error is ctx's).
func (r *receiver) run(ctx context.Context, subOpts []stomp.SubscribeOption) error {
	var rcpt *stomp.Receipt
	if r.receipts {
		subOpts = append(subOpts, stomp.WithReceipt(&rcpt))
	}
	atPhase(ctx, "subscribe")
	sub, err := r.conn.Subscribe(ctx, r.dest, subOpts...)
	if err != nil {
		return err
	}
	if rcpt != nil {
		atPhase(ctx, "subscribe-receipt")
		switch err := rcpt.Wait(ctx); {
		case errors.Is(err, stomp.ErrConnectionLost):
			// The Conn subscribes again on the next transport.
			fmt.Fprintf(r.stderr, "subscribe receipt lost with the connection: %v\n", err)
		case err != nil:
			return fmt.Errorf("subscribe receipt: %w", err)
		}
	}
	if r.status != nil {
		fmt.Fprintf(r.status, "subscribed to %s (STOMP %s, ack %s)\n", r.dest, r.conn.Version(), r.mode)
	}
	for r.count <= 0 || r.got < r.count {
		if len(sub.C()) == 0 {
			if err := r.out.Flush(); err != nil {
				return err
			}
		}
		atPhase(ctx, "receive")
		if err := ctx.Err(); err != nil {
			return err
		}
		var m stomp.Message
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok = <-sub.C():
		}
		if !ok {
			if err := sub.Err(); err != nil {
				return err
			}
			return r.conn.Err()
		}
		r.got++
		if err := r.print(m); err != nil {
			return err
		}
		if r.mode != stomp.AckAuto {
			if err := r.ack(ctx, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *receiver) print(m stomp.Message) error {
	if r.headers {
		for k, v := range m.Header.All() {
			fmt.Fprintf(r.out, "%s:%s\n", k, v)
		}
		r.out.WriteByte('\n')
	}
	r.out.Write(m.Body)
	return r.out.WriteByte('\n')
}

// ack acknowledges m. An ack the reconnects made pointless (m came on a
// transport since lost, so the broker takes it back and redelivers it) or
// whose outcome the loss of the transport hid is counted, not fatal.
func (r *receiver) ack(ctx context.Context, m stomp.Message) error {
	var ar *stomp.Receipt
	var opts []stomp.CallOption
	if r.receipts {
		opts = append(opts, stomp.WithReceipt(&ar))
	}
	atPhase(ctx, "ack")
	switch err := m.Ack(ctx, opts...); {
	case errors.Is(err, stomp.ErrStaleMessage):
		r.stale++
		return nil
	case errors.Is(err, stomp.ErrConnectionLost) && r.conn.Err() == nil:
		r.unconfirmed++
		return nil
	case err != nil:
		return fmt.Errorf("ack: %w", err)
	}
	if ar == nil {
		return nil
	}
	atPhase(ctx, "ack-receipt")
	switch err := ar.Wait(ctx); {
	case errors.Is(err, stomp.ErrConnectionLost) && r.conn.Err() == nil:
		r.unconfirmed++
	case err != nil:
		return fmt.Errorf("ack receipt: %w", err)
	}
	return nil
}

// notes says what the summary line adds to the count.
func (r *receiver) notes() string {
	s := ""
	if r.stale > 0 {
		s += fmt.Sprintf(", %d acks not sent (messages from a lost connection: the broker redelivers them)", r.stale)
	}
	if r.unconfirmed > 0 {
		s += fmt.Sprintf(", %d acks unconfirmed (the connection was lost before the broker answered)", r.unconfirmed)
	}
	return s
}
