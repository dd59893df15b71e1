package heartbeat

import "time"

// Pacer tells a writer goroutine when to send a heart-beat. It is owned by
// one goroutine, the writer, and is not safe for concurrent use.
//
// The writer selects on [Pacer.C]; when it fires, the writer calls
// [Pacer.Due] and, if it reports true, writes an EOL. After every write (a
// frame or a heart-beat) the writer calls [Pacer.Wrote]. As long as the
// writer is responsive, the gap between two writes never exceeds the pacing
// period (interval*fraction) plus scheduling slack, and no heart-beat is sent
// while frames go out at least that often.
//
// A Pacer owns one [time.Timer]. Wrote only records the time; the timer is
// re-armed by Due, so a busy writer costs one clock read per write and one
// wake-up per period.
type Pacer struct {
	period  time.Duration
	timer   *time.Timer // nil when interval is 0
	last    time.Time   // time of the latest Wrote (or of NewPacer)
	stopped bool
}

// NewPacer returns a Pacer for the negotiated send interval: the writer is
// told to send a heart-beat once it has been idle for interval*fraction. A
// fraction <= 0 or >= 1 means [DefaultSendFraction]. An interval <= 0 gives
// a Pacer whose C is nil, so it never fires. Creating the Pacer counts as a
// write. It allocates the Pacer and one timer.
func NewPacer(interval time.Duration, fraction float64) *Pacer {
	p := &Pacer{}
	if interval <= 0 {
		return p
	}
	if !(fraction > 0 && fraction < 1) { // also catches NaN
		fraction = DefaultSendFraction
	}
	p.period = scale(interval, fraction)
	p.last = time.Now()
	p.timer = time.NewTimer(p.period)
	return p
}

// C returns the channel the writer selects on; a value on it means "call
// Due". It is nil (never ready in a select) when the interval is 0.
func (p *Pacer) C() <-chan time.Time {
	if p.timer == nil {
		return nil
	}
	return p.timer.C
}

// Wrote records that the writer has just written something. It costs one
// clock read; it does not touch the timer.
func (p *Pacer) Wrote() {
	if p.timer != nil {
		p.last = time.Now()
	}
}

// Due is called after C fired. It reports whether the writer has been idle
// for at least the pacing period and so must write a heart-beat now. It
// re-arms the timer: for a full period when a heart-beat is due, otherwise
// for the time left until one would be. It returns false after Stop.
func (p *Pacer) Due() bool {
	if p.timer == nil || p.stopped {
		return false
	}
	idle := time.Since(p.last)
	if idle >= p.period {
		p.timer.Reset(p.period)
		return true
	}
	p.timer.Reset(p.period - idle)
	return false
}

// Period returns the pacing period (interval*fraction), or 0 if the Pacer
// never fires.
func (p *Pacer) Period() time.Duration { return p.period }

// Stop stops the timer; C will not fire again. It is idempotent.
func (p *Pacer) Stop() {
	p.stopped = true
	if p.timer != nil {
		p.timer.Stop()
	}
}
