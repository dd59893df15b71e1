package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/wire"
)

// Delivery is a message pushed to one of a session's subscriptions with
// Session.Deliver.
type Delivery struct {
	// Subscription is the id of the subscription (Subscription.ID).
	Subscription string
	// Message is what to deliver; Deliver reads it and does not keep it
	// beyond building the frame, so it may be shared by many deliveries.
	Message *Message
	// Written, if set, is called exactly once on the session's writer
	// goroutine: with nil once the frame was flushed to the transport, or
	// with the error that kept it from being written: an error matching
	// ErrSessionClosed when the session ended first or the transport
	// failed before the frame was flushed (the client did not get it, so
	// it need not be marked redelivered; the transport's error is wrapped
	// too, with ErrConnectionLost); an error wrapping
	// frame.ErrUnencodable when the message cannot be encoded in the
	// session's version. It must not block; it may call Deliver. A panic
	// in it ends the session with an ERROR "internal error" and is logged.
	Written func(err error)
}

// outItem is one entry of the outbound queue.
type outItem struct {
	f       *frame.Frame
	written func(error)
	message bool     // a MESSAGE: counts toward the outbound bound
	hb      *hbStart // after f (CONNECTED): the session's version and heart-beats
	final   bool     // close the transport after this item
}

// hbStart tells the writer the negotiated version and heart-beats.
type hbStart struct {
	version frame.Version
	send    time.Duration
}

// Deliver queues m as a MESSAGE frame for the subscription with id
// d.Subscription and returns at once; the writer goroutine writes it. It is
// safe to call from any goroutine, handlers included, and never blocks: it
// fails with ErrUnknownSubscription if there is no such subscription,
// ErrSessionClosed if the session is ending, ErrSlowConsumer if the
// session already holds WithOutboundQueue undelivered messages or
// WithOutboundBytes bytes of them (bodies and headers; the client does not
// read fast enough; the batch the writer is writing does not count), and an error wrapping frame.ErrUnencodable if a header of
// m cannot be written in the session's version (a newline in 1.0, say). When it fails, nothing was queued and d.Written is not
// called.
//
// The engine sets the MESSAGE headers destination (m.Destination, or the
// subscription's), message-id (m.ID, or a new id), subscription, and in
// client ack modes on 1.2 an ack id, and records the delivery as
// unacknowledged so that the client's ACK or NACK can be resolved. It
// allocates the frame and its header.
func (s *Session) Deliver(d Delivery) error {
	m := d.Message
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrSessionClosed
	}
	sub := s.subs[d.Subscription]
	if sub == nil {
		s.mu.Unlock()
		return ErrUnknownSubscription
	}
	size := sendSize(m)
	if s.outMsgs >= s.srv.cfg.outbound || (s.outMsgs > 0 && s.outBytes+size > s.srv.cfg.outBytes) {
		s.mu.Unlock()
		return ErrSlowConsumer
	}
	for k, v := range m.Header.All() {
		if err := frame.CheckHeader(s.version, k, v); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("server: header %q cannot be encoded in STOMP %s: %w", k, s.version, err)
		}
	}
	msgID := m.ID
	if msgID == "" {
		msgID = s.id + "-" + strconv.FormatUint(s.msgSeq.Add(1), 10)
	}
	dest := m.Destination
	if dest == "" {
		dest = sub.Destination
	}
	// The header entries in one slice, so frame.New sizes the header once.
	kv := make([]string, 0, 8+2*m.Header.Len())
	kv = append(kv, frame.HdrDestination, dest, frame.HdrMessageID, msgID)
	if sub.explicit || s.version != frame.V10 {
		kv = append(kv, frame.HdrSubscription, sub.ID)
	}
	if sub.Ack != AckAuto {
		s.ackSeq++
		p := &pendingAck{msgID: msgID, seq: s.ackSeq}
		if s.version == frame.V12 {
			p.ackID = strconv.FormatUint(s.ackSeq, 10)
			kv = append(kv, frame.HdrAck, p.ackID)
		}
		s.track(sub, p)
	}
	for k, v := range m.Header.All() {
		switch k {
		case frame.HdrDestination, frame.HdrMessageID, frame.HdrSubscription, frame.HdrAck:
			continue
		}
		kv = append(kv, k, v)
	}
	f := frame.New(frame.CmdMessage, kv...)
	f.Body = m.Body
	s.out = append(s.out, outItem{f: f, written: d.Written, message: true})
	s.outMsgs++
	s.outBytes += size
	s.mu.Unlock()
	s.signal()
	return nil
}

// enqueue queues a frame the engine produced (CONNECTED, RECEIPT), waiting
// for room if the client is far behind. Reader goroutine only.
func (s *Session) enqueue(it outItem) error {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return ErrSessionClosed
		}
		if len(s.out) < s.srv.cfg.outbound+controlReserve {
			s.out = append(s.out, it)
			s.mu.Unlock()
			s.signal()
			return nil
		}
		s.mu.Unlock()
		select {
		case <-s.space:
		case <-s.closed:
		}
	}
}

// shutdown starts ending the session: it records cause (the first call
// wins), queues ef (an ERROR, or nil) as the last frame, refuses anything
// queued after it, and arms the linger timer that closes the transport if
// the writer cannot finish in time. It never blocks.
func (s *Session) shutdown(cause error, ef *frame.Frame) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.cause = cause
	s.out = append(s.out, outItem{f: ef, final: true})
	s.linger = time.AfterFunc(s.srv.cfg.linger, s.abortTransport)
	s.mu.Unlock()
	close(s.closed)
	s.signal()
}

func (s *Session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the writer goroutine: it writes the outbound queue in
// batches (one flush per batch, or one message per frame on WebSocket),
// paces heart-beats and watches the connect timeout. (The heart-beat
// Monitor ends a silent session by itself, see onConnect: this goroutine may
// be stuck writing to a client that reads nothing.)
func (s *Session) writeLoop() {
	defer close(s.done)
	w := wire.NewWriter(s.rw, nil)
	defer w.Stop()
	w.SetContentLength(frame.ContentLengthAlways)
	w.SetRelease(true) // an idle session holds no write buffer
	var connC <-chan time.Time
	var connT *time.Timer // dropped once connected: an idle session keeps no timer
	if d := s.srv.cfg.connectTimeout; d > 0 {
		connT = time.NewTimer(d)
		defer func() {
			if connT != nil {
				connT.Stop()
			}
		}()
		connC = connT.C
	}
	var broken error // the transport failed: write nothing more
	fail := func(err error) {
		broken = fmt.Errorf("%w: %w", ErrConnectionLost, err)
		s.shutdown(broken, nil)
		s.abortTransport()
	}
	var batch []outItem
	for {
		select {
		case <-s.wake:
		case <-w.HeartBeatC():
			if broken == nil {
				if err := w.HeartBeat(); err != nil {
					fail(err)
				}
			}
			continue
		case <-connC:
			connC, connT = nil, nil
			if !s.connected.Load() {
				s.shutdown(ErrConnectTimeout, s.errorFrame(ErrConnectTimeout, ""))
			}
			continue
		}

		s.mu.Lock()
		batch, s.out = s.out, batch[:0]
		s.outMsgs, s.outBytes = 0, 0
		s.mu.Unlock()
		select {
		case s.space <- struct{}{}:
		default:
		}

		final := false
		var errs map[int]error // frames that could not be encoded
		for i := range batch {
			it := &batch[i]
			if it.f != nil && broken == nil {
				if err := w.WriteFrame(it.f); err != nil {
					if wire.IsEncodeError(err) {
						// Nothing was buffered: skip the frame.
						if errs == nil {
							errs = make(map[int]error)
						}
						errs[i] = err
						s.srv.cfg.logger.Warn("stomp frame not encodable", "session", s.id, "frame", it.f.String(), "err", err)
					} else {
						fail(err)
					}
				}
			}
			if hb := it.hb; hb != nil {
				w.SetVersion(hb.version)
				w.SetHeartBeat(hb.send)
				connC = nil
				if connT != nil {
					connT.Stop()
					connT = nil
				}
			}
			if it.final {
				final = true
			}
		}
		if broken == nil {
			if err := w.Flush(); err != nil {
				fail(err)
			} else {
				w.Wrote()
			}
		}
		for i := range batch {
			if cb := batch[i].written; cb != nil {
				err := errs[i]
				if err == nil && broken != nil {
					// Never (or not completely) written: the client
					// did not get it.
					err = fmt.Errorf("%w: %w", ErrSessionClosed, broken)
				}
				s.callWritten(cb, err)
			}
		}
		clear(batch)
		if final {
			s.closeTransport()
			return
		}
	}
}

// callWritten calls a Delivery's Written callback on the writer goroutine;
// a panic in it ends the session with an ERROR, not the process.
func (s *Session) callWritten(cb func(error), err error) {
	var perr error
	defer func() {
		if perr != nil {
			s.shutdown(perr, s.errorFrame(perr, ""))
		}
	}()
	defer s.recovered("Written", &perr)
	cb(err)
}
