package reconnect

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const ms = time.Millisecond

func mustExponential(t *testing.T, opts ...Option) Policy {
	t.Helper()
	p, err := Exponential(opts...)
	if err != nil {
		t.Fatalf("Exponential: %v", err)
	}
	return p
}

// delays returns the first n delays of one schedule of p; it fails if the
// schedule gives up before.
func delays(t *testing.T, p Policy, n int) []time.Duration {
	t.Helper()
	s := p.Start()
	out := make([]time.Duration, n)
	for i := range out {
		d, ok := s.Next()
		if !ok {
			t.Fatalf("%v: gave up after %d rounds: %v", p, s.Attempts(), s.Err())
		}
		out[i] = d
	}
	return out
}

func TestExponentialWithoutJitterDoublesUpToMax(t *testing.T) {
	p := mustExponential(t, Jitter(0))
	var want []time.Duration
	for d := 100 * ms; d < 15*time.Second; d *= 2 {
		want = append(want, d) // 100ms ... 12.8s
	}
	for range 5 {
		want = append(want, 15*time.Second)
	}
	if got := delays(t, p, len(want)); !slices.Equal(got, want) {
		t.Errorf("delays\n got %v\nwant %v", got, want)
	}

	p = mustExponential(t, Jitter(0), Initial(time.Second), Multiplier(1.5), Max(4*time.Second))
	want = []time.Duration{time.Second, 1500 * ms, 2250 * ms, 3375 * ms, 4 * time.Second, 4 * time.Second}
	if got := delays(t, p, len(want)); !slices.Equal(got, want) {
		t.Errorf("delays\n got %v\nwant %v", got, want)
	}

	p = mustExponential(t, Jitter(0), Initial(time.Second), Multiplier(1))
	want = []time.Duration{time.Second, time.Second, time.Second, time.Second}
	if got := delays(t, p, len(want)); !slices.Equal(got, want) {
		t.Errorf("Multiplier(1): delays %v, want %v", got, want)
	}
}

// Each delay lies within the jitter band around its interval, no delay
// passes Max, and at the cap the delays still spread out.
func TestJitterBounds(t *testing.T) {
	for _, tt := range []struct {
		name         string
		p            Policy
		initial, max time.Duration
		jitter       float64
	}{
		{"default", Default(), 100 * ms, 15 * time.Second, 0.5},
		{"zero Policy", Policy{}, 100 * ms, 15 * time.Second, 0.5},
		{"no options", mustExponential(t), 100 * ms, 15 * time.Second, 0.5},
		{"jitter 0.25", mustExponential(t, Jitter(0.25), Initial(time.Second), Max(time.Minute)), time.Second, time.Minute, 0.25},
		{"jitter 1", mustExponential(t, Jitter(1), Initial(10*ms), Max(time.Second)), 10 * ms, time.Second, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const rounds, schedules = 20, 500
			capped := time.Duration(float64(tt.max) / (1 + tt.jitter))
			sums := make([]float64, rounds)
			var atCap []time.Duration
			for range schedules {
				interval := tt.initial
				for i, d := range delays(t, tt.p, rounds) {
					lo := time.Duration(float64(interval) * (1 - tt.jitter))
					hi := min(time.Duration(float64(interval)*(1+tt.jitter))+1, tt.max)
					if d < lo || d > hi {
						t.Fatalf("round %d: delay %v outside [%v, %v] (interval %v)", i+1, d, lo, hi, interval)
					}
					sums[i] += float64(d)
					if interval == capped {
						atCap = append(atCap, d)
					}
					interval = min(time.Duration(float64(interval)*2), capped)
				}
			}
			// The mean delay grows until the cap.
			for i := 1; i < rounds; i++ {
				if prev := tt.initial << (i - 1); prev*2 < capped/2 && sums[i] <= sums[i-1] {
					t.Errorf("mean delay of round %d (%v) not above round %d (%v)", i+1,
						time.Duration(sums[i]/schedules), i, time.Duration(sums[i-1]/schedules))
				}
			}
			if len(atCap) < 1000 {
				t.Fatalf("only %d delays at the cap", len(atCap))
			}
			lo := time.Duration(float64(capped) * (1 - tt.jitter))
			span := tt.max - lo
			if mn, mx := slices.Min(atCap), slices.Max(atCap); mn > lo+span/5 || mx < tt.max-span/5 {
				t.Errorf("delays at the cap span [%v, %v], want them spread over [%v, %v]", mn, mx, lo, tt.max)
			}
		})
	}
}

func TestJitterIsRandom(t *testing.T) {
	a, b := delays(t, Default(), 10), delays(t, Default(), 10)
	if slices.Equal(a, b) {
		t.Errorf("two default schedules gave the same delays %v", a)
	}
}

// Durations near the largest one neither overflow nor pass Max.
func TestHugeIntervals(t *testing.T) {
	p := mustExponential(t, Initial(time.Hour), Max(math.MaxInt64), Multiplier(1e9), Jitter(1))
	for i, d := range delays(t, p, 50) {
		if d < 0 {
			t.Fatalf("round %d: negative delay %v", i+1, d)
		}
	}
}

func TestMaxAttempts(t *testing.T) {
	s := mustExponential(t, MaxAttempts(3)).Start()
	for i := 1; i <= 2; i++ {
		if _, ok := s.Next(); !ok {
			t.Fatalf("round %d: gave up: %v", i, s.Err())
		}
		if s.Attempts() != i || s.Err() != nil {
			t.Fatalf("after round %d: Attempts %d, Err %v", i, s.Attempts(), s.Err())
		}
	}
	if d, ok := s.Next(); ok || d != 0 {
		t.Fatalf("third failed round: Next = %v, %v; want 0, false", d, ok)
	}
	if !errors.Is(s.Err(), ErrGaveUp) || !strings.Contains(s.Err().Error(), "MaxAttempts 3") {
		t.Errorf("Err = %v, want ErrGaveUp naming MaxAttempts 3", s.Err())
	}
	if _, ok := s.Next(); ok || s.Attempts() != 3 {
		t.Errorf("after giving up: ok %v, Attempts %d; want false, 3", ok, s.Attempts())
	}

	s = mustExponential(t, MaxAttempts(1)).Start()
	if _, ok := s.Next(); ok || s.Attempts() != 1 {
		t.Errorf("MaxAttempts(1): the first failed round did not end it (Attempts %d)", s.Attempts())
	}
}

// MaxElapsed is measured on the clock: the fake one of a bubble.
func TestMaxElapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustExponential(t, Jitter(0), MaxElapsed(time.Minute))
		start := time.Now()
		s := p.Start()
		var rounds []time.Duration // when each round starts
		for {
			rounds = append(rounds, time.Since(start))
			d, ok := s.Next()
			if !ok {
				break
			}
			if err := Sleep(t.Context(), d); err != nil {
				t.Fatal(err)
			}
		}
		// 0, 0.1, 0.3, ... 25.5s, then 15s apart; 55.5s+15s would pass 60s.
		want := []time.Duration{0, 100 * ms, 300 * ms, 700 * ms, 1500 * ms, 3100 * ms, 6300 * ms, 12700 * ms, 25500 * ms, 40500 * ms, 55500 * ms}
		if !slices.Equal(rounds, want) {
			t.Errorf("rounds started at\n %v\nwant %v", rounds, want)
		}
		if s.Attempts() != len(want) || !errors.Is(s.Err(), ErrGaveUp) || !strings.Contains(s.Err().Error(), "MaxElapsed 1m0s") {
			t.Errorf("Attempts %d, Err %v", s.Attempts(), s.Err())
		}
	})
}

// The time a round takes (a dial timing out) counts towards MaxElapsed.
func TestMaxElapsedCountsSlowRounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := mustExponential(t, Jitter(0), Initial(time.Second), Multiplier(1), MaxElapsed(time.Minute)).Start()
		for {
			time.Sleep(20 * time.Second) // the round
			d, ok := s.Next()
			if !ok {
				break
			}
			if d != time.Second {
				t.Fatalf("delay %v", d)
			}
			time.Sleep(d)
		}
		// rounds end at 20s, 41s, 62s: the third is past the limit.
		if s.Attempts() != 3 {
			t.Errorf("gave up after %d rounds, want 3 (%v)", s.Attempts(), s.Err())
		}
	})
}

func TestNever(t *testing.T) {
	p := Never()
	if p.Enabled() {
		t.Error("Never().Enabled()")
	}
	s := p.Start()
	for range 3 {
		if d, ok := s.Next(); ok || d != 0 {
			t.Fatalf("Never: Next = %v, %v", d, ok)
		}
	}
	if s.Err() != ErrDisabled || s.Attempts() != 1 {
		t.Errorf("Never: Err %v, Attempts %d", s.Err(), s.Attempts())
	}
	if p.String() != "never" {
		t.Errorf("String %q", p.String())
	}
	for _, p := range []Policy{{}, Default(), mustExponential(t, MaxAttempts(1))} {
		if !p.Enabled() {
			t.Errorf("%v not Enabled", p)
		}
	}
}

type countingBackOff struct {
	resets, nexts int
	d             time.Duration
}

func (b *countingBackOff) Reset() { b.resets++ }
func (b *countingBackOff) NextBackOff() time.Duration {
	b.nexts++
	return b.d
}

func TestFromBackOff(t *testing.T) {
	p, err := FromBackOff(func() backoff.BackOff { return backoff.NewConstantBackOff(3 * time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled() {
		t.Error("not Enabled")
	}
	for i, d := range delays(t, p, 100) {
		if d != 3*time.Second {
			t.Fatalf("round %d: %v, want the constant 3s", i+1, d)
		}
	}

	// A fresh BackOff per outage, Reset before use.
	var made []*countingBackOff
	p, err = FromBackOff(func() backoff.BackOff {
		b := &countingBackOff{d: 7 * ms}
		made = append(made, b)
		return b
	})
	if err != nil {
		t.Fatal(err)
	}
	delays(t, p, 4)
	delays(t, p, 2)
	if len(made) != 2 || made[0].resets != 1 || made[0].nexts != 4 || made[1].resets != 1 || made[1].nexts != 2 {
		t.Errorf("BackOffs made %d: first %+v", len(made), made[0])
	}

	// backoff.Stop gives up, and so do the BackOff's own limits.
	for _, tt := range []struct {
		name string
		b    func() backoff.BackOff
		ok   int // rounds given a delay
	}{
		{"StopBackOff", func() backoff.BackOff { return &backoff.StopBackOff{} }, 0},
		{"WithMaxRetries", func() backoff.BackOff { return backoff.WithMaxRetries(backoff.NewConstantBackOff(ms), 2) }, 2},
		{"negative", func() backoff.BackOff { return &countingBackOff{d: -5} }, 0},
		{"nil BackOff", func() backoff.BackOff { return nil }, 0},
	} {
		p, err := FromBackOff(tt.b)
		if err != nil {
			t.Fatal(err)
		}
		s := p.Start()
		n := 0
		for {
			if _, ok := s.Next(); !ok {
				break
			}
			n++
			if n > 10 {
				break
			}
		}
		if n != tt.ok || !errors.Is(s.Err(), ErrGaveUp) {
			t.Errorf("%s: %d delays before giving up (want %d), Err %v", tt.name, n, tt.ok, s.Err())
		}
	}

	if _, err := FromBackOff(nil); err == nil || !strings.HasPrefix(err.Error(), "reconnect: ") {
		t.Errorf("FromBackOff(nil): %v", err)
	}
}

// backoff/v4's own MaxElapsedTime reads backoff.SystemClock, which is
// time.Now: inside a bubble it runs on fake time as well.
func TestFromBackOffMaxElapsedTimeInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := FromBackOff(func() backoff.BackOff {
			return backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(10 * time.Second))
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		s := p.Start()
		for {
			d, ok := s.Next()
			if !ok {
				break
			}
			time.Sleep(d)
		}
		if elapsed := time.Since(start); elapsed > 10*time.Second || elapsed < 3*time.Second {
			t.Errorf("gave up after %v of fake time, want no later than 10s (and not long before)", elapsed)
		}
		if s.Attempts() < 3 || !errors.Is(s.Err(), ErrGaveUp) {
			t.Errorf("Attempts %d, Err %v", s.Attempts(), s.Err())
		}
	})
}

func TestExponentialRejectsBadValues(t *testing.T) {
	for _, tt := range []struct {
		opts []Option
		want []string // every one in the error
	}{
		{[]Option{Initial(0)}, []string{"Initial must be > 0"}},
		{[]Option{Initial(-time.Second)}, []string{"Initial must be > 0, not -1s"}},
		{[]Option{Max(0)}, []string{"Max must be > 0"}},
		{[]Option{Initial(time.Minute), Max(time.Second)}, []string{"Initial (1m0s) must not be larger than Max (1s)"}},
		{[]Option{Multiplier(0.5)}, []string{"Multiplier"}},
		{[]Option{Multiplier(math.NaN())}, []string{"Multiplier"}},
		{[]Option{Multiplier(math.Inf(1))}, []string{"Multiplier"}},
		{[]Option{Jitter(-0.1)}, []string{"Jitter"}},
		{[]Option{Jitter(1.5)}, []string{"Jitter"}},
		{[]Option{Jitter(math.NaN())}, []string{"Jitter"}},
		{[]Option{MaxAttempts(-1)}, []string{"MaxAttempts"}},
		{[]Option{MaxElapsed(-time.Second)}, []string{"MaxElapsed"}},
		{[]Option{Initial(0), Jitter(2), MaxAttempts(-3)}, []string{"Initial", "Jitter", "MaxAttempts"}},
	} {
		p, err := Exponential(tt.opts...)
		if err == nil {
			t.Errorf("%v: no error", tt.want)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
		for line := range strings.SplitSeq(err.Error(), "\n") {
			if !strings.HasPrefix(line, "reconnect: ") {
				t.Errorf("error line %q does not start with the package name", line)
			}
		}
		if p.String() != Default().String() {
			t.Errorf("the Policy beside an error is %v, want the zero Policy", p)
		}
	}

	// Valid edges, and the last of two options wins.
	for _, opts := range [][]Option{
		{Jitter(0)}, {Jitter(1)}, {Multiplier(1)}, {Initial(time.Second), Max(time.Second)},
		{MaxAttempts(0), MaxElapsed(0)}, {Initial(0), Initial(ms)}, {nil},
	} {
		if _, err := Exponential(opts...); err != nil {
			t.Errorf("valid options refused: %v", err)
		}
	}
}

func TestString(t *testing.T) {
	for _, tt := range []struct {
		p    Policy
		want string
	}{
		{Default(), "exponential(initial 100ms, multiplier 2, max 15s, jitter 0.5)"},
		{mustExponential(t, Multiplier(1.5), MaxAttempts(4), MaxElapsed(time.Minute)),
			"exponential(initial 100ms, multiplier 1.5, max 15s, jitter 0.5, max attempts 4, max elapsed 1m0s)"},
		{Never(), "never"},
	} {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Sleep(t.Context(), 5*time.Second); err != nil || time.Since(start) != 5*time.Second {
			t.Errorf("Sleep(5s) = %v after %v", err, time.Since(start))
		}

		start = time.Now()
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(2*time.Second, cancel)
		if err := Sleep(ctx, time.Hour); err != context.Canceled || time.Since(start) != 2*time.Second {
			t.Errorf("cancelled at 2s: Sleep(1h) = %v after %v", err, time.Since(start))
		}

		start = time.Now()
		if err := Sleep(ctx, time.Hour); err != context.Canceled || time.Since(start) != 0 {
			t.Errorf("ended ctx: Sleep = %v after %v", err, time.Since(start))
		}
		if err := Sleep(ctx, 0); err != context.Canceled {
			t.Errorf("ended ctx: Sleep(0) = %v", err)
		}

		dctx, dcancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer dcancel()
		start = time.Now()
		if err := Sleep(dctx, time.Minute); err != context.DeadlineExceeded || time.Since(start) != 3*time.Second {
			t.Errorf("deadline 3s: Sleep(1m) = %v after %v", err, time.Since(start))
		}

		start = time.Now()
		for _, d := range []time.Duration{0, -time.Second} {
			if err := Sleep(t.Context(), d); err != nil {
				t.Errorf("Sleep(%v) = %v", d, err)
			}
		}
		if time.Since(start) != 0 {
			t.Errorf("Sleep of no time took %v", time.Since(start))
		}
	})
}
