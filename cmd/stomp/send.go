package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"

	"github.com/stompout/stomp"
)

// Bounds of the messages send -r keeps until their receipts arrive (to
// send them again if the connection is lost first): past either, it waits
// for the oldest receipt before sending more.
const (
	maxUnconfirmed      = 1024
	maxUnconfirmedBytes = 16 << 20
	// maxTries bounds how often one message is sent because the
	// connection was lost while it was on its way: a message that itself
	// makes the broker drop the connection must not be sent forever.
	maxTries = 10
)

func runSend(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs, defaultURL)
	cf.registerReconnect(fs)
	var (
		dest     = fs.String("d", "", "destination, e.g. /queue/a (required)")
		messages multiFlag
		receipts = fs.Bool("r", false, "ask a receipt for every message and wait for them all; a message whose receipt is lost with the connection is sent again")
		repeat   = fs.Int("n", 1, "send each message `N` times")
		asJSON   = fs.Bool("json", false, "send as application/json (each message must be valid JSON)")
		ctype    = fs.String("content-type", "text/plain", "content-type of the messages")
	)
	fs.Var(&messages, "m", "message body (repeatable); without -m, each line of stdin is a message")
	if err := parseFlags(fs, args, stderr, "-d DEST [-u URL[,URL...]] [-m MSG]... [-r] [-n N] [-H k:v]... [--json] [--no-reconnect] [-q]"); err != nil {
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
	stderr = &syncWriter{w: stderr}

	atPhase(ctx, "dial")
	conn, err := cf.dialStatus(ctx, stderr)
	if err != nil {
		if interrupted(ctx) { // nothing to disconnect from
			fmt.Fprintf(stdout, "sent 0 messages to %s\n", *dest)
			return nil
		}
		return err
	}
	defer conn.Close()

	s := &sender{conn: conn, dest: *dest, opts: callOpts, receipts: *receipts}
	send := func(body []byte) error {
		if *asJSON && !json.Valid(body) {
			return fmt.Errorf("message %q is not valid JSON", body)
		}
		for range *repeat {
			if err := s.send(ctx, body); err != nil {
				return err
			}
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
		lines, readErr, stopReading := readLines(stdin)
		defer stopReading()
	read:
		for err == nil {
			atPhase(ctx, "read")
			select {
			case <-ctx.Done():
				err = ctx.Err()
			case <-conn.Done(): // it could not reconnect (--no-reconnect): do not wait for input
				if err = conn.Err(); err == nil {
					err = stomp.ErrClosed
				}
			case line, ok := <-lines:
				if !ok {
					err = readErr()
					break read
				}
				err = send(line)
			}
		}
	}
	if err == nil {
		err = s.confirm(ctx, 0, 0)
	}
	err = endCommand(ctx, err, disconnect(conn), stderr, "send")
	summary := fmt.Sprintf("sent %d messages to %s", s.sent, *dest)
	if *receipts {
		summary += fmt.Sprintf(", %d receipts", s.confirmed)
	}
	if s.resent > 0 {
		summary += fmt.Sprintf(" (%d sent again after a lost connection)", s.resent)
	}
	fmt.Fprintln(stdout, summary)
	return err
}

// sender sends messages to one destination through reconnects: a message
// whose SEND the loss of a transport interrupted, or (with receipts) whose
// receipt the loss of a transport left unanswered, is sent again, so that
// every message reaches the broker at least once.
type sender struct {
	conn     *stomp.Conn
	dest     string
	opts     []stomp.SendOption
	receipts bool

	pending      []unconfirmed // oldest first
	pendingBytes int

	sent      int // messages the broker has (or, without receipts, should have): each counted once
	confirmed int // receipts received
	resent    int // sends repeated after a lost connection
}

// unconfirmed is a message sent with a receipt that has not arrived.
type unconfirmed struct {
	body  []byte
	r     *stomp.Receipt
	tries int // times sent
}

// send sends body once, keeping it until its receipt arrives when asked
// for one.
func (s *sender) send(ctx context.Context, body []byte) error {
	if err := s.write(ctx, body, 0); err != nil {
		return err
	}
	s.sent++
	return s.confirm(ctx, maxUnconfirmed-1, maxUnconfirmedBytes-len(body))
}

// write sends body, again as long as the transport is lost while it is
// written (the Conn reconnects meanwhile), and registers its receipt;
// tries is how often it was sent before.
func (s *sender) write(ctx context.Context, body []byte, tries int) error {
	for {
		if tries++; tries > maxTries {
			return fmt.Errorf("message sent %d times, the connection lost each time before the broker confirmed it", maxTries)
		}
		opts := s.opts
		var r *stomp.Receipt
		if s.receipts {
			opts = append(opts[:len(opts):len(opts)], stomp.WithReceipt(&r))
		}
		atPhase(ctx, "send")
		err := s.conn.Send(ctx, s.dest, body, opts...)
		if s.retry(err) {
			s.resent++
			continue
		}
		if err != nil {
			return err
		}
		if r != nil {
			s.pending = append(s.pending, unconfirmed{body, r, tries})
			s.pendingBytes += len(body)
		}
		return nil
	}
}

// retry reports whether err means the outcome of a frame is unknown
// because its transport was lost, on a Conn that goes on.
func (s *sender) retry(err error) bool {
	if !errors.Is(err, stomp.ErrConnectionLost) {
		return false
	}
	select {
	case <-s.conn.Done():
		return false
	default:
		return true
	}
}

// confirm waits for the oldest receipts until at most n messages of at
// most size bytes wait for theirs, sending again those whose receipt was
// lost with the transport.
func (s *sender) confirm(ctx context.Context, n, size int) error {
	for len(s.pending) > 0 && (len(s.pending) > n || s.pendingBytes > size) {
		p := s.pending[0]
		s.pending[0] = unconfirmed{}
		s.pending = s.pending[1:]
		s.pendingBytes -= len(p.body)
		atPhase(ctx, "receipt")
		err := p.r.Wait(ctx)
		var se *stomp.ServerError
		if errors.As(err, &se) && se.ReceiptID == p.r.ID() {
			// The broker refused this very message: sending it again
			// would only be refused again.
			return fmt.Errorf("receipt %s: %w", p.r.ID(), err)
		}
		if s.retry(err) {
			s.resent++
			if err := s.write(ctx, p.body, p.tries); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("receipt %s: %w", p.r.ID(), err)
		}
		s.confirmed++
	}
	return nil
}

// maxLine bounds one line of stdin, one message.
const maxLine = 16 << 20

// readLines reads the lines of r on a goroutine of its own, so that an
// interrupt need not wait for input: lines yields each (a copy) and is
// closed at EOF or on an error, which readErr then returns. stop ends the
// goroutine once its Read in progress returns (a Read that never returns
// keeps it: a process exits anyway). At most one line waits in lines.
func readLines(r io.Reader) (lines <-chan []byte, readErr func() error, stop func()) {
	ch := make(chan []byte)
	quit := make(chan struct{})
	var err error // written before ch is closed
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), maxLine)
		for sc.Scan() {
			select {
			case ch <- append([]byte(nil), sc.Bytes()...):
			case <-quit:
				return
			}
		}
		err = sc.Err()
	}()
	var once sync.Once
	return ch, func() error { return err }, func() { once.Do(func() { close(quit) }) }
}
