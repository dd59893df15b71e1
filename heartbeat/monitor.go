package heartbeat

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Monitor watches incoming data and says when the peer has gone silent for
// longer than the negotiated receive interval times a tolerance. The reader
// goroutine calls [Monitor.Touch] on everything it reads; anyone may wait on
// [Monitor.Dead]. A Monitor owns one [time.AfterFunc] timer, which re-arms
// itself for the time remaining instead of being reset on every Touch, and no
// goroutine of its own. All methods are safe for concurrent use.
type Monitor struct {
	interval time.Duration // negotiated receive interval; immutable
	timeout  time.Duration // interval*tolerance; immutable
	base     time.Time     // origin of last (carries the monotonic clock); immutable

	// last is the time of the latest Touch, in nanoseconds since base.
	// Written by the reader goroutine, read by the timer callback.
	last atomic.Int64
	// busy counts Suspend calls not yet matched by Resume: while it is
	// above zero, silence is not counted (the reader is not reading).
	busy atomic.Int32

	mu sync.Mutex // guards the fields below and serialises the timer callback with Stop
	// dead is made by the first Dead call (a Monitor nobody waits on
	// holds no channel) and closed once after err is set, or made closed
	// if err already is.
	dead    chan struct{}
	timer   *time.Timer // nil when interval is 0
	stopped bool
	err     error  // set once, just before dead is closed
	onDead  func() // called once after dead is closed; see OnDead
}

// NewMonitor starts watching for data expected every interval; creating the
// Monitor counts as the first Touch. If nothing arrives for interval*tolerance,
// Dead is closed and Err returns a [*TimeoutError]. A tolerance <= 0 means
// [DefaultTolerance]. An interval <= 0 gives a Monitor that never fires and
// holds no timer. It allocates the Monitor and one timer.
func NewMonitor(interval time.Duration, tolerance float64) *Monitor {
	m := &Monitor{}
	if interval <= 0 {
		return m
	}
	if !(tolerance > 0) { // also catches NaN
		tolerance = DefaultTolerance
	}
	m.interval = interval
	m.timeout = scale(interval, tolerance)
	m.base = time.Now()
	m.mu.Lock() // the callback must not run before m.timer is set
	m.timer = time.AfterFunc(m.timeout, m.check)
	m.mu.Unlock()
	return m
}

// scale returns d*f, at least 1ns and at most the largest Duration.
func scale(d time.Duration, f float64) time.Duration {
	x := float64(d) * f
	if x >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(time.Duration(x), 1)
}

// Touch records that data arrived now. The reader goroutine calls it on every
// read; it costs one clock read and one atomic store, takes no lock and does
// not allocate.
func (m *Monitor) Touch() {
	if m.timer != nil { // immutable after NewMonitor, so no lock is needed
		m.last.Store(int64(time.Since(m.base)))
	}
}

// Suspend tells the Monitor that its reader has stopped reading on purpose:
// it waits for its application (a full subscription buffer) or for a
// handler to finish. Until the matching Resume the peer is not declared
// dead, since bytes it sends wait unread in the transport. Suspend and
// Resume nest; they cost one atomic add each and may be called from any
// goroutine.
func (m *Monitor) Suspend() { m.busy.Add(1) }

// Resume ends a Suspend. It counts as a Touch, so the silence measured
// afterwards starts now, not when the reader stopped reading.
func (m *Monitor) Resume() {
	m.Touch()
	m.busy.Add(-1)
}

// check runs on the timer's goroutine when the timeout may have passed.
func (m *Monitor) check() {
	m.mu.Lock()
	if m.stopped || m.err != nil {
		m.mu.Unlock()
		return
	}
	if m.busy.Load() > 0 {
		// The reader is not reading on purpose: silence says nothing.
		m.timer.Reset(m.timeout)
		m.mu.Unlock()
		return
	}
	// Load last before reading the clock, so silence is never negative.
	last := time.Duration(m.last.Load())
	silence := time.Since(m.base) - last
	if silence < m.timeout {
		m.timer.Reset(m.timeout - silence)
		m.mu.Unlock()
		return
	}
	m.err = &TimeoutError{Interval: m.interval, Silence: silence}
	if m.dead != nil {
		close(m.dead)
	}
	f := m.onDead
	m.mu.Unlock()
	if f != nil {
		f() // outside the lock: f may call Stop or Err
	}
}

// OnDead arranges for f to be called once when the peer is declared dead:
// on the timer's goroutine right after Dead is closed, or at once on the
// caller's goroutine if Dead already is. It is for an owner that must react
// even while its own goroutines are blocked (a writer stuck in a write); f
// must not block. After Stop, a Monitor that was not dead never calls f. A
// later OnDead replaces an f that has not run.
func (m *Monitor) OnDead(f func()) {
	m.mu.Lock()
	dead := m.err != nil
	if !dead {
		m.onDead = f
	}
	m.mu.Unlock()
	if dead {
		f()
	}
}

// Dead returns a channel that is closed once the peer has been silent for
// too long. It is never closed for a Monitor with interval 0 or one stopped
// before the timeout. The first call takes the lock and makes the channel
// (so that a Monitor nobody waits on holds none); later calls only take
// the lock.
func (m *Monitor) Dead() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dead == nil {
		m.dead = make(chan struct{})
		if m.err != nil {
			close(m.dead)
		}
	}
	return m.dead
}

// Err returns nil until Dead is closed, then a [*TimeoutError] (which
// matches [ErrTimeout]). It takes a lock.
func (m *Monitor) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// Timeout returns how much silence the Monitor tolerates (interval times
// tolerance), or 0 if it never fires.
func (m *Monitor) Timeout() time.Duration { return m.timeout }

// Stop stops the Monitor: after it returns, Dead will not be closed (if it
// was not already) and no timer or callback remains. It is idempotent and
// takes a lock; it may wait for a running timer callback to finish.
func (m *Monitor) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	if m.timer != nil {
		m.timer.Stop()
	}
}
