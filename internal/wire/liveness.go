package wire

import (
	"io"
	"sync/atomic"

	"github.com/stompout/stomp/heartbeat"
)

// Liveness is the read side of a transport with a heart-beat monitor: only
// time the reader spends inside Read counts as silence. Between two Reads
// the reader is busy with what it read (a handler, a full subscription
// buffer, a send window) and the peer's bytes wait unread in the
// transport, so the monitor is suspended from the end of one Read to the
// start of the next, and the start counts as data (Monitor.Resume):
// silence is measured from when the reader is back, and any bytes, a large
// frame arriving slowly included, end it. That costs one clock read and
// two atomic adds per Read and nothing per frame. A wait between Reads
// that only the peer can end counts as silence again (Attend, Away). Read,
// Attend and Away are for the reader goroutine; SetMonitor may be called
// from any.
type Liveness struct {
	r   io.Reader
	mon atomic.Pointer[heartbeat.Monitor] // nil until heart-beats are negotiated
	// away is the monitor the last Read suspended when it returned (nil
	// if none was set then): the next Read resumes it. Reader goroutine
	// only, so each Suspend is matched by one Resume even if the monitor
	// is set in between.
	away *heartbeat.Monitor
}

// NewLiveness returns a Liveness reading r, with no monitor yet; a TCP or
// Unix socket is read with raw system calls (socketReader).
func NewLiveness(r io.Reader) *Liveness {
	if sr := newSocketReader(r); sr != nil {
		r = sr
	}
	return &Liveness{r: r}
}

// SetMonitor sets the monitor that reads touch (nil: none).
func (l *Liveness) SetMonitor(m *heartbeat.Monitor) { l.mon.Store(m) }

// Monitor returns the monitor, or nil.
func (l *Liveness) Monitor() *heartbeat.Monitor { return l.mon.Load() }

// Read reads from the transport; the monitor counts silence only while
// it waits.
func (l *Liveness) Read(p []byte) (int, error) {
	if l.away != nil {
		l.away.Resume() // counts as data: the reader is back
		l.away = nil
	}
	n, err := l.r.Read(p)
	// Suspended at once, whether bytes came or not: until the next Read
	// nothing is held against the peer, and that Read's Resume is the
	// touch these bytes would have been.
	if m := l.mon.Load(); m != nil {
		m.Suspend()
		l.away = m
	}
	return n, err
}

// Attend makes the monitor count silence again before the next Read, for
// a wait that only the peer can end (the server's reader waiting for room
// in an outbound queue that drains only as the client reads): a peer that
// neither reads nor sends is then still found dead. Away ends it. Reader
// goroutine only.
func (l *Liveness) Attend() {
	if l.away != nil {
		l.away.Resume() // counts as data: silence is measured from here
		l.away = nil
	}
}

// Away suspends the monitor again until the next Read, after Attend.
// Reader goroutine only.
func (l *Liveness) Away() {
	if m := l.mon.Load(); m != nil && l.away == nil {
		m.Suspend()
		l.away = m
	}
}
