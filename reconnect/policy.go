package reconnect

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// The defaults of [Default] and of [Exponential] without options.
const (
	DefaultInitial    = 100 * time.Millisecond
	DefaultMax        = 15 * time.Second
	DefaultMultiplier = 2.0
	DefaultJitter     = 0.5
)

// ErrGaveUp is wrapped by [Schedule.Err] when a schedule stops giving
// delays: MaxAttempts rounds failed, the next round would start past
// MaxElapsed, or a [FromBackOff] backoff returned backoff.Stop.
var ErrGaveUp = errors.New("reconnect: gave up")

// ErrDisabled is [Schedule.Err] for a schedule of [Never]: the policy does
// not reconnect at all.
var ErrDisabled = errors.New("reconnect: reconnecting is disabled")

type kind uint8

const (
	kindDefault     kind = iota // the zero Policy
	kindNever                   // Never
	kindExponential             // Exponential
	kindBackOff                 // FromBackOff
)

// Policy says whether a lost connection is dialled again and how long to
// wait between rounds (a round is one try of every address). A Policy is
// a small value: copy it freely; it is safe for concurrent use as long as
// the function given to [FromBackOff] is. The zero Policy is [Default].
type Policy struct {
	kind       kind
	exp        settings               // kindExponential; the defaults for kindDefault
	newBackOff func() backoff.BackOff // kindBackOff
}

// settings are what the options of [Exponential] set.
type settings struct {
	initial, max       time.Duration
	multiplier, jitter float64
	maxAttempts        int
	maxElapsed         time.Duration
}

func defaultSettings() settings {
	return settings{
		initial:    DefaultInitial,
		max:        DefaultMax,
		multiplier: DefaultMultiplier,
		jitter:     DefaultJitter,
	}
}

// Default is the policy used when none is given: exponential backoff with
// jitter, forever. The first delay is about 100ms (±50%), each next one
// twice as long, none longer than 15s. It is the same as Exponential()
// without options, and as the zero Policy.
func Default() Policy { return Policy{} }

// Never is a policy that does not reconnect: [Policy.Enabled] is false and
// its schedules give no delay.
func Never() Policy { return Policy{kind: kindNever} }

// An Option changes one setting of [Exponential]. Options are applied in
// order (the last of two for the same setting wins) and the result is
// checked once, by Exponential.
type Option func(*settings)

// Initial sets the interval before the second round (the first is tried at
// once): d > 0, no larger than Max. Default 100ms.
func Initial(d time.Duration) Option { return func(s *settings) { s.initial = d } }

// Max bounds every delay: no wait between rounds is longer than d (d > 0).
// Default 15s.
//
// The interval stops growing once the jittered delay could exceed d, so at
// the cap delays spread evenly over [d·(1−J)/(1+J), d] for jitter J
// (5s to 15s by default) rather than piling up at d.
func Max(d time.Duration) Option { return func(s *settings) { s.max = d } }

// Multiplier sets how much each interval grows over the one before: f ≥ 1
// (1 gives constant delays). Default 2.
func Multiplier(f float64) Option { return func(s *settings) { s.multiplier = f } }

// Jitter sets how far each delay is spread at random around its interval,
// as a fraction: a delay is drawn from [i·(1−f), i·(1+f)] for interval i,
// 0 ≤ f ≤ 1 (0: no randomness). Default 0.5. Jitter keeps a fleet of
// clients that lost the same broker from dialling it in step.
func Jitter(f float64) Option { return func(s *settings) { s.jitter = f } }

// MaxAttempts gives up after n failed rounds, counting the first (n ≥ 0;
// 0, the default, means no limit).
func MaxAttempts(n int) Option { return func(s *settings) { s.maxAttempts = n } }

// MaxElapsed gives up when the next round would start more than d after
// the outage began ([Policy.Start]), measured with time.Now (d ≥ 0; 0, the
// default, means no limit).
func MaxElapsed(d time.Duration) Option { return func(s *settings) { s.maxElapsed = d } }

// Exponential is a policy of exponential backoff with jitter: the
// defaults of [Default] changed by opts. It returns an error, naming
// every bad value, when a setting is out of range; the Policy is then the
// zero Policy and must not be used in place of the one asked for.
func Exponential(opts ...Option) (Policy, error) {
	s := defaultSettings()
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	if err := s.check(); err != nil {
		return Policy{}, err
	}
	return Policy{kind: kindExponential, exp: s}, nil
}

func (s settings) check() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("reconnect: "+format, args...))
	}
	if s.initial <= 0 {
		bad("Initial must be > 0, not %v", s.initial)
	}
	if s.max <= 0 {
		bad("Max must be > 0, not %v", s.max)
	} else if s.initial > s.max {
		bad("Initial (%v) must not be larger than Max (%v)", s.initial, s.max)
	}
	if !(s.multiplier >= 1) || math.IsInf(s.multiplier, 0) { // also NaN
		bad("Multiplier must be a finite number ≥ 1, not %v", s.multiplier)
	}
	if !(s.jitter >= 0 && s.jitter <= 1) {
		bad("Jitter must be between 0 and 1, not %v", s.jitter)
	}
	if s.maxAttempts < 0 {
		bad("MaxAttempts must be ≥ 0, not %d", s.maxAttempts)
	}
	if s.maxElapsed < 0 {
		bad("MaxElapsed must be ≥ 0, not %v", s.maxElapsed)
	}
	return errors.Join(errs...)
}

// FromBackOff is a policy whose delays come from a backoff.BackOff:
// newBackOff is called once per outage ([Policy.Start]) and must return a
// fresh value (schedules are used from one goroutine each, and a BackOff is
// not safe for concurrent use). The schedule calls Reset on it first, then
// NextBackOff once per failed round, and gives up when that returns
// backoff.Stop (or any negative duration); limits such as
// backoff.WithMaxRetries or ExponentialBackOff.MaxElapsedTime are the
// BackOff's own. A nil newBackOff is an error.
func FromBackOff(newBackOff func() backoff.BackOff) (Policy, error) {
	if newBackOff == nil {
		return Policy{}, errors.New("reconnect: FromBackOff: the function is nil")
	}
	return Policy{kind: kindBackOff, newBackOff: newBackOff}, nil
}

// Enabled says whether the policy reconnects at all: false only for [Never].
func (p Policy) Enabled() bool { return p.kind != kindNever }

// String describes the policy for logs, e.g.
// "exponential(initial 100ms, multiplier 2, max 15s, jitter 0.5)".
func (p Policy) String() string {
	switch p.kind {
	case kindNever:
		return "never"
	case kindBackOff:
		return "backoff"
	}
	s := p.settings()
	str := fmt.Sprintf("exponential(initial %v, multiplier %s, max %v, jitter %s",
		s.initial, strconv.FormatFloat(s.multiplier, 'g', -1, 64), s.max, strconv.FormatFloat(s.jitter, 'g', -1, 64))
	if s.maxAttempts > 0 {
		str += fmt.Sprintf(", max attempts %d", s.maxAttempts)
	}
	if s.maxElapsed > 0 {
		str += fmt.Sprintf(", max elapsed %v", s.maxElapsed)
	}
	return str + ")"
}

func (p Policy) settings() settings {
	if p.kind == kindDefault {
		return defaultSettings()
	}
	return p.exp
}

// Start begins one outage: the returned Schedule gives the delays between
// its rounds, and MaxElapsed counts from now. Call it when the connection
// is lost, and again for the next outage. It allocates a Schedule (and, for
// [FromBackOff], calls its function); it does not block.
func (p Policy) Start() *Schedule {
	s := &Schedule{start: time.Now()}
	switch p.kind {
	case kindNever:
		s.disabled = true
	case kindBackOff:
		s.b = p.newBackOff()
		if s.b == nil {
			s.err = fmt.Errorf("%w: the FromBackOff function returned a nil BackOff", ErrGaveUp)
			return s
		}
		s.b.Reset()
	default:
		e := p.settings()
		// The interval stops growing where its jittered delay could pass
		// Max; Next clamps what is left over (an Initial close to Max, and
		// the nanosecond backoff/v4 may add to the upper bound).
		capped := time.Duration(float64(e.max) / (1 + e.jitter))
		if capped < e.initial {
			capped = e.initial
		}
		s.b = &backoff.ExponentialBackOff{
			InitialInterval:     e.initial,
			RandomizationFactor: e.jitter,
			Multiplier:          e.multiplier,
			MaxInterval:         capped,
			Stop:                backoff.Stop,
			Clock:               backoff.SystemClock, // time.Now: fake time in a synctest bubble
		}
		s.b.Reset()
		s.max = e.max
		s.maxAttempts = e.maxAttempts
		s.maxElapsed = e.maxElapsed
	}
	return s
}

// Schedule is one outage's sequence of delays between rounds, from
// [Policy.Start]. It is not safe for concurrent use: one reconnect loop
// owns it.
type Schedule struct {
	b           backoff.BackOff
	start       time.Time
	max         time.Duration // 0: no clamp (FromBackOff)
	maxAttempts int           // 0: no limit
	maxElapsed  time.Duration // 0: no limit
	disabled    bool          // Never

	attempts int
	err      error // set once Next has given up
}

// Next records that a round failed and returns how long to wait before the
// next one; ok is false when the schedule gives up instead (see [Schedule.Err]
// for why), and stays false. It does not block and does not allocate
// (except for the error when giving up).
func (s *Schedule) Next() (delay time.Duration, ok bool) {
	if s.err != nil {
		return 0, false
	}
	s.attempts++
	if s.disabled {
		s.err = ErrDisabled
		return 0, false
	}
	if s.maxAttempts > 0 && s.attempts >= s.maxAttempts {
		s.err = fmt.Errorf("%w after %d rounds (MaxAttempts %d)", ErrGaveUp, s.attempts, s.maxAttempts)
		return 0, false
	}
	d := s.b.NextBackOff()
	switch {
	case s.max > 0 && (d < 0 || d > s.max):
		// Exponential never says stop: a negative delay is a float
		// conversion that overflowed near the largest Duration.
		d = s.max
	case d < 0:
		s.err = fmt.Errorf("%w after %d rounds (the backoff said stop)", ErrGaveUp, s.attempts)
		return 0, false
	}
	if s.maxElapsed > 0 {
		if elapsed := time.Since(s.start); elapsed+d > s.maxElapsed {
			s.err = fmt.Errorf("%w after %d rounds in %v (MaxElapsed %v)", ErrGaveUp, s.attempts, elapsed, s.maxElapsed)
			return 0, false
		}
	}
	return d, true
}

// Attempts is the number of failed rounds recorded so far: the number of
// calls to Next, up to and including the one that gave up.
func (s *Schedule) Attempts() int { return s.attempts }

// Err is nil while the schedule gives delays; once Next has returned
// ok=false it says why: [ErrDisabled] for [Never], otherwise an error
// wrapping [ErrGaveUp].
func (s *Schedule) Err() error { return s.err }

// Sleep waits for d on a timer, or until ctx ends, whichever is first; it
// returns ctx.Err() when ctx ended (also when it had ended before the call),
// nil otherwise. d ≤ 0 does not wait. Inside a testing/synctest bubble the
// timer runs on the bubble's fake clock.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
