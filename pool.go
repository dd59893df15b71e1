package stomp

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// Handler handles one message for a Pool. In the client ack modes the Pool
// acknowledges the message when the handler returns nil, and nacks it (or
// leaves it for redelivery) when it returns an error or panics; the
// handler must not Ack or Nack the message itself. ctx is the Pool's: it
// ends when the Pool's ctx does or when Stop gives up waiting.
type Handler func(ctx context.Context, m Message) error

// PanicError is what a Pool reports for a handler that panicked: the
// panic is recovered, the message treated as failed.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // the handler goroutine's stack at the panic
}

// Error returns "stomp: handler panic: <value>".
func (e *PanicError) Error() string { return fmt.Sprintf("stomp: handler panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// PoolOption configures Subscription.Serve.
type PoolOption func(*poolConfig)

type poolConfig struct {
	onError func(Message, error)
	nack    bool
}

// WithErrorFunc sets the function a Pool calls, on the worker's goroutine,
// with each message whose handler failed (its error, or a *PanicError) or
// whose Ack or Nack failed (other than for a reconnect, which the Pool
// hides: the broker redelivers). By default failures are logged at error
// level with the Conn's logger (WithLogger).
func WithErrorFunc(f func(m Message, err error)) PoolOption {
	return func(c *poolConfig) { c.onError = f }
}

// WithNackOnError says what a Pool does with a message whose handler
// failed, in the client ack modes: NACK it (true, the default, on STOMP 1.1
// and 1.2: RabbitMQ and the embedded broker redeliver it at once; ActiveMQ
// Classic moves it to its dead-letter queue), or leave it unacknowledged
// (false, and always on 1.0, which has no NACK): the broker redelivers it
// once the subscription or the connection ends. Left messages count
// against the prefetch; in AckClient mode one also holds back the
// cumulative ACK of every later message.
func WithNackOnError(on bool) PoolOption {
	return func(c *poolConfig) { c.nack = on }
}

// Pool runs a Handler on a fixed number of goroutines over one
// subscription's messages (see Subscription.Serve). It survives reconnects
// as the subscription does: messages of a lost transport that are still in
// the channel are skipped (the broker redelivers them), and handling goes
// on with the next transport's. Methods are safe for concurrent use.
type Pool struct {
	sub *Subscription
	h   Handler
	cfg poolConfig

	ctx      context.Context    // the handlers': the caller's, until Stop gives up
	cancel   context.CancelFunc // ends ctx
	settle   context.Context    // of the Acks and Nacks: the caller's ctx only
	stopping chan struct{}      // closed by Stop: take no new message
	stopOnce sync.Once
	doneOnce sync.Once
	g        errgroup.Group
	workers  chan struct{} // closed once every worker has returned
	done     chan struct{} // closed once the Pool has ended (after the UNSUBSCRIBE of Stop)
	err      error         // why it ended; written before done is closed

	inFlight                              atomic.Int64
	handled, acked, failed, panics, stale atomic.Uint64
}

// PoolStats counts what a Pool has done.
type PoolStats struct {
	Handled  uint64 // handler calls that returned (or panicked)
	Acked    uint64 // messages acknowledged after their handler returned nil
	Failed   uint64 // handler calls that returned an error or panicked
	Panics   uint64 // handler calls that panicked
	Stale    uint64 // messages skipped or not acknowledged because their transport was lost (redelivered by the broker)
	InFlight int64  // handler calls running now
}

// Serve starts workers goroutines that take messages from the
// subscription's channel and call h with each, and returns at once. At most
// workers messages are in the handlers at a time; the broker holds back
// what is beyond the prefetch (WithPrefetch; in the client ack modes it is
// by default the subscription's buffer), so the messages the client holds
// are bounded by the prefetch however slow the handlers are: subscribe with
// a prefetch of at least workers to keep them busy.
//
// In the client ack modes the Pool settles each message when its handler
// returns: Ack on nil; on an error or a panic (recovered, reported as a
// *PanicError), Nack or nothing (see WithNackOnError). Acks are correct
// whatever order the handlers finish in (see Message.Ack). In AckAuto mode
// there is nothing to settle: a failure is only reported. Failures go to
// WithErrorFunc's function.
//
// The Pool ends with Stop, with ctx (the handlers' ctx: its end stops the
// workers at once, leaving the messages in work unsettled), or when the
// subscription ends (Unsubscribe, the Conn's end). It does not start if
// workers < 1, h is nil or the subscription has ended.
//
// Cost: workers goroutines and one more that waits for them, for the
// Pool's life; per message, the handler call and the Ack (or Nack), which
// blocks the worker until the frame is flushed.
func (s *Subscription) Serve(ctx context.Context, workers int, h Handler, opts ...PoolOption) (*Pool, error) {
	switch {
	case workers < 1:
		return nil, fmt.Errorf("stomp: Serve: %d workers, want at least 1", workers)
	case h == nil:
		return nil, errors.New("stomp: Serve: nil handler")
	case s.isEnded():
		return nil, fmt.Errorf("stomp: Serve: %w", ErrSubscriptionEnded)
	}
	p := &Pool{
		sub:      s,
		h:        h,
		cfg:      poolConfig{nack: true},
		settle:   ctx,
		stopping: make(chan struct{}),
		workers:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, o := range opts {
		if o != nil {
			o(&p.cfg)
		}
	}
	if n, _ := strconv.Atoi(s.header.Get("prefetch-count")); n > 0 && n < workers && s.conn != nil {
		s.conn.log.Warn("stomp: Serve: prefetch below the workers: some will idle",
			"subscription", s.id, "prefetch", n, "workers", workers)
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	for range workers {
		p.g.Go(p.work)
	}
	go func() {
		p.g.Wait()
		close(p.workers)
		select {
		case <-p.stopping: // Stop finishes the Pool
			return
		default:
		}
		p.finish(p.endErr())
	}()
	return p, nil
}

// endErr is why the workers returned without Stop.
func (p *Pool) endErr() error {
	if err := p.sub.Err(); err != nil {
		return err
	}
	if p.sub.isEnded() {
		return ErrSubscriptionEnded // Unsubscribe by someone else
	}
	return p.ctx.Err()
}

// finish ends the Pool once: the workers may have ended by themselves
// (the subscription ended) just as Stop was called.
func (p *Pool) finish(err error) {
	p.doneOnce.Do(func() {
		p.err = err
		p.cancel()
		close(p.done)
	})
}

// work is one worker goroutine.
func (p *Pool) work() error {
	ch := p.sub.C()
	for {
		select { // Stop wins over a message that is ready
		case <-p.stopping:
			return nil
		case <-p.ctx.Done():
			return nil
		default:
		}
		select {
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			p.handle(m)
		case <-p.stopping:
			return nil
		case <-p.ctx.Done():
			return nil
		}
	}
}

// handle runs the handler on m and settles m.
func (p *Pool) handle(m Message) {
	if m.sess != nil && m.conn != nil && m.sess != m.conn.current() {
		p.stale.Add(1) // its transport was lost: the broker redelivers it
		return
	}
	p.inFlight.Add(1)
	err := p.call(m)
	p.inFlight.Add(-1)
	p.handled.Add(1)
	if err != nil {
		p.failed.Add(1)
		p.report(m, err)
	}
	if m.mode == AckAuto || m.mode == "" {
		return
	}
	var serr error
	switch {
	case err == nil:
		if serr = m.Ack(p.settle); serr == nil {
			p.acked.Add(1)
		}
	case !p.cfg.nack || m.sess == nil || m.sess.version == V10:
		return // left for redelivery
	case p.ctx.Err() != nil:
		return // given up on: left for redelivery
	default:
		serr = m.Nack(p.settle)
	}
	switch {
	case serr == nil:
	case errors.Is(serr, ErrStaleMessage), errors.Is(serr, ErrConnectionLost):
		p.stale.Add(1)
	default:
		p.report(m, serr)
	}
}

// call runs the handler, recovering a panic.
func (p *Pool) call(m Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			p.panics.Add(1)
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return p.h(p.ctx, m)
}

func (p *Pool) report(m Message, err error) {
	if p.cfg.onError != nil {
		p.cfg.onError(m, err)
		return
	}
	if c := p.sub.conn; c != nil {
		c.log.Error("stomp: pool: message failed", "subscription", p.sub.id, "destination", m.Destination,
			"message-id", m.ID, "redelivered", m.Redelivered, "err", err)
	}
}

// Stop stops the Pool gracefully: the workers take no new message, the
// handlers in progress finish and their messages are settled, then the
// subscription is unsubscribed (the broker gets back the messages that
// were prefetched but not handled: the embedded broker and ActiveMQ at
// once, RabbitMQ when the connection ends). If ctx ends first, the
// handlers' ctx is cancelled, Stop unsubscribes without waiting for them
// (their messages stay unsettled and are redelivered) and returns
// ctx.Err(); the Pool ends once they return. Stop blocks until then, or
// ctx ends; calling it again waits again. On a Pool that has ended by
// itself it returns nil at once.
func (p *Pool) Stop(ctx context.Context) error {
	first := false
	p.stopOnce.Do(func() {
		first = true
		close(p.stopping)
	})
	if !first {
		select {
		case <-p.done:
			return p.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	select {
	case <-p.done: // it had ended by itself
		return nil
	default:
	}
	select {
	case <-p.workers:
	case <-ctx.Done():
		p.cancel()
		// Unsubscribe even so: without it the broker would keep what the
		// subscription holds. Its wait is bounded by the Conn.
		go func() {
			p.sub.Unsubscribe(context.WithoutCancel(ctx))
			<-p.workers
			p.finish(nil)
		}()
		return ctx.Err()
	}
	err := p.sub.Unsubscribe(ctx)
	if errors.Is(err, ErrClosed) {
		err = nil // the Conn has ended: nothing to unsubscribe from
	}
	p.finish(nil)
	return err
}

// Done returns a channel closed once the Pool has ended: after Stop has
// unsubscribed, or once its ctx has ended or its subscription has ended
// and every handler has returned.
func (p *Pool) Done() <-chan struct{} { return p.done }

// Err returns why the Pool ended: nil while it runs and after Stop; the
// subscription's error (ErrClosed when the Conn was closed, ...);
// ErrSubscriptionEnded after an Unsubscribe that was not Stop's; or the
// ctx's error.
func (p *Pool) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stats returns what the Pool has done so far.
func (p *Pool) Stats() PoolStats {
	return PoolStats{
		Handled:  p.handled.Load(),
		Acked:    p.acked.Load(),
		Failed:   p.failed.Load(),
		Panics:   p.panics.Load(),
		Stale:    p.stale.Load(),
		InFlight: p.inFlight.Load(),
	}
}
