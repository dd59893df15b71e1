package stomp

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/wire"
)

// maxBatch bounds how many frames the writer takes in one batch, so that
// callers get their answers even while others keep queueing.
const maxBatch = 128

// writeLoop is the writer goroutine of a session. It first subscribes
// again every subscription that was live on an earlier session, before any
// queued frame; then it takes every frame queued, writes them all and
// flushes once, then answers each caller; when idle it sends heart-beats.
// It ends the session on a write error.
func (s *session) writeLoop() error {
	defer s.w.Stop()
	defer s.closeDirect()
	if err := s.resubscribe(); err != nil {
		err = s.writeError(err)
		s.fail(err)
		return err
	}
	s.openDirect()
	s.w.SetHeartBeat(s.hbSend)
	c := s.c
	batch := make([]*request, 0, maxBatch)
	var ctrl []*frame.Frame
	dirty := false // frames buffered whose callers were answered: flush before waiting
	for {
		batch = batch[:0]
		ctrl = ctrl[:0]
		if dirty && len(c.writeq) == 0 && len(s.direct.kick) == 0 {
			// Let a producer that was just answered queue its next frame,
			// so that a run of sends shares one write.
			runtime.Gosched()
			if len(c.writeq) == 0 && len(s.direct.kick) == 0 {
				if err := s.w.Flush(); err != nil {
					err = s.writeError(err)
					s.fail(err)
					return err
				}
				s.w.Wrote()
				dirty = false
			}
		}
		if dirty {
			select {
			case req := <-c.writeq:
				batch = append(batch, req)
			case <-s.direct.kick:
			default:
				continue
			}
		} else {
			select {
			case req := <-c.writeq:
				batch = append(batch, req)
			case <-s.direct.kick:
			case <-s.ctrlSig:
			case <-s.w.HeartBeatC():
				if err := s.w.HeartBeat(); err != nil {
					err = s.writeError(err)
					s.fail(err)
					return err
				}
				continue
			case <-s.ctx.Done():
				return nil
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case req := <-c.writeq:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		s.ctrlMu.Lock()
		ctrl = append(ctrl, s.ctrl...)
		clear(s.ctrl)
		s.ctrl = s.ctrl[:0]
		s.ctrlMu.Unlock()

		// The direct path's frames first: their callers returned before
		// anything in this batch was queued.
		wroteDirect, err := s.writeDirect()
		if err != nil {
			err = s.writeError(err)
			s.fail(err)
			return err
		}
		wrote, flushed, err := s.writeBatch(ctrl, batch, dirty || wroteDirect)
		if err != nil {
			s.fail(err)
			return err
		}
		if flushed {
			dirty = false
			if wrote { // a batch of requests all given up on writes nothing
				s.w.Wrote()
			}
		} else if wrote {
			dirty = true
		}
	}
}

// flushAt is how much the writer leaves buffered, frames whose callers it
// has answered, while more are queued.
const flushAt = 64 << 10

// answeredEarly reports the frames whose callers are answered once the
// frame is in the write buffer, before the flush: SEND, ACK and NACK, so
// that a producer sending one frame after another does not pay one write
// to the transport per frame. A receipt is what proves delivery; the
// other frames' calls return once flushed.
func answeredEarly(cmd string) bool {
	return cmd == frame.CmdSend || cmd == frame.CmdAck || cmd == frame.CmdNack
}

// resubscribe writes SUBSCRIBE again, with the same id, destination and
// headers, for every live subscription whose SUBSCRIBE went out on an
// earlier session, oldest first, and flushes.
func (s *session) resubscribe() error {
	subs := make([]*Subscription, 0, len(*s.c.subs.Load()))
	for _, sub := range *s.c.subs.Load() {
		if sub.on != nil && sub.on != s {
			subs = append(subs, sub)
		}
	}
	if len(subs) == 0 {
		return nil
	}
	slices.SortFunc(subs, func(a, b *Subscription) int { return cmp.Compare(a.seq, b.seq) })
	s.w.SetContentLength(frame.ContentLengthAuto)
	for _, sub := range subs {
		f := frame.Frame{Command: frame.CmdSubscribe, Header: sub.header}
		if err := s.w.WriteFrame(&f); err != nil {
			if wire.IsEncodeError(err) {
				continue // it was written before: cannot happen
			}
			return err
		}
		sub.on = s
	}
	s.c.log.Debug("stomp: subscribed again", "subscriptions", len(subs), "addr", s.addr)
	return s.w.Flush()
}

// writeBatch writes the frames and flushes once, then answers the callers.
// A frame that cannot be encoded fails alone; a transport error is
// returned, after every caller has been answered with it. wrote reports
// whether any frame was written.
func (s *session) writeBatch(ctrl []*frame.Frame, batch []*request, dirty bool) (wrote, flushed bool, fatal error) {
	w := s.w
	for _, f := range ctrl {
		if s.wroteDisconnect {
			break
		}
		w.SetContentLength(frame.ContentLengthAuto)
		if err := w.WriteFrame(f); err == nil {
			wrote = true
		} else if !wire.IsEncodeError(err) {
			fatal = err
			break
		}
	}
	n := 0 // batch[:n] are claimed
	for _, req := range batch {
		if !req.state.CompareAndSwap(reqQueued, reqClaimed) {
			continue // abandoned by its caller
		}
		batch[n] = req
		n++
		if fatal != nil {
			continue
		}
		if answer, skip := s.refuse(req); skip {
			req.done <- answer
			batch[n-1] = nil
			continue
		}
		if req.rcpt != nil {
			s.addReceipt(req.rcpt)
		}
		switch req.f.Command {
		case frame.CmdSubscribe:
			// Before the write: if the transport fails in it, the
			// SUBSCRIBE may have reached the server, and the next session
			// subscribes again.
			req.sub.on = s
		case frame.CmdDisconnect:
			// Before the write too: on a WebSocket the frame is sent by
			// WriteFrame itself, and RabbitMQ's Web-STOMP answers it by
			// closing before WriteFrame returns; the reader must already
			// take that EOF for the clean end it is. The direct path
			// closes, and what it holds goes out first.
			if p := s.closeDirect(); len(p) > 0 {
				if err := w.WriteEncoded(p); err != nil {
					fatal = err // answered below, with the others
					continue
				}
			}
			s.disconnectOut.Store(true)
		}
		w.SetContentLength(req.mode)
		if err := w.WriteFrame(&req.f); err != nil {
			if wire.IsEncodeError(err) {
				switch req.f.Command {
				case frame.CmdSubscribe:
					req.sub.on = nil
				case frame.CmdDisconnect:
					s.disconnectOut.Store(false)
				}
				req.done <- fmt.Errorf("stomp: %s: %w", req.f.Command, err)
				batch[n-1] = nil
				continue
			}
			fatal = err
		} else {
			wrote = true
			switch req.f.Command {
			case frame.CmdDisconnect:
				s.wroteDisconnect = true
			case frame.CmdBegin:
				req.tx.sess.Store(s)
			case frame.CmdCommit, frame.CmdAbort:
				if req.tx != nil {
					req.tx.ended = true
				}
			case frame.CmdUnsubscribe:
				if req.sub != nil {
					req.sub.on = nil
				}
			}
		}
		// The frame is in the Writer's buffer (or on the wire): the
		// caller's body is no longer needed. A caller whose ctx ended
		// while it was being encoded is waiting to hear that.
		if !req.state.CompareAndSwap(reqClaimed, reqBuffered) {
			req.done <- errReleased
			batch[n-1] = nil
		} else if fatal == nil && answeredEarly(req.f.Command) {
			req.done <- nil
			batch[n-1] = nil
		}
	}
	waiting := len(ctrl) > 0
	for _, req := range batch[:n] {
		waiting = waiting || req != nil
	}
	if fatal == nil && !waiting && len(s.c.writeq) > 0 && w.Buffered() < flushAt {
		clear(batch)
		return wrote, false, nil // more to come: flush with it
	}
	if fatal == nil {
		fatal = w.Flush()
	}
	flushed = fatal == nil
	var answer error
	if fatal != nil {
		fatal = s.writeError(fatal)
		answer = fatal
	}
	for _, req := range batch[:n] {
		if req != nil {
			req.done <- answer
		}
	}
	clear(batch)
	return wrote || dirty, flushed, fatal
}

// refuse decides, before a request is written, that it must not be: it
// returns the caller's answer and true.
func (s *session) refuse(req *request) (error, bool) {
	switch {
	case s.wroteDisconnect:
		// The specification: no frame after DISCONNECT. A call that raced
		// with Disconnect fails instead of being written and ignored.
		return ErrClosed, true
	case req.tx != nil && req.f.Command != frame.CmdBegin && req.tx.sess.Load() != s:
		// Its transaction was begun on a session that has ended: the
		// server aborted it.
		return req.tx.abortedErr(), true
	case req.bound != nil && req.bound != s:
		// It belongs to a session that has ended: the server no longer
		// knows its message.
		if req.f.Command == frame.CmdDisconnect {
			return ErrClosed, true
		}
		return ErrStaleMessage, true
	case req.tx != nil && req.tx.ended:
		return ErrTxDone, true // raced with Commit or Abort
	case req.f.Command == frame.CmdUnsubscribe && req.sub != nil && req.sub.on != s:
		// Subscribed on an earlier session and not again on this one:
		// the server has no such subscription, and nothing is to undo.
		return nil, true
	}
	return nil, false
}

// writeError wraps a transport error: the session is lost.
func (s *session) writeError(err error) error {
	if s.ctx.Err() != nil {
		return s.endErr() // fail has run: its cause is the story
	}
	return lost(fmt.Errorf("stomp: write: %w", err))
}
