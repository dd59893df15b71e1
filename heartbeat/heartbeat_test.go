package heartbeat

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const ms = time.Millisecond

func TestParse(t *testing.T) {
	valid := []struct {
		in   string
		want Settings
	}{
		{"", Settings{}}, // header absent
		{"0,0", Settings{}},
		{"1000,1000", Settings{1000 * ms, 1000 * ms}}, // RabbitMQ, ActiveMQ
		{"10000,0", Settings{10 * time.Second, 0}},
		{"0,5000", Settings{0, 5 * time.Second}},
		{"1,2", Settings{1 * ms, 2 * ms}},
		{"0100,007", Settings{100 * ms, 7 * ms}}, // leading zeros are still decimal
		{"9223372036854,9223372036854", Settings{9223372036854 * ms, 9223372036854 * ms}},
	}
	for _, tt := range valid {
		got, err := Parse(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, nil", tt.in, got, err, tt.want)
		}
	}

	invalid := []string{
		"1000",
		"1000,",
		",1000",
		",",
		"1000, 1000", // no client we know sends spaces; header values are never trimmed
		" 1000,1000",
		"1000,1000 ",
		"1000 ,1000",
		"1000\t,1000",
		"-1,0",
		"0,-1",
		"+1,0",
		"1.5,0",
		"1e3,0",
		"0x10,0",
		"1_000,0",
		"a,b",
		"1000;1000",
		"1000,1000,1000",
		"9223372036855,0",        // more milliseconds than a time.Duration holds
		"0,99999999999999999999", // more than a uint64 holds
		"１,2",                    // non-ASCII digit
	}
	for _, in := range invalid {
		got, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, nil; want an error", in, got)
			continue
		}
		if got != (Settings{}) {
			t.Errorf("Parse(%q) returned %+v with its error; want zero Settings", in, got)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v does not match ErrInvalid", in, err)
		}
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Value != in {
			t.Errorf("Parse(%q) error %#v: want a *ParseError with Value %q", in, err, in)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "heartbeat: ") || !strings.Contains(msg, strconv.Quote(in)) {
			t.Errorf("Parse(%q) error %q: want the heartbeat: prefix and the quoted value", in, msg)
		}
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		in   Settings
		want string
	}{
		{Settings{}, "0,0"},
		{Settings{1000 * ms, 1000 * ms}, "1000,1000"},
		{Settings{10 * time.Second, 0}, "10000,0"},
		{Settings{0, time.Minute}, "0,60000"},
		{Settings{1, 500 * time.Microsecond}, "1,1"},              // below 1 ms but not zero: 1, never "none"
		{Settings{1500 * time.Microsecond, 999*ms + 1}, "2,1000"}, // rounded up
		{Settings{-time.Second, -1}, "0,0"},
		{Settings{math.MaxInt64, math.MaxInt64}, "9223372036854,9223372036854"}, // what Parse still accepts
	}
	for _, tt := range tests {
		got := tt.in.String()
		if got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.in, got, tt.want)
		}
		back, err := Parse(got)
		if err != nil {
			t.Errorf("Parse(%q) (from String) failed: %v", got, err)
		}
		if tt.in.Send%ms == 0 && tt.in.Recv%ms == 0 && tt.in.Send >= 0 && tt.in.Recv >= 0 && back != tt.in {
			t.Errorf("round trip of %+v gave %+v", tt.in, back)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "0,0", "1000,1000", "1000, 1000", "-1,0", "9223372036855,0", "0100,7", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := Parse(v)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not match ErrInvalid", v, err)
			}
			return
		}
		if s.Send < 0 || s.Recv < 0 || s.Send%ms != 0 || s.Recv%ms != 0 {
			t.Fatalf("Parse(%q) = %+v: want non-negative whole milliseconds", v, s)
		}
		back, err := Parse(s.String())
		if err != nil || back != s {
			t.Fatalf("Parse(%q).String() = %q, which parses to %+v, %v", v, s.String(), back, err)
		}
	})
}

func TestNegotiate(t *testing.T) {
	// client is CONNECT's heart-beat:cx,cy; server is CONNECTED's heart-beat:sx,sy.
	// The client sends every max(cx,sy) and expects data every max(sx,cy).
	tests := []struct {
		name               string
		client, server     Settings
		clientSend, toRecv time.Duration // as seen by the client
	}{
		{"none", Settings{}, Settings{}, 0, 0},
		{"client cannot send (cx=0)", Settings{0, 300 * ms}, Settings{200 * ms, 400 * ms}, 0, 300 * ms},
		{"client wants none (cy=0)", Settings{100 * ms, 0}, Settings{200 * ms, 400 * ms}, 400 * ms, 0},
		{"server cannot send (sx=0)", Settings{100 * ms, 300 * ms}, Settings{0, 400 * ms}, 400 * ms, 0},
		{"server wants none (sy=0)", Settings{100 * ms, 300 * ms}, Settings{200 * ms, 0}, 0, 300 * ms},
		{"client only sends", Settings{100 * ms, 0}, Settings{0, 400 * ms}, 400 * ms, 0},
		{"client only receives", Settings{0, 300 * ms}, Settings{200 * ms, 0}, 0, 300 * ms},
		// All four numbers differ, so any swap of cx/cy/sx/sy changes the answer.
		{"client slower both ways", Settings{5000 * ms, 7000 * ms}, Settings{1000 * ms, 3000 * ms}, 5000 * ms, 7000 * ms},
		{"server slower both ways", Settings{1000 * ms, 3000 * ms}, Settings{5000 * ms, 7000 * ms}, 7000 * ms, 5000 * ms},
		{"cx and sy decide client->server", Settings{1000 * ms, 2000 * ms}, Settings{3000 * ms, 4000 * ms}, 4000 * ms, 3000 * ms},
		{"sx and cy decide server->client", Settings{4000 * ms, 3000 * ms}, Settings{2000 * ms, 1000 * ms}, 4000 * ms, 3000 * ms},
		{"equal", Settings{1000 * ms, 1000 * ms}, Settings{1000 * ms, 1000 * ms}, 1000 * ms, 1000 * ms},
		{"negative is none", Settings{-1, 1000 * ms}, Settings{-1, 1000 * ms}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send, recv := Negotiate(tt.client, tt.server)
			if send != tt.clientSend || recv != tt.toRecv {
				t.Errorf("client: Negotiate(%+v, %+v) = %v, %v; want %v, %v",
					tt.client, tt.server, send, recv, tt.clientSend, tt.toRecv)
			}
			// The server's view is the same pair of directions, seen from the other end.
			send, recv = Negotiate(tt.server, tt.client)
			if send != tt.toRecv || recv != tt.clientSend {
				t.Errorf("server: Negotiate(%+v, %+v) = %v, %v; want %v, %v",
					tt.server, tt.client, send, recv, tt.toRecv, tt.clientSend)
			}
		})
	}
}

func TestTimeoutError(t *testing.T) {
	err := error(&TimeoutError{Interval: time.Second, Silence: 2100 * ms})
	if got, want := err.Error(), "heartbeat: no data from peer for 2.1s (expected every 1s)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrTimeout) {
		t.Error("TimeoutError does not match ErrTimeout")
	}
	if errors.Is(err, ErrInvalid) {
		t.Error("TimeoutError matches ErrInvalid")
	}
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestMonitorFiresAfterTimeoutNotBefore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 2)
		defer m.Stop()
		if m.Timeout() != 2*time.Second {
			t.Fatalf("Timeout() = %v, want 2s", m.Timeout())
		}
		time.Sleep(2*time.Second - 1)
		synctest.Wait()
		if isClosed(m.Dead()) || m.Err() != nil {
			t.Fatalf("dead after 2s-1ns of silence: %v", m.Err())
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !isClosed(m.Dead()) {
			t.Fatal("not dead after 2s of silence")
		}
		var te *TimeoutError
		if err := m.Err(); !errors.As(err, &te) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("Err() = %v, want a *TimeoutError", err)
		}
		if te.Interval != time.Second || te.Silence != 2*time.Second {
			t.Errorf("Err() = %+v, want Interval 1s, Silence 2s", te)
		}
	})
}

func TestMonitorTouchPostpones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 0) // DefaultTolerance
		defer m.Stop()
		var deadAt time.Time
		done := make(chan struct{})
		go func() {
			<-m.Dead()
			deadAt = time.Now()
			close(done)
		}()
		start := time.Now()
		// Data just inside the timeout, many times over: never dead.
		for range 100 {
			time.Sleep(1999 * ms)
			m.Touch()
		}
		lastTouch := time.Now()
		synctest.Wait()
		if isClosed(m.Dead()) {
			t.Fatalf("dead although data came every 1.999s: %v", m.Err())
		}
		<-done
		if got := deadAt.Sub(lastTouch); got != 2*time.Second {
			t.Errorf("dead %v after the last Touch, want 2s (started %v before)", got, lastTouch.Sub(start))
		}
		var te *TimeoutError
		if !errors.As(m.Err(), &te) || te.Silence != 2*time.Second {
			t.Errorf("Err() = %v, want silence 2s", m.Err())
		}
	})
}

func TestMonitorStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 1.5)
		time.Sleep(time.Second)
		m.Stop()
		m.Stop() // idempotent
		m.Touch()
		time.Sleep(time.Hour)
		synctest.Wait()
		if isClosed(m.Dead()) || m.Err() != nil {
			t.Fatalf("stopped Monitor fired: %v", m.Err())
		}
	})
}

func TestMonitorStopAtDeadline(t *testing.T) {
	// Stop at the very instant the timer is due: either the callback ran first
	// (dead, with an error) or Stop won (never dead). Nothing in between.
	for range 50 {
		synctest.Test(t, func(t *testing.T) {
			m := NewMonitor(time.Second, 1)
			time.Sleep(time.Second)
			m.Stop()
			synctest.Wait()
			wasDead := isClosed(m.Dead())
			time.Sleep(time.Hour)
			synctest.Wait()
			if isClosed(m.Dead()) != wasDead || (m.Err() != nil) != wasDead {
				t.Fatalf("state changed after Stop: was dead %v, now dead %v, err %v", wasDead, isClosed(m.Dead()), m.Err())
			}
		})
	}
}

func TestMonitorStopAfterDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 1)
		<-m.Dead()
		m.Stop()
		if !errors.Is(m.Err(), ErrTimeout) {
			t.Errorf("Err() after Stop = %v, want ErrTimeout", m.Err())
		}
	})
}

// TestMonitorDeadAskedLate: the Dead channel is made by its first call;
// asked for only after the peer was declared dead, it comes closed, at the
// moment OnDead reported it.
func TestMonitorDeadAskedLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 2)
		defer m.Stop()
		var at atomic.Int64
		start := time.Now()
		m.OnDead(func() { at.Store(int64(time.Since(start))) })
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if d := time.Duration(at.Load()); d != 2*time.Second {
			t.Fatalf("OnDead after %v, want 2s", d)
		}
		first := m.Dead()
		if !isClosed(first) || m.Dead() != first || !errors.Is(m.Err(), ErrTimeout) {
			t.Fatalf("Dead asked after the death: closed %v, err %v", isClosed(m.Dead()), m.Err())
		}
		// Asked before: closed by the death.
		m2 := NewMonitor(time.Second, 2)
		defer m2.Stop()
		dead := m2.Dead()
		time.Sleep(time.Second)
		if isClosed(dead) {
			t.Fatal("Dead closed before the timeout")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !isClosed(dead) || m2.Dead() != dead {
			t.Fatalf("Dead asked before the death: closed %v, same channel %v", isClosed(dead), m2.Dead() == dead)
		}
	})
}

func TestMonitorZeroIntervalNeverFires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, d := range []time.Duration{0, -time.Second} {
			m := NewMonitor(d, 2)
			m.Touch()
			time.Sleep(1000 * time.Hour)
			synctest.Wait()
			if isClosed(m.Dead()) || m.Err() != nil || m.Timeout() != 0 {
				t.Errorf("NewMonitor(%v): dead %v, err %v, timeout %v", d, isClosed(m.Dead()), m.Err(), m.Timeout())
			}
			m.Stop()
			m.Stop()
		}
	})
}

func TestMonitorTolerance(t *testing.T) {
	for _, tt := range []struct {
		tol  float64
		want time.Duration
	}{
		{0, 2 * time.Second},
		{-1, 2 * time.Second},
		{math.NaN(), 2 * time.Second},
		{1, time.Second},
		{1.5, 1500 * ms},
		{3, 3 * time.Second},
		{math.Inf(1), math.MaxInt64},
	} {
		m := NewMonitor(time.Second, tt.tol)
		if got := m.Timeout(); got != tt.want {
			t.Errorf("NewMonitor(1s, %v).Timeout() = %v, want %v", tt.tol, got, tt.want)
		}
		m.Stop()
	}
}

func TestMonitorConcurrentTouch(t *testing.T) {
	// Run under -race: Touch from several goroutines while the timer callback
	// re-arms, Err and Dead are read, and Stop comes at the end.
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(100*ms, 2)
		done := make(chan struct{})
		for i := range 4 {
			go func() {
				for range 200 {
					m.Touch()
					time.Sleep(time.Duration(50+i*10) * ms)
					_ = m.Err()
				}
				done <- struct{}{}
			}()
		}
		for range 4 {
			<-done
		}
		if isClosed(m.Dead()) {
			t.Fatalf("dead while touched every <=80ms: %v", m.Err())
		}
		m.Stop()
	})
}

func TestTouchDoesNotAllocate(t *testing.T) {
	m := NewMonitor(time.Hour, 1)
	defer m.Stop()
	if n := testing.AllocsPerRun(1000, m.Touch); n != 0 {
		t.Errorf("Touch allocates %v times", n)
	}
	p := NewPacer(time.Hour, 0)
	defer p.Stop()
	if n := testing.AllocsPerRun(1000, p.Wrote); n != 0 {
		t.Errorf("Wrote allocates %v times", n)
	}
}

func TestPacerZeroInterval(t *testing.T) {
	for _, d := range []time.Duration{0, -1} {
		p := NewPacer(d, 0.5)
		if p.C() != nil || p.Period() != 0 {
			t.Errorf("NewPacer(%v): C %v, Period %v; want nil, 0", d, p.C(), p.Period())
		}
		p.Wrote()
		if p.Due() {
			t.Errorf("NewPacer(%v).Due() = true", d)
		}
		p.Stop()
		p.Stop()
	}
}

func TestPacerFraction(t *testing.T) {
	for _, tt := range []struct {
		frac float64
		want time.Duration
	}{
		{0, 500 * ms},
		{-1, 500 * ms},
		{1, 500 * ms},
		{1.5, 500 * ms},
		{math.NaN(), 500 * ms},
		{0.25, 250 * ms},
		{0.9, 900 * ms},
	} {
		p := NewPacer(time.Second, tt.frac)
		if got := p.Period(); got != tt.want {
			t.Errorf("NewPacer(1s, %v).Period() = %v, want %v", tt.frac, got, tt.want)
		}
		p.Stop()
	}
}

// writeLog is what a simulated writer goroutine did.
type writeLog struct {
	starts  []time.Time // when each write began
	ends    []time.Time // when each write ended (Wrote), beginning with the Pacer's creation
	beats   int         // heart-beats among the writes
	wakeups int         // times C fired
}

// maxGap returns the longest idle time of the connection: from the end of
// one write to the start of the next, and from the last write to end.
func (l *writeLog) maxGap(end time.Time) time.Duration {
	var gap time.Duration
	for i, s := range l.starts {
		gap = max(gap, s.Sub(l.ends[i]))
	}
	return max(gap, end.Sub(l.ends[len(l.ends)-1]))
}

// runWriter is a writer loop as a connection would run it: frames come from
// data, heart-beats when the Pacer says so; each write takes cost, during
// which the line is busy, not idle.
func runWriter(p *Pacer, data <-chan struct{}, cost time.Duration) *writeLog {
	l := &writeLog{ends: []time.Time{time.Now()}}
	write := func() {
		l.starts = append(l.starts, time.Now())
		time.Sleep(cost)
		p.Wrote()
		l.ends = append(l.ends, time.Now())
	}
	for {
		select {
		case _, ok := <-data:
			if !ok {
				return l
			}
			write()
		case <-p.C():
			l.wakeups++
			if p.Due() {
				l.beats++
				write()
			}
		}
	}
}

func TestPacerGapsAndNoBeatsWhileBusy(t *testing.T) {
	const interval = time.Second // period 500ms
	const period = interval / 2
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]time.Duration, 500)
	for i := range random {
		random[i] = time.Duration(rng.Int64N(int64(3 * time.Second)))
	}
	burst := []time.Duration{}
	for range 5 {
		burst = append(burst, 3*time.Second)
		for range 20 {
			burst = append(burst, ms)
		}
	}
	repeat := func(d time.Duration, n int) []time.Duration {
		s := make([]time.Duration, n)
		for i := range s {
			s[i] = d
		}
		return s
	}
	tests := []struct {
		name   string
		gaps   []time.Duration // time before each frame
		cost   time.Duration   // how long each write takes
		noBeat bool            // frames always come sooner than the period
	}{
		{"idle", []time.Duration{30 * time.Second}, 0, false},
		{"every 1ms", repeat(ms, 5000), 0, true},
		{"every 100ms", repeat(100*ms, 200), 0, true},
		{"every 499ms", repeat(499*ms, 100), 0, true},
		{"every 500ms", repeat(500*ms, 100), 0, false},
		{"every 501ms", repeat(501*ms, 100), 0, false},
		{"every 700ms", repeat(700*ms, 100), 0, false},
		{"every 2s", repeat(2*time.Second, 20), 0, false},
		{"bursts", burst, 0, false},
		{"random", random, 0, false},
		{"random, slow writes", random, 20 * ms, false},
		{"every 400ms, slow writes", repeat(400*ms, 100), 20 * ms, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := NewPacer(interval, 0)
				defer p.Stop()
				data := make(chan struct{})
				go func() {
					for _, g := range tt.gaps {
						time.Sleep(g)
						data <- struct{}{}
					}
					close(data)
				}()
				start := time.Now()
				l := runWriter(p, data, tt.cost)
				end := time.Now()
				if gap := l.maxGap(end); gap > period {
					t.Errorf("longest gap between writes %v, want <= %v", gap, period)
				}
				if tt.noBeat && l.beats != 0 {
					t.Errorf("%d heart-beats although frames came every < %v", l.beats, period)
				}
				// Wrote does not re-arm the timer: about one wake-up per period, however many frames.
				if limit := int(end.Sub(start)/period) + 2; l.wakeups > 2*limit {
					t.Errorf("%d wake-ups in %v, want about %d", l.wakeups, end.Sub(start), limit)
				}
				if tt.name == "idle" {
					if want := int(30 * time.Second / period); l.beats != want {
						t.Errorf("idle: %d heart-beats in 30s, want %d", l.beats, want)
					}
				}
			})
		})
	}
}

func TestPacerStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPacer(time.Second, 0.5)
		time.Sleep(400 * ms)
		p.Stop()
		p.Stop()
		select {
		case <-p.C():
			t.Fatal("C fired after Stop")
		case <-time.After(time.Hour):
		}
		if p.Due() {
			t.Error("Due() = true after Stop")
		}
	})
}

func TestMonitorOnDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 2)
		var calls atomic.Int32
		m.OnDead(func() {
			if !isClosed(m.Dead()) || m.Err() == nil { // Err takes the lock: f runs outside it
				t.Error("OnDead called before Dead closed")
			}
			m.Stop() // allowed from f
			calls.Add(1)
		})
		time.Sleep(2*time.Second - time.Nanosecond)
		synctest.Wait()
		if calls.Load() != 0 {
			t.Fatal("OnDead called before the timeout")
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if calls.Load() != 1 {
			t.Fatalf("OnDead called %d times, want 1", calls.Load())
		}
		// Registered after death: called at once.
		m.OnDead(func() { calls.Add(1) })
		if calls.Load() != 2 {
			t.Fatal("OnDead on a dead Monitor did not call f at once")
		}
	})
}

func TestMonitorOnDeadStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 2)
		m.OnDead(func() { t.Error("OnDead called after Stop") })
		m.Stop()
		time.Sleep(time.Hour)
		synctest.Wait()
	})
}

func TestMonitorSuspendDoesNotCountSilence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewMonitor(time.Second, 2)
		defer m.Stop()
		time.Sleep(1500 * ms)
		m.Suspend()
		m.Suspend() // nested
		time.Sleep(time.Minute)
		synctest.Wait()
		if isClosed(m.Dead()) {
			t.Fatalf("dead while suspended: %v", m.Err())
		}
		m.Resume()
		time.Sleep(time.Minute)
		synctest.Wait()
		if isClosed(m.Dead()) {
			t.Fatalf("dead while still suspended once: %v", m.Err())
		}
		m.Resume() // counts as data: 2s from here
		resumed := time.Now()
		time.Sleep(2*time.Second - 1)
		synctest.Wait()
		if isClosed(m.Dead()) {
			t.Fatalf("dead %v after Resume, before the timeout: %v", time.Since(resumed), m.Err())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !isClosed(m.Dead()) {
			t.Fatal("not dead 2s after Resume")
		}
	})
}
