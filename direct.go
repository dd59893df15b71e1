package stomp

import (
	"context"
	"fmt"
	"sync"

	"github.com/stompout/stomp/frame"
)

// The direct path. A SEND without a receipt or a transaction, the bulk of
// a producer's work (and an ACK or NACK alike, a consumer's), needs
// nothing from the writer goroutine but the write itself: its caller
// encodes it into the session's direct buffer, under a lock, and returns; the writer is woken only when the buffer goes
// from empty to not, and writes all of it at once. A producer sending one
// frame after another then pays neither a hand-off to the writer and back
// per frame nor a write to the transport per frame: the frames it sends
// while the writer is writing go out together in the next write.
//
// Send returns the same as on the queue (request.go): once the frame is
// buffered, before it reaches the transport; a receipt is the proof of
// delivery. The path is open only on a stream transport (a WebSocket
// carries one frame per message), once the writer has subscribed again
// (those frames go first), and until the session ends or the writer takes
// DISCONNECT; a caller that finds it closed takes the queue, which decides
// what the frame's fate is (wait for the next session, ErrClosed, ...).

// directMax is how much the direct buffer holds before callers wait for
// the writer to take it.
const directMax = 64 << 10

// directBody bounds the bodies that take the direct path: a larger one
// goes through the queue, and the writer writes it straight from the
// caller's slice, without a copy.
const directBody = 16 << 10

// direct is a session's direct buffer.
type direct struct {
	mu   sync.Mutex
	open bool   // frames may be added
	buf  []byte // encoded frames, in call order
	// room, made by a caller waiting for a full buffer, is closed when the
	// writer takes the buffer or the path closes.
	room chan struct{}
	// kick wakes the writer (capacity 1): sent when buf goes from empty to
	// not. A kick may be stale (the writer took buf without it): the writer
	// then finds buf empty.
	kick chan struct{}
	// spare is the writer's: the slice it gives callers next, so that two
	// buffers alternate and callers fill one while the writer writes the
	// other.
	spare []byte
}

// directable reports whether req may take s's direct path: a SEND, ACK or
// NACK (the frames whose calls return once buffered, see answeredEarly)
// not in a transaction, with a small body, and not bound to another
// session (the queue refuses that one).
func directable(req *request, s *session) bool {
	return answeredEarly(req.f.Command) && req.tx == nil &&
		len(req.f.Body) <= directBody && (req.bound == nil || req.bound == s)
}

// sendDirect encodes req's frame, which is directable, into the direct
// buffer, registering its receipt with the session first. It returns ok
// false, having done nothing, when the path is closed: the caller takes
// the queue. It waits, bounded by ctx, while the buffer is full.
func (s *session) sendDirect(ctx context.Context, req *request) (ok bool, err error) {
	d := &s.direct
	d.mu.Lock()
	for d.open && len(d.buf) >= directMax {
		if d.room == nil {
			d.room = make(chan struct{})
		}
		room := d.room
		d.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return true, ctx.Err()
		}
		d.mu.Lock()
	}
	if !d.open {
		d.mu.Unlock()
		return false, nil
	}
	if req.rcpt != nil {
		// While the path is open: the session's end, which resolves its
		// receipts, closes the path first (fail, writeLoop).
		s.addReceipt(req.rcpt)
	}
	n := len(d.buf)
	d.buf, err = frame.Encoder{Version: s.version, ContentLength: req.mode}.Append(d.buf, &req.f)
	kick := n == 0 && len(d.buf) > 0
	d.mu.Unlock()
	if err != nil {
		if req.rcpt != nil {
			s.dropReceipt(req.rcpt)
		}
		return true, fmt.Errorf("stomp: %s: %w", req.f.Command, err)
	}
	if kick {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	return true, nil
}

// openDirect opens the direct path, if the transport is a stream. Writer
// goroutine, once it has subscribed again.
func (s *session) openDirect() {
	if !s.w.Stream() {
		return
	}
	d := &s.direct
	d.mu.Lock()
	d.open = true
	d.mu.Unlock()
	s.c.direct.Store(s)
}

// closeDirect closes the direct path and returns what it held, for the
// writer to write ahead of DISCONNECT (or nothing, when the session is
// over). Callers waiting for room take the queue. Idempotent.
func (s *session) closeDirect() []byte {
	s.c.direct.CompareAndSwap(s, nil)
	d := &s.direct
	d.mu.Lock()
	defer d.mu.Unlock()
	d.open = false
	p := d.buf
	d.buf = nil
	if d.room != nil {
		close(d.room)
		d.room = nil
	}
	return p
}

// writeDirect moves what callers have encoded into the direct buffer into
// the Writer, ahead of anything the writer takes after it, and gives the
// callers the spare buffer. It reports whether there was anything. Writer
// goroutine only.
func (s *session) writeDirect() (bool, error) {
	d := &s.direct
	d.mu.Lock()
	p := d.buf
	if len(p) == 0 {
		d.mu.Unlock()
		return false, nil
	}
	d.buf = d.spare[:0]
	if d.room != nil {
		close(d.room)
		d.room = nil
	}
	d.mu.Unlock()
	err := s.w.WriteEncoded(p)
	if cap(p) <= 2*directMax {
		d.spare = p[:0]
	} else {
		d.spare = nil // grown past a big frame: do not keep it
	}
	return true, err
}
