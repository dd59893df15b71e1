package wire

import (
	"io"
	"sync/atomic"

	"github.com/stompout/stomp/heartbeat"
)

// Liveness is the read side of a transport with a heart-beat monitor:
// every Read that brings bytes touches the monitor, so any data counts as
// a sign of life, a large frame arriving slowly included. Read is for the
// reader goroutine; SetMonitor, Suspend and Resume may be called from any.
type Liveness struct {
	r   io.Reader
	mon atomic.Pointer[heartbeat.Monitor] // nil until heart-beats are negotiated
}

// NewLiveness returns a Liveness reading r, with no monitor yet.
func NewLiveness(r io.Reader) *Liveness { return &Liveness{r: r} }

// SetMonitor sets the monitor that reads touch (nil: none).
func (l *Liveness) SetMonitor(m *heartbeat.Monitor) { l.mon.Store(m) }

// Monitor returns the monitor, or nil.
func (l *Liveness) Monitor() *heartbeat.Monitor { return l.mon.Load() }

// Read reads from the transport and touches the monitor if bytes came.
func (l *Liveness) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if n > 0 {
		if m := l.mon.Load(); m != nil {
			m.Touch()
		}
	}
	return n, err
}

// Suspend tells the monitor that the reader stops reading on purpose (it
// waits for its application, or for a handler): until Resume, silence is
// not held against the peer, whose bytes wait unread in the transport. It
// returns the monitor it suspended (nil if none) for Resume: the monitor
// may be set in between.
func (l *Liveness) Suspend() *heartbeat.Monitor {
	m := l.mon.Load()
	if m != nil {
		m.Suspend()
	}
	return m
}

// Resume ends the Suspend that returned m; it counts as data.
func (l *Liveness) Resume(m *heartbeat.Monitor) {
	if m != nil {
		m.Resume()
	}
}
