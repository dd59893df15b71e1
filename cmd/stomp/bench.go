package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// benchHeader carries "RUN:NANOS" on every message stomp bench sends: the
// run's id (messages of other runs, left in a queue, are not counted) and
// the Unix time in ns the message was sent, or due to be sent with -rate
// (a producer that falls behind then adds to the latency instead of hiding
// it). Consumers measure the latency against their own clock: across
// machines it includes the clocks' offset.
const benchHeader = "stompout-bench"

// benchConfig is what the flags of stomp bench say.
type benchConfig struct {
	producers, consumers int
	size                 int
	n                    int           // messages in all (0 with duration)
	duration             time.Duration // send for this long (0 with n)
	dest                 string
	ack                  stomp.AckMode
	receipts             bool
	rate                 float64 // messages per second offered by all producers; 0: as fast as they go
	buffer, prefetch     int
	timeout              time.Duration // wait at most this long without progress for the last messages
}

func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs, "") // no -u: the embedded broker
	var c benchConfig
	var ack string
	var asJSON bool
	fs.IntVar(&c.producers, "producers", 1, "producer connections")
	fs.IntVar(&c.consumers, "consumers", 1, "consumer connections, one subscription each (on a /topic/ each gets every message)")
	fs.IntVar(&c.size, "size", 128, "body size in `bytes`")
	fs.IntVar(&c.size, "s", 128, "short for -size")
	fs.IntVar(&c.n, "n", 10000, "messages to send in all (not with -duration)")
	fs.DurationVar(&c.duration, "duration", 0, "send for this long instead of -n messages")
	fs.StringVar(&c.dest, "d", "", "destination (default: a fresh /queue/stompout-bench-*)")
	fs.StringVar(&ack, "a", "auto", "consumers' ack `mode`: auto, client or client-individual (one ACK per message)")
	fs.BoolVar(&c.receipts, "r", false, "ask a receipt for every SEND and wait for it before the next")
	fs.Float64Var(&c.rate, "rate", 0, "offered load in messages per second, all producers together (0: as fast as they go)")
	fs.IntVar(&c.buffer, "buffer", 4096, "each subscription's buffer, in messages")
	fs.IntVar(&c.prefetch, "prefetch", 0, "unacknowledged messages the broker may send ahead in the client ack modes (0: -buffer)")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "give up when no message arrives for this long")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object instead of the summary")
	if err := parseFlags(fs, args, stderr, "[-u URL] [-producers N] [-consumers N] [-size BYTES] [-n MESSAGES | -duration D] [-d DEST] [-a MODE] [-r] [-rate MSGS/S] [--json]   (no -u: the embedded broker)"); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["duration"] {
		if set["n"] {
			return benchUsage(stderr, "-n and -duration exclude each other")
		}
		c.n = 0
	}
	c.ack = stomp.AckMode(ack)
	if err := c.validate(); err != nil {
		return benchUsage(stderr, err.Error())
	}

	embedded := cf.url == ""
	if embedded {
		b, err := broker.Start("127.0.0.1:0")
		if err != nil {
			return err
		}
		defer b.Close()
		cf.url = b.URL()
	}
	if c.dest == "" {
		c.dest = fmt.Sprintf("/queue/stompout-bench-%d", time.Now().UnixNano())
	}

	var progress io.Writer
	if isTerminal(stdout) {
		progress = stdout
	}
	res, err := c.run(ctx, cf.dial, progress)
	if res == nil {
		return err
	}
	res.URL = redactURL(cf.url)
	res.Embedded = embedded
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res.json()); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		res.print(stdout)
	}
	return err
}

// benchUsage reports a bad flag value.
func benchUsage(stderr io.Writer, msg string) error {
	fmt.Fprintf(stderr, "stomp bench: %s\n", msg)
	return errUsage
}

// validate checks the flag values.
func (c *benchConfig) validate() error {
	switch c.ack {
	case stomp.AckAuto, stomp.AckClient, stomp.AckClientIndividual:
	default:
		return fmt.Errorf("bad -a %q: want auto, client or client-individual", c.ack)
	}
	switch {
	case c.producers < 1 || c.producers > 1000:
		return fmt.Errorf("-producers must be 1 to 1000, not %d", c.producers)
	case c.consumers < 1 || c.consumers > 1000:
		return fmt.Errorf("-consumers must be 1 to 1000, not %d", c.consumers)
	case c.size < 0 || c.size > 64<<20:
		return fmt.Errorf("-size must be 0 to 64 MiB, not %d", c.size)
	case c.duration == 0 && c.n < 1:
		return fmt.Errorf("-n must be at least 1, not %d", c.n)
	case c.duration < 0:
		return fmt.Errorf("-duration must be positive, not %v", c.duration)
	case c.rate < 0:
		return fmt.Errorf("-rate must be 0 or more, not %v", c.rate)
	case c.buffer < 1:
		return fmt.Errorf("-buffer must be at least 1, not %d", c.buffer)
	case c.prefetch < 0:
		return fmt.Errorf("-prefetch must be 0 or more, not %d", c.prefetch)
	case c.timeout <= 0:
		return fmt.Errorf("-timeout must be positive, not %v", c.timeout)
	}
	return nil
}

// benchResult is what a run measured.
type benchResult struct {
	cfg      benchConfig
	URL      string
	Embedded bool
	Version  stomp.Version
	Sent     int64         // messages the producers sent
	Expected int64         // deliveries expected: Sent, times -consumers on a /topic/
	Received int64         // deliveries the consumers counted
	SendTime time.Duration // from the start to the last Send returning
	Elapsed  time.Duration // from the start to the last delivery (or giving up)
	Latency  histogram     // send (or due) time to delivery
}

// benchJSON is the --json object.
type benchJSON struct {
	URL         string  `json:"url"`
	Embedded    bool    `json:"embedded"`
	Version     string  `json:"version"`
	Destination string  `json:"destination"`
	Producers   int     `json:"producers"`
	Consumers   int     `json:"consumers"`
	Size        int     `json:"size"`
	Ack         string  `json:"ack"`
	Receipts    bool    `json:"receipts"`
	Rate        float64 `json:"rate"`
	Sent        int64   `json:"sent"`
	Expected    int64   `json:"expected"`
	Received    int64   `json:"received"`
	Seconds     float64 `json:"seconds"`
	SendSeconds float64 `json:"send_seconds"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	SendPerSec  float64 `json:"send_msgs_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	MeanMs      float64 `json:"mean_ms"`
}

func (r *benchResult) json() benchJSON {
	msf := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return benchJSON{
		URL: r.URL, Embedded: r.Embedded, Version: string(r.Version), Destination: r.cfg.dest,
		Producers: r.cfg.producers, Consumers: r.cfg.consumers, Size: r.cfg.size, Ack: string(r.cfg.ack),
		Receipts: r.cfg.receipts, Rate: r.cfg.rate,
		Sent: r.Sent, Expected: r.Expected, Received: r.Received,
		Seconds: r.Elapsed.Seconds(), SendSeconds: r.SendTime.Seconds(),
		MsgsPerSec: perSec(r.Received, r.Elapsed), SendPerSec: perSec(r.Sent, r.SendTime),
		MBPerSec: perSec(r.Received, r.Elapsed) * float64(r.cfg.size) / 1e6,
		P50ms:    msf(r.Latency.quantile(.50)), P90ms: msf(r.Latency.quantile(.90)),
		P99ms: msf(r.Latency.quantile(.99)), MaxMs: msf(r.Latency.max), MeanMs: msf(r.Latency.mean()),
	}
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// print writes the summary.
func (r *benchResult) print(w io.Writer) {
	c := r.cfg
	where := r.URL
	if r.Embedded {
		where += " (embedded)"
	}
	fmt.Fprintf(w, "broker   %s, STOMP %s\n", where, r.Version)
	load := "as fast as they go"
	if c.rate > 0 {
		load = fmt.Sprintf("offered %.0f msg/s", c.rate)
	}
	receipts := "no receipts"
	if c.receipts {
		receipts = "a receipt for each send"
	}
	fmt.Fprintf(w, "work     %s to %s, %s; ack %s, %s, %s\n", plural(c.producers, "producer"), plural(c.consumers, "consumer"),
		c.dest, c.ack, receipts, load)
	fmt.Fprintf(w, "send     %d x %d B in %v: %.0f msg/s, %.1f MB/s\n", r.Sent, c.size, r.SendTime.Round(time.Microsecond),
		perSec(r.Sent, r.SendTime), perSec(r.Sent, r.SendTime)*float64(c.size)/1e6)
	fmt.Fprintf(w, "receive  %d in %v end to end: %.0f msg/s", r.Received, r.Elapsed.Round(time.Microsecond), perSec(r.Received, r.Elapsed))
	if r.Received != r.Expected {
		fmt.Fprintf(w, " (%d expected)", r.Expected)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "latency  send to receive, %d messages: min %s, mean %s\n", r.Latency.n, ms(r.Latency.min), ms(r.Latency.mean()))
	r.Latency.draw(w)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// redactURL drops the password from u.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Redacted()
}

// run runs the benchmark: consumers subscribe (waiting for their receipts,
// so that a topic has them before the first message), then producers send,
// then run waits for every delivery. With progress set it rewrites a
// progress line there at most 10 times a second. It returns a result
// whenever the connections came up, with an error too if the run failed.
func (c *benchConfig) run(ctx context.Context, dial func(context.Context) (*stomp.Conn, error), progress io.Writer) (*benchResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := &benchResult{cfg: *c}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	topic := strings.HasPrefix(c.dest, "/topic/")

	var conns []*stomp.Conn
	defer func() {
		for _, conn := range conns {
			conn.Close()
		}
	}()
	dialAll := func(n int) ([]*stomp.Conn, error) {
		var out []*stomp.Conn
		for range n {
			conn, err := dial(ctx)
			if err != nil {
				return nil, err
			}
			conns = append(conns, conn)
			out = append(out, conn)
		}
		return out, nil
	}
	cons, err := dialAll(c.consumers)
	if err != nil {
		return nil, err
	}
	prods, err := dialAll(c.producers)
	if err != nil {
		return nil, err
	}
	res.Version = prods[0].Version()

	subOpts := []stomp.SubscribeOption{stomp.WithAck(c.ack), stomp.WithBuffer(c.buffer)}
	if c.ack != stomp.AckAuto {
		p := c.prefetch
		if p == 0 {
			p = c.buffer
		}
		subOpts = append(subOpts, stomp.WithPrefetch(p))
	}
	subs := make([]*stomp.Subscription, len(cons))
	for i, conn := range cons {
		var r *stomp.Receipt
		sub, err := conn.Subscribe(ctx, c.dest, append(subOpts, stomp.WithReceipt(&r))...)
		if err != nil {
			return nil, fmt.Errorf("consumer %d: %w", i+1, err)
		}
		if err := r.Wait(ctx); err != nil {
			return nil, fmt.Errorf("consumer %d: subscribe: %w", i+1, err)
		}
		subs[i] = sub
	}

	var (
		sent, received atomic.Int64
		target         atomic.Int64 // deliveries to wait for: unknown (max) until the producers are done
		doneOnce       sync.Once
		allIn          = make(chan struct{})
		endMu          sync.Mutex
		end            time.Time // when the last delivery arrived (endMu)
		failMu         sync.Mutex
		fail           error       // the first producer or consumer failure (failMu)
		stopping       atomic.Bool // set before the disconnects that end the subscriptions
	)
	target.Store(1<<62 - 1)
	setFail := func(err error) {
		failMu.Lock()
		if fail == nil {
			fail = err
		}
		failMu.Unlock()
		cancel()
	}
	finished := func() {
		doneOnce.Do(func() {
			endMu.Lock()
			end = time.Now()
			endMu.Unlock()
			close(allIn)
		})
	}

	hists := make([]histogram, len(subs))
	var consumers sync.WaitGroup
	for i, sub := range subs {
		consumers.Go(func() {
			h := &hists[i]
			for m := range sub.C() {
				v := m.Header.Get(benchHeader)
				id, stamp, ok := strings.Cut(v, ":")
				if !ok || id != run {
					if c.ack != stomp.AckAuto {
						_ = m.Ack(ctx)
					}
					continue // not this run's
				}
				if ns, err := strconv.ParseInt(stamp, 10, 64); err == nil {
					h.record(time.Since(time.Unix(0, ns)))
				}
				if c.ack != stomp.AckAuto {
					if err := m.Ack(ctx); err != nil && ctx.Err() == nil {
						setFail(fmt.Errorf("consumer %d: ack: %w", i+1, err))
						return
					}
				}
				if received.Add(1) >= target.Load() {
					finished()
				}
			}
			if err := sub.Err(); err != nil && ctx.Err() == nil && !stopping.Load() {
				hint := ""
				if errors.Is(err, stomp.ErrSlowConsumer) {
					hint = " (raise -buffer, or use -a client-individual: the broker then sends at most -prefetch ahead)"
				}
				setFail(fmt.Errorf("consumer %d: subscription ended: %w%s", i+1, err, hint))
			}
		})
	}

	var stopProgress func()
	if progress != nil {
		pctx, pcancel := context.WithCancel(ctx)
		var pwg sync.WaitGroup
		pwg.Go(func() { progressLine(pctx, progress, &sent, &received, 100*time.Millisecond) })
		stopProgress = func() { pcancel(); pwg.Wait() }
		defer func() {
			if stopProgress != nil {
				stopProgress()
			}
		}()
	}

	body := bytes.Repeat([]byte("x"), c.size)
	start := time.Now()
	var stopAt time.Time
	if c.duration > 0 {
		stopAt = start.Add(c.duration)
	}
	var producers sync.WaitGroup
	for i, conn := range prods {
		count := -1 // with -duration: until stopAt
		if c.n > 0 {
			count = c.n / c.producers
			if i < c.n%c.producers {
				count++
			}
		}
		producers.Go(func() {
			var interval time.Duration
			if c.rate > 0 {
				interval = time.Duration(float64(time.Second) * float64(c.producers) / c.rate)
			}
			// Producers start staggered by interval/producers, so that together they offer an even load.
			first := start.Add(interval * time.Duration(i) / time.Duration(c.producers))
			for j := 0; count < 0 || j < count; j++ {
				now := time.Now()
				if !stopAt.IsZero() && !now.Before(stopAt) {
					return
				}
				stamp := now
				if interval > 0 {
					stamp = first.Add(interval * time.Duration(j))
					if d := stamp.Sub(now); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
				}
				opts := []stomp.SendOption{stomp.WithHeader(benchHeader, run+":"+strconv.FormatInt(stamp.UnixNano(), 10))}
				var r *stomp.Receipt
				if c.receipts {
					opts = append(opts, stomp.WithReceipt(&r))
				}
				err := conn.Send(ctx, c.dest, body, opts...)
				if err == nil && r != nil {
					err = r.Wait(ctx)
				}
				if err != nil {
					if ctx.Err() == nil {
						setFail(fmt.Errorf("producer %d: %w", i+1, err))
					}
					return
				}
				sent.Add(1)
			}
		})
	}
	producers.Wait()
	res.SendTime = time.Since(start)
	res.Sent = sent.Load()
	res.Expected = res.Sent
	if topic {
		res.Expected *= int64(c.consumers)
	}
	target.Store(res.Expected)
	if received.Load() >= res.Expected {
		finished()
	}

	// Wait for the last deliveries while they keep coming.
	var waitErr error
	last, idle := received.Load(), time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
wait:
	for {
		select {
		case <-allIn:
			break wait
		case <-ctx.Done():
			waitErr = ctx.Err()
			break wait
		case now := <-tick.C:
			if got := received.Load(); got != last {
				last, idle = got, now
			} else if now.Sub(idle) > c.timeout {
				waitErr = fmt.Errorf("received %d of %d deliveries; none for %v", got, res.Expected, c.timeout)
				break wait
			}
		}
	}
	tick.Stop()
	endMu.Lock()
	if end.IsZero() {
		end = time.Now()
	}
	res.Elapsed = end.Sub(start)
	endMu.Unlock()
	if stopProgress != nil {
		stopProgress()
		stopProgress = nil
	}

	// Disconnect: the subscriptions' channels close, the consumers return.
	stopping.Store(true)
	var discErr error
	for _, conn := range conns {
		if err := disconnect(conn); err != nil && discErr == nil && waitErr == nil {
			discErr = err
		}
	}
	consumers.Wait()
	res.Received = received.Load()
	for i := range hists {
		res.Latency.merge(&hists[i])
	}

	failMu.Lock()
	defer failMu.Unlock()
	switch {
	case fail != nil:
		return res, fail
	case waitErr != nil:
		return res, waitErr
	}
	return res, discErr
}

// progressLine rewrites one line on w every interval until ctx ends: the
// delivery rate over the last interval, messages sent and received. It
// clears the line when it returns.
func progressLine(ctx context.Context, w io.Writer, sent, received *atomic.Int64, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt := received.Load(), time.Now()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-t.C:
			got := received.Load()
			rate := float64(got-last) / now.Sub(lastAt).Seconds()
			last, lastAt = got, now
			fmt.Fprintf(w, "\r\033[K%9.0f msg/s   sent %d   received %d", rate, sent.Load(), got)
		}
	}
}

// isTerminal reports whether w is a terminal (a character device), where
// a progress line that rewrites itself makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
