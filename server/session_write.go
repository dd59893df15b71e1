package server

import (
	"fmt"
	"sync"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
	"github.com/stompout/stomp/internal/wire"
)

// Delivery is a message pushed to one of a session's subscriptions with
// Session.Deliver.
type Delivery struct {
	// Subscription is the id of the subscription (Subscription.ID).
	Subscription string
	// Message is what to deliver. Deliver keeps it until the frame is
	// written (Written is called): the writer goroutine builds the MESSAGE
	// frame from it. It may be shared by many deliveries, and must not be
	// modified while any of them is queued.
	Message *Message
	// Written, if set, is called exactly once on the session's writer
	// goroutine: with nil once the frame was flushed to the transport, or
	// with the error that kept it from being written: an error matching
	// ErrSessionClosed when the session ended first or the transport
	// failed before the frame was flushed (the client did not get it, so
	// it need not be marked redelivered; the transport's error is wrapped
	// too, with ErrConnectionLost); an error wrapping
	// frame.ErrUnencodable when the message cannot be encoded in the
	// session's version. The Written callbacks of a session's deliveries
	// are called in the order of their Deliver calls, so one callback may
	// serve many deliveries (the broker's does). It must not block; it may
	// call Deliver. A panic in it ends the session with an ERROR "internal
	// error" and is logged.
	Written func(err error)
}

// outItem is one entry of the outbound queue: a frame the engine made
// (f), or a delivery (m), whose MESSAGE frame the writer builds.
type outItem struct {
	f *frame.Frame
	// A RECEIPT (receipt set, f nil): the writer encodes it from
	// receiptID, so that a frame answered with a receipt costs no
	// frame.Frame.
	receipt   bool
	receiptID string
	// A delivery: the message and subscription, the message-id when it is
	// a string already (m.ID, or made for a client ack mode; else the
	// writer formats it from m.Seq or seq) and the 1.2 ack id.
	m       *Message
	sub     *Subscription
	msgID   string
	seq     uint64 // the engine's sequence number for m without ID or Seq
	ackID   string
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
// subscription's), message-id (m.ID, or the one m.Seq stands for, or a new
// id), subscription, and in client ack modes on 1.2 an ack id, and records
// the delivery as unacknowledged so that the client's ACK or NACK can be
// resolved. It keeps a reference to m and builds no frame: the writer
// goroutine encodes the MESSAGE from m when it writes it. In auto mode it
// allocates nothing (but for the outbound queue's growth); in the client
// ack modes it records the delivery and its ids in slabs shared by a few
// dozen deliveries.
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
	if s.outMsgs >= s.srv.cfg.outbound {
		s.mu.Unlock()
		return ErrSlowConsumer
	}
	size := sendSize(m)
	if s.outMsgs > 0 && s.outBytes+size > s.srv.cfg.outBytes {
		s.mu.Unlock()
		return ErrSlowConsumer
	}
	for i := range m.Header.Len() {
		k, v := m.Header.At(i)
		if err := frame.CheckHeader(s.version, k, v); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("server: header %q cannot be encoded in STOMP %s: %w", k, s.version, err)
		}
	}
	it := outItem{m: m, sub: sub, msgID: m.ID, written: d.Written, message: true}
	if m.ID == "" && m.Seq == 0 {
		it.seq = s.msgSeq.Add(1)
	}
	if sub.Ack != AckAuto {
		s.ackSeq++
		p := s.newPending()
		p.seq = s.ackSeq
		it.msgID, it.ackID = s.deliveryIDs(m, it.seq)
		p.msgID, p.ackID = it.msgID, it.ackID
		s.track(sub, p)
	}
	s.queueLocked(it)
	m.ref() // until the writer is done with it (Message.Release)
	s.outMsgs++
	s.outBytes += size
	s.wakeLocked()
	s.mu.Unlock()
	return nil
}

// outStart is the capacity of the two arrays of a new runScratch: room
// for a small batch without regrowing.
const outStart = 8

// queueLocked appends it to the outbound queue, which takes the spare
// array of the session's runScratch when it has none (each array is in
// one hand: the queue's, the writer's batch, or the scratch's). s.mu must
// be held.
func (s *Session) queueLocked(it outItem) {
	if s.out == nil {
		rs := s.scratchLocked()
		s.out, rs.spare = rs.spare, nil
	}
	s.out = append(s.out, it)
}

// scratchLocked returns the session's runScratch, taking one from
// scratchPool if it holds none: it holds one from the first item queued
// (or the writer's start) until the writer exits. s.mu must be held.
func (s *Session) scratchLocked() *runScratch {
	if s.rs == nil {
		s.rs = scratchPool.Get().(*runScratch)
	}
	return s.rs
}

// messageFrame builds the MESSAGE frame of the delivery it in f, reusing
// f's header array; id is its message-id when it.msgID is empty. Writer
// goroutine only.
func (s *Session) messageFrame(f *frame.Frame, it *outItem, id string) *frame.Frame {
	m, sub := it.m, it.sub
	if it.msgID != "" {
		id = it.msgID
	}
	dest := m.Destination
	if dest == "" {
		dest = sub.Destination
	}
	f.Command = frame.CmdMessage
	f.Header.Reset()
	f.Header.Add(frame.HdrDestination, dest)
	f.Header.Add(frame.HdrMessageID, id)
	if sub.explicit || s.version != frame.V10 {
		f.Header.Add(frame.HdrSubscription, sub.ID)
	}
	if it.ackID != "" {
		f.Header.Add(frame.HdrAck, it.ackID)
	}
	for i := range m.Header.Len() {
		k, v := m.Header.At(i)
		switch k {
		case frame.HdrDestination, frame.HdrMessageID, frame.HdrSubscription, frame.HdrAck:
			continue
		}
		f.Header.Add(k, v)
	}
	f.Body = m.Body
	return f
}

// batchIDs formats the message-ids of the deliveries in batch that have
// none as a string yet, all in one string (one allocation per batch, none
// without such deliveries), and returns it with the end of each id in it,
// in order. Writer goroutine only.
func (s *Session) batchIDs(batch []outItem, scratch []byte, ends []int) (string, []byte, []int) {
	scratch, ends = scratch[:0], ends[:0]
	for i := range batch {
		if it := &batch[i]; it.m != nil && it.msgID == "" {
			scratch = s.appendMessageID(scratch, it.m, it.seq)
			ends = append(ends, len(scratch))
		}
	}
	if len(ends) == 0 {
		return "", scratch, ends
	}
	return string(scratch), scratch, ends
}

// enqueue queues a frame the engine produced (CONNECTED, RECEIPT), waiting
// for room if the client is far behind. Only the client can end that
// wait, by reading, so its silence counts meanwhile: a client that
// neither reads nor sends is still found dead by the heart-beat monitor,
// which ends the session (there is no write deadline). Reader goroutine
// only.
func (s *Session) enqueue(it outItem) error {
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return ErrSessionClosed
		}
		if len(s.out) < s.srv.cfg.outbound+controlReserve {
			s.queueLocked(it)
			s.wakeLocked()
			s.mu.Unlock()
			return nil
		}
		ch := s.changedLocked()
		s.mu.Unlock()
		s.live.Attend()
		<-ch
		s.live.Away()
	}
}

// shutdown starts ending the session: it records cause (the first call
// wins), queues ef (an ERROR, or nil) as the last frame, refuses anything
// queued after it, and arms the linger timer that closes the transport if
// the writer cannot finish in time. It never blocks.
func (s *Session) shutdown(cause error, ef *frame.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.closing = true
	s.cause = cause
	s.queueLocked(outItem{f: ef, final: true})
	s.linger = time.AfterFunc(s.srv.cfg.linger, s.abortTransport)
	s.notifyLocked()
	s.wakeLocked()
}

// changedLocked returns a channel that is closed at the next change the
// reader may be waiting for: the writer took a batch (room in the outbound
// queue), a deferred SEND was done (room in the send window), the session
// started ending. The channel is made on demand, so that an idle session
// holds none. s.mu must be held.
func (s *Session) changedLocked() <-chan struct{} {
	if s.change == nil {
		s.change = make(chan struct{})
	}
	return s.change
}

// notifyLocked wakes whoever waits on changedLocked's channel. s.mu must
// be held.
func (s *Session) notifyLocked() {
	if s.change != nil {
		close(s.change)
		s.change = nil
	}
}

// wakeLocked starts the writer goroutine if it is not running and there is
// something to write: the writer runs only while there is work (it exits
// once the queue is empty), so an idle session has no goroutine of its own
// beyond the reader. s.mu must be held.
func (s *Session) wakeLocked() {
	if s.writing || s.wfinished || (len(s.out) == 0 && !s.hbDue) {
		return
	}
	s.writing = true
	go s.writeLoop()
}

// beat runs on a timer goroutine when a heart-beat may be due: if nothing
// was written for the pacing period, it asks the writer for one (starting
// it if need be); otherwise it re-arms itself for the time left. As with
// heartbeat.Pacer, a busy writer costs one clock read per batch and one
// wake-up per period.
func (s *Session) beat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wfinished || s.hbTimer == nil {
		return
	}
	idle := time.Since(s.lastWrite)
	if idle < s.hbPeriod {
		s.hbTimer.Reset(s.hbPeriod - idle)
		return
	}
	s.hbTimer.Reset(s.hbPeriod)
	s.hbDue = true
	s.wakeLocked()
}

// startHeartBeats starts pacing heart-beats for the negotiated send
// interval (0: none). Writer goroutine only.
func (s *Session) startHeartBeats(interval time.Duration) {
	if interval <= 0 {
		return
	}
	// interval*DefaultSendFraction, as heartbeat.NewPacer paces: smaller
	// than interval, so it cannot overflow.
	period := max(time.Duration(float64(interval)*heartbeat.DefaultSendFraction), 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wfinished || s.hbTimer != nil {
		return
	}
	s.hbPeriod = period
	s.lastWrite = time.Now()
	// Set under s.mu: beat takes it, so it sees the timer even if it
	// fires at once.
	s.hbTimer = time.AfterFunc(period, s.beat)
}

// runScratch is what a writer run reuses from batch to batch: the two
// arrays of the outbound queue (Deliver appends to spare, the writer swaps
// it with batch), the MESSAGE frame it builds each delivery in, with room
// for its header entries, and room to format a batch's message-ids. A
// session holds one only while it has something to write (scratchLocked);
// the writer gives it back to scratchPool when it exits, so that the
// sessions' runs share a few of them instead of allocating them each run
// (an idle session still holds no buffer).
type runScratch struct {
	mf           frame.Frame
	rf           frame.Frame // the RECEIPT the writer encodes each receipt item as
	room         frame.HeaderRoom
	spare, batch []outItem
	idBuf        []byte
	idEnds       []int
}

// receiptItem is the outItem of a RECEIPT for receipt id.
func receiptItem(id string) outItem { return outItem{receipt: true, receiptID: id} }

// maxKeptItems is the largest queue array (in items) a runScratch keeps
// when its run ends; a larger one, grown by a burst, is left to the
// collector.
const maxKeptItems = 1024

// scratchPool holds the runScratch of no session.
var scratchPool = sync.Pool{New: func() any {
	rs := &runScratch{
		spare:  make([]outItem, 0, outStart),
		batch:  make([]outItem, 0, outStart),
		idBuf:  make([]byte, 0, outStart*12),
		idEnds: make([]int, 0, outStart),
	}
	rs.mf.Header = (&frame.Header{}).CloneInto(&rs.room)
	rs.rf.Command = frame.CmdReceipt
	rs.rf.Header.Add(frame.HdrReceiptID, "")
	return rs
}}

// release puts rs back in scratchPool with spare and batch as its arrays
// (emptied; nil when large) and nothing left of the last message.
func (rs *runScratch) release(spare, batch []outItem, idBuf []byte, idEnds []int) {
	keep := func(a []outItem) []outItem {
		if cap(a) > maxKeptItems {
			return nil
		}
		return a[:0]
	}
	rs.spare, rs.batch = keep(spare), keep(batch)
	if cap(idEnds) > maxKeptItems {
		idBuf, idEnds = nil, nil
	}
	rs.idBuf, rs.idEnds = idBuf[:0], idEnds[:0]
	rs.mf.Header.Reset()
	rs.mf.Body = nil
	rs.rf.Header.Set(frame.HdrReceiptID, "")
	scratchPool.Put(rs)
}

// writeLoop is the writer goroutine, started by wakeLocked when there is
// work and exiting when there is none left: it writes the outbound queue
// in batches (one flush per batch, or one message per frame on WebSocket)
// and the heart-beats beat asks for. The session's wire.Writer, made by
// the first run, passes from one run to the next and gives its buffer back
// while empty: an idle session holds no buffer and no goroutine, and a run
// allocates nothing to start (a session that writes one frame at a time,
// a RECEIPT per SEND, has a run per frame). Only one runs at a time
// (s.writing), so the fields it owns (ww, wbroken) pass from one run to
// the next under s.mu. The server's heart-beats are paced by beat, not by
// the Writer.
// (The heart-beat Monitor ends a silent session by itself, see onConnect:
// this goroutine may be stuck writing to a client that reads nothing.)
func (s *Session) writeLoop() {
	w := s.ww
	if w == nil {
		w = wire.NewWriter(s.rw, nil)
		w.SetContentLength(frame.ContentLengthAlways)
		w.SetRelease(true) // an idle session holds no write buffer
		s.ww = w
	}
	fail := func(err error) {
		s.wbroken = fmt.Errorf("%w: %w", ErrConnectionLost, err)
		s.shutdown(s.wbroken, nil)
		s.abortTransport()
	}
	s.mu.Lock()
	rs := s.scratchLocked()
	batch := rs.batch
	rs.batch = nil // the writer's now (see queueLocked)
	s.mu.Unlock()
	mf, idBuf, idEnds := &rs.mf, rs.idBuf, rs.idEnds
	wrote := false // the last batch was flushed: the pacer's clock restarts
	for {
		s.mu.Lock()
		if wrote {
			s.lastWrite = time.Now()
		}
		hb := s.hbDue
		s.hbDue = false
		if len(s.out) == 0 && !hb {
			// Nothing left: give the scratch back and exit. Whoever
			// queues next starts a new run.
			out := s.out
			s.out, s.rs = nil, nil
			s.writing = false
			s.mu.Unlock()
			rs.release(out, batch, idBuf, idEnds)
			return
		}
		batch, s.out = s.out, batch[:0]
		s.outMsgs, s.outBytes = 0, 0
		s.notifyLocked() // room in the queue for a waiting enqueue
		s.mu.Unlock()

		wrote = false
		if hb && len(batch) == 0 {
			if s.wbroken == nil {
				if err := w.WriteHeartBeat(); err != nil {
					fail(err)
				} else {
					wrote = true
				}
			}
			continue
		}

		final := false
		var errs map[int]error // frames that could not be encoded
		var ids string
		ids, idBuf, idEnds = s.batchIDs(batch, idBuf, idEnds)
		idStart, idNext := 0, 0
		for i := range batch {
			it := &batch[i]
			f := it.f
			if it.receipt {
				rs.rf.Header.Set(frame.HdrReceiptID, it.receiptID)
				f = &rs.rf
			}
			if it.m != nil {
				id := ""
				if it.msgID == "" {
					id = ids[idStart:idEnds[idNext]]
					idStart = idEnds[idNext]
					idNext++
				}
				f = s.messageFrame(mf, it, id)
			}
			if f != nil && s.wbroken == nil {
				if err := w.WriteFrame(f); err != nil {
					if wire.IsEncodeError(err) {
						// Nothing was buffered: skip the frame.
						if errs == nil {
							errs = make(map[int]error)
						}
						errs[i] = err
						s.srv.cfg.logger.Warn("stomp frame not encodable", "session", s.id, "frame", f.String(), "err", err)
					} else {
						fail(err)
					}
				}
			}
			if st := it.hb; st != nil {
				w.SetVersion(st.version)
				s.startHeartBeats(st.send)
			}
			if it.final {
				final = true
			}
		}
		if s.wbroken == nil {
			if err := w.Flush(); err != nil {
				fail(err)
			} else {
				wrote = true
			}
		}
		for i := 0; i < len(batch); {
			i = s.settle(batch, errs, i)
		}
		clear(batch)
		if final {
			s.finish()
			return
		}
	}
}

// finish ends the session's writing, on the writer goroutine once the
// final item is written: no run starts after it, the heart-beat timer is
// stopped, the transport closed, and run (waiting on s.written) told.
func (s *Session) finish() {
	s.mu.Lock()
	s.wfinished = true
	s.writing = false
	s.out, s.rs = nil, nil
	if s.hbTimer != nil {
		s.hbTimer.Stop()
	}
	s.mu.Unlock()
	s.closeTransport()
	s.written.Done()
}

// settle calls the Written callbacks of the written batch from its i-th
// item on, and drops the batch's references to its messages (after
// Written, which may Release them), up to the end or to a callback that
// panics: that ends the session with an ERROR, not the process, and
// settle returns the index after it, for the caller to go on from. One
// deferred recover covers the whole run, not one per delivery.
func (s *Session) settle(batch []outItem, errs map[int]error, i int) (next int) {
	var perr error
	defer func() {
		if perr != nil {
			if m := batch[i].m; m != nil { // the callback panicked, not unref
				batch[i].m = nil
				m.unref()
			}
			next = i + 1
			s.shutdown(perr, s.errorFrame(perr, ""))
		}
	}()
	defer s.recovered("Written", &perr)
	for ; i < len(batch); i++ {
		it := &batch[i]
		if it.written != nil {
			err := errs[i]
			if err == nil && s.wbroken != nil {
				// Never (or not completely) written: the client did
				// not get it.
				err = fmt.Errorf("%w: %w", ErrSessionClosed, s.wbroken)
			}
			it.written(err)
		}
		if m := it.m; m != nil {
			it.m = nil
			m.unref()
		}
	}
	return i
}
