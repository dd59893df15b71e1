package server

import (
	"sync/atomic"
)

// completion is one frame whose RECEIPT (or ERROR) waits: for its own
// deferred SENDs (a SEND, or a COMMIT whose SENDs were deferred), or only
// for the frames before it. Session.pend holds them in frame order; fields
// are guarded by Session.mu.
type completion struct {
	waiting    int    // deferred SENDs of this frame not yet done
	sealed     bool   // the frame was handled: no more deferrals join it
	err        error  // the first error a done reported
	receipt    string // the frame's receipt header
	hasReceipt bool
}

// sendCtl is what the engine attaches to a Message while Handler.Send runs
// for it, so that Message.Defer can join the frame's completion.
type sendCtl struct {
	s    *Session
	size int // bytes counted toward the send window
	// used is set by Defer, and by the engine once Handler.Send has
	// returned (a later Defer does nothing). It is in the sendCtl, not a
	// field of Message the engine would write after handing the Message
	// over: a handler may copy the Message on other goroutines.
	used atomic.Bool
	// class is, for a Message in a msgBox, the index of its box class plus
	// one (0: in none), and refs counts the box's references: the
	// engine's while Send runs, the handler's until Message.Release, and
	// one per Delivery until it is written. released is set by the
	// handler's Release.
	class    int8
	refs     atomic.Int32
	released atomic.Bool
}

// Defer, called by Handler.Send before it returns nil, says the handler
// finishes this SEND later: the engine writes the SEND's RECEIPT (if it
// asked for one) only when done(nil) is called, or, for done(err), the
// ERROR reporting err with the SEND's receipt-id, ending the session as an
// error returned by Send does. RECEIPTs stay in frame order per session: a
// later frame's RECEIPT waits for the deferred SENDs before it, and an
// ERROR from done is written once the frames before it are complete. For a
// transactional SEND (Send is called at COMMIT) it is the COMMIT's RECEIPT
// that waits.
//
// done may be called from any goroutine, exactly once; later calls do
// nothing, and so do calls after the session ended. Until done is called the
// SEND counts toward the session's WithSendWindow; when the window is full
// the engine stops reading from the client until a done makes room.
// Defer may be called at most once per Message, and only on the goroutine
// running Handler.Send for it, before Send returns: called again, or later,
// it returns a done that does nothing (the SEND is completed by the first
// Defer, or was completed when Send returned). If Send returns an error
// after Defer, the error ends the session and done does nothing. It
// allocates the done closure.
func (m *Message) Defer() (done func(err error)) {
	c := m.ctl
	if c == nil || !c.used.CompareAndSwap(false, true) {
		return func(error) {}
	}
	s := c.s
	size := c.size
	s.mu.Lock()
	cp := s.cur
	if cp == nil {
		cp = &completion{receipt: s.curReceipt, hasReceipt: s.curHasReceipt}
		s.cur = cp
		s.pend = append(s.pend, cp)
	}
	cp.waiting++
	s.inflight++
	s.inflightBytes += size
	s.mu.Unlock()
	var once bool // guarded by s.mu
	return func(err error) {
		s.mu.Lock()
		if once {
			s.mu.Unlock()
			return
		}
		once = true
		s.inflight--
		s.inflightBytes -= size
		cp.waiting--
		s.notifyLocked() // room in the send window
		if s.closing {
			s.mu.Unlock()
			return
		}
		if err != nil && cp.err == nil {
			cp.err = err
		}
		s.drainUnlock()
	}
}

// drainUnlock drains the completed frames (drainLocked), wakes the writer,
// and releases s.mu; if a completed frame failed, it then ends the session
// with it. s.mu must be held.
func (s *Session) drainUnlock() {
	frec, ferr := s.drainLocked()
	if ferr == nil {
		s.wakeLocked()
	}
	s.mu.Unlock()
	if ferr != nil {
		s.fail(ferr, frec)
	}
}

// drainLocked writes the RECEIPTs of the completed frames at the head of
// s.pend to the outbound queue, in order, and stops at the first frame
// still waiting. If a completed frame failed it returns its error and
// receipt (the caller, without s.mu, ends the session with it) and drops
// what follows. s.mu must be held.
func (s *Session) drainLocked() (receipt string, err error) {
	n := 0
	defer func() {
		if n > 0 {
			clear(s.pend[:n])
			s.pend = s.pend[n:]
			if len(s.pend) == 0 {
				s.pend = nil
			}
		}
	}()
	for ; n < len(s.pend); n++ {
		c := s.pend[n]
		if !c.sealed || c.waiting > 0 {
			return "", nil
		}
		if c.err != nil {
			n = len(s.pend)
			return c.receipt, c.err
		}
		if c.hasReceipt && !s.closing {
			// Not bounded by the outbound queue: these RECEIPTs are
			// bounded by the send window instead.
			s.queueLocked(receiptItem(c.receipt))
		}
	}
	return "", nil
}

// complete finishes the handling of the current frame (which succeeded) on
// the reader goroutine: it seals the frame's completion if a Send
// deferred, or queues its RECEIPT (s.curReceipt), after the deferred
// frames before it if there are any.
func (s *Session) complete() error {
	s.mu.Lock()
	if cp := s.cur; cp != nil {
		s.cur = nil
		cp.sealed = true
		s.drainUnlock() // if a frame failed, the session is ending; the reader sees it
		return nil
	}
	r, ok := s.curReceipt, s.curHasReceipt // f's, kept (handle)
	if !ok {
		s.mu.Unlock()
		return nil
	}
	if len(s.pend) > 0 {
		s.pend = append(s.pend, &completion{sealed: true, receipt: r, hasReceipt: true})
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	return s.enqueue(receiptItem(r))
}

// windowFull reports whether the reader must wait before taking another
// frame (inCommit: before another Send of a COMMIT, where the COMMIT's own
// completion is not to be counted). s.mu must be held.
func (s *Session) windowFull(inCommit bool) bool {
	cfg := &s.srv.cfg
	if s.inflight >= cfg.windowFrames || s.inflightBytes >= cfg.windowBytes {
		return true
	}
	return !inCommit && len(s.pend) > cfg.windowFrames
}

// waitRoom makes the reader wait while the send window is full (the
// heart-beat monitor does not count it as the client's silence: the reader
// is not in a read, see wire.Liveness). It returns when there is room or
// the session is ending.
func (s *Session) waitRoom(inCommit bool) {
	for {
		s.mu.Lock()
		if s.closing || !s.windowFull(inCommit) {
			s.mu.Unlock()
			return
		}
		ch := s.changedLocked()
		s.mu.Unlock()
		<-ch
	}
}

// waitDrained makes the reader wait until every deferred frame is complete
// (for DISCONNECT, whose RECEIPT must come last) or the session is ending.
func (s *Session) waitDrained() {
	for {
		s.mu.Lock()
		if s.closing || len(s.pend) == 0 {
			s.mu.Unlock()
			return
		}
		ch := s.changedLocked()
		s.mu.Unlock()
		<-ch
	}
}

// sendSize is what a message counts toward the send window: its body and
// its headers.
func sendSize(m *Message) int {
	n := len(m.Body)
	for k, v := range m.Header.All() {
		n += len(k) + len(v) + 2
	}
	return n
}

// callSend calls Handler.Send for m with Defer enabled while it runs.
func (s *Session) callSend(m *Message) error {
	ctl := m.ctl // newMessage made it with m, in the same allocation
	if ctl == nil {
		ctl = new(sendCtl)
		m.ctl = ctl
	}
	ctl.s, ctl.size = s, sendSize(m)
	err := s.srv.h.Send(s.ctx, s, m)
	ctl.used.Store(true)
	m.unref() // the engine is done with m; the handler may still hold it
	return err
}

// isClosing reports whether the session is ending.
func (s *Session) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}
