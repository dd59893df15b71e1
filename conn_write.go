package stomp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
)

// request is one frame on its way to the writer goroutine. Requests are
// pooled: the caller fills one, queues it, and returns it to the pool once
// the writer has answered on done (or has released it).
type request struct {
	f     frame.Frame
	cc    callConfig // the call's options, kept here so that they do not escape to the heap
	mode  frame.ContentLengthMode
	state atomic.Int32 // see the req* constants
	done  chan error   // capacity 1: the writer's one answer
	conn  *Conn        // whose pool it returns to
	tx    *Tx          // the transaction the frame belongs to, or nil
}

// A request's state moves from reqQueued to reqClaimed when the writer
// takes it, then to reqBuffered once the writer has encoded it into its
// buffer: from then on the caller's body is no longer referenced, so a
// caller whose ctx ends can leave. The caller moves it instead to
// reqAbandoned (still queued: the writer skips it), to reqLeft (buffered:
// the frame still goes out) or to reqCancelling (being encoded: the
// writer answers errReleased as soon as it has encoded it).
const (
	reqQueued int32 = iota
	reqClaimed
	reqAbandoned
	reqBuffered
	reqLeft
	reqCancelling
)

// errReleased is the writer's answer to a caller whose ctx ended while its
// frame was being encoded: the frame is buffered and will be flushed, the
// caller need not wait for it.
var errReleased = errors.New("stomp: internal: request released")

// newRequest takes a request from the Conn's pool. The pool is per Conn,
// not global, because a channel made inside a testing/synctest bubble must
// not be used outside it, and a Conn belongs to the bubble it was made in.
func (c *Conn) newRequest(cmd string) *request {
	req, _ := c.reqPool.Get().(*request)
	if req == nil {
		req = &request{done: make(chan error, 1), conn: c}
	}
	req.f.Command = cmd
	req.f.Header.Reset()
	req.f.Body = nil
	clear(req.cc.headers)
	req.cc = callConfig{headers: req.cc.headers[:0]}
	req.mode = frame.ContentLengthAuto
	req.tx = nil
	req.state.Store(reqQueued)
	return req
}

func freeRequest(req *request) {
	req.f.Body = nil
	req.cc.receipt = nil
	req.tx = nil
	req.conn.reqPool.Put(req)
}

// addHeaders appends the caller's extra headers.
func addHeaders(h *frame.Header, kvs [][2]string) {
	for _, kv := range kvs {
		h.Add(kv[0], kv[1])
	}
}

// do queues req for the writer and waits until it is flushed. With a
// receipt asked for in cc, it registers the future first and resolves it
// with the error if the frame is not sent.
//
// If ctx ends while req is still queued, req is withdrawn and do returns
// ctx.Err(). If ctx ends once the writer has encoded the frame into its
// buffer, do returns ctx.Err() at once too, but the frame will still be
// written (see doPending). Only while the writer is encoding the frame,
// which for a body of the buffer's size or more means writing the body to
// the transport, does do wait after ctx has ended, because the writer
// still reads the caller's body; WithWriteTimeout bounds that.
func (c *Conn) do(ctx context.Context, req *request, cc *callConfig) error {
	_, err := c.doPending(ctx, req, cc)
	return err
}

// doPending is do, and reports whether the frame is pending: ctx ended
// after the writer had buffered the frame, so the frame goes out unless the
// connection ends first. A pending frame's receipt stays registered, to be
// resolved by the server's answer or the connection's end.
func (c *Conn) doPending(ctx context.Context, req *request, cc *callConfig) (pending bool, err error) {
	var r *Receipt
	if cc.receipt != nil {
		r = newReceipt(c.rcptIDs.next("rcpt-"))
		*cc.receipt = r
		req.f.Header.Add(frame.HdrReceipt, r.id)
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			err := c.closedErr()
			r.resolve(err)
			freeRequest(req)
			return false, err
		}
		c.receipts[r.id] = r
		c.mu.Unlock()
	}
	pending, err = c.write(ctx, req)
	if err != nil && r != nil && !pending {
		c.mu.Lock()
		if c.receipts != nil {
			delete(c.receipts, r.id)
		}
		c.mu.Unlock()
		r.resolve(err)
	}
	return pending, err
}

// write queues req and waits for the writer's answer; it frees req when
// the writer is done with it. pending is as for doPending.
func (c *Conn) write(ctx context.Context, req *request) (pending bool, err error) {
	if err := ctx.Err(); err != nil {
		freeRequest(req)
		return false, err
	}
	select {
	case c.writeq <- req:
	case <-c.closing:
		freeRequest(req)
		return false, c.closedErr()
	case <-ctx.Done():
		freeRequest(req)
		return false, ctx.Err()
	}
	select {
	case err := <-req.done:
		freeRequest(req)
		return false, err
	case <-c.done:
		return false, c.answerOrClosed(req)
	case <-ctx.Done():
	}
	// ctx ended. Leave without waiting for the writer unless it is reading
	// the request right now. A request left behind is not reused: the
	// writer may still answer on its done.
	select {
	case err := <-req.done: // answered meanwhile: that is the outcome
		freeRequest(req)
		return false, err
	default:
	}
	for {
		switch req.state.Load() {
		case reqQueued:
			if req.state.CompareAndSwap(reqQueued, reqAbandoned) {
				return false, ctx.Err() // the writer will skip it
			}
		case reqBuffered:
			if req.state.CompareAndSwap(reqBuffered, reqLeft) {
				return true, ctx.Err()
			}
		case reqClaimed:
			if req.state.CompareAndSwap(reqClaimed, reqCancelling) {
				select {
				case err := <-req.done:
					freeRequest(req)
					if err == errReleased {
						return true, ctx.Err()
					}
					return false, err
				case <-c.done:
					return false, c.answerOrClosed(req)
				}
			}
		default: // only the caller leaves the three states above
			select {
			case err := <-req.done:
				freeRequest(req)
				return false, err
			case <-c.done:
				return false, c.answerOrClosed(req)
			}
		}
	}
}

// answerOrClosed is the result of a request once the connection has
// ended: the writer's answer if it gave one (the frame was flushed before
// the end), else the connection's error.
func (c *Conn) answerOrClosed(req *request) error {
	select {
	case err := <-req.done:
		if err != errReleased {
			return err
		}
	default:
	}
	return c.closedErr()
}

// queueCtrl queues a frame from the reader goroutine, which must never
// block on the writer.
func (c *Conn) queueCtrl(f *frame.Frame) {
	c.ctrlMu.Lock()
	c.ctrl = append(c.ctrl, f)
	c.ctrlMu.Unlock()
	select {
	case c.ctrlSig <- struct{}{}:
	default:
	}
}

// maxBatch bounds how many frames the writer takes in one batch, so that
// callers get their answers even while others keep queueing.
const maxBatch = 128

// writeLoop is the writer goroutine: it takes every frame queued, writes
// them all and flushes once, then answers each caller; when idle it sends
// heart-beats; it ends the connection on a write error or when the server
// has gone silent.
func (c *Conn) writeLoop() {
	defer c.exited()
	pace := heartbeat.NewPacer(c.hbSend, 0)
	defer pace.Stop()
	batch := make([]*request, 0, maxBatch)
	var ctrl []*frame.Frame
	for {
		batch = batch[:0]
		ctrl = ctrl[:0]
		select {
		case req := <-c.writeq:
			batch = append(batch, req)
		case <-c.ctrlSig:
		case <-pace.C():
			if !pace.Due() {
				continue
			}
			err := c.w.WriteHeartBeat()
			if err == nil {
				err = c.w.Flush()
			}
			if err != nil {
				c.shutdown(c.writeError(err))
				return
			}
			pace.Wrote()
			continue
		case <-c.closing:
			return
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
		c.ctrlMu.Lock()
		ctrl = append(ctrl, c.ctrl...)
		clear(c.ctrl)
		c.ctrl = c.ctrl[:0]
		c.ctrlMu.Unlock()

		wrote, err := c.writeBatch(ctrl, batch)
		if err != nil {
			c.shutdown(c.writeError(err))
			return
		}
		if wrote { // a batch of requests all given up on writes nothing
			pace.Wrote()
		}
	}
}

// writeBatch writes the frames and flushes once, then answers the callers.
// A frame that cannot be encoded fails alone; a transport error is
// returned, after every caller has been answered with it. wrote reports
// whether any frame was written.
func (c *Conn) writeBatch(ctrl []*frame.Frame, batch []*request) (wrote bool, fatal error) {
	for _, f := range ctrl {
		if c.wroteDisconnect {
			break
		}
		c.w.SetContentLength(frame.ContentLengthAuto)
		if err := c.w.WriteFrame(f); err == nil {
			wrote = true
		} else if !isEncodeError(err) {
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
		if c.wroteDisconnect {
			// The specification: no frame after DISCONNECT. A call that
			// raced with Disconnect fails instead of being written and
			// ignored by the server.
			req.done <- ErrClosed
			batch[n-1] = nil
			continue
		}
		if req.tx != nil && req.tx.ended {
			req.done <- ErrTxDone // raced with Commit or Abort
			batch[n-1] = nil
			continue
		}
		c.w.SetContentLength(req.mode)
		if err := c.w.WriteFrame(&req.f); err != nil {
			if isEncodeError(err) {
				req.done <- fmt.Errorf("stomp: %s: %w", req.f.Command, err)
				batch[n-1] = nil
				continue
			}
			fatal = err
		} else {
			wrote = true
			switch req.f.Command {
			case frame.CmdDisconnect:
				c.wroteDisconnect = true
			case frame.CmdCommit, frame.CmdAbort:
				if req.tx != nil {
					req.tx.ended = true
				}
			}
		}
		// The frame is in the Writer's buffer (or on the wire): the
		// caller's body is no longer needed. A caller whose ctx ended
		// while it was being encoded is waiting to hear that.
		if !req.state.CompareAndSwap(reqClaimed, reqBuffered) {
			req.done <- errReleased
			batch[n-1] = nil
		}
	}
	if fatal == nil {
		fatal = c.w.Flush()
	}
	var answer error
	if fatal != nil {
		answer = c.writeError(fatal)
	}
	for _, req := range batch[:n] {
		if req != nil {
			req.done <- answer
		}
	}
	clear(batch)
	return wrote, fatal
}

// isEncodeError tells a frame the Writer refused (nothing was buffered)
// from a transport error.
func isEncodeError(err error) bool {
	var pe *frame.ProtocolError
	return errors.As(err, &pe)
}

// transportWriter is what the frame.Writer writes through: it sets the
// write deadline before every write to the transport, so the bound is on
// progress (each write is at most one buffer, 32 KiB), not on whole
// batches.
type transportWriter struct{ c *Conn }

// Write writes p to the transport under the write deadline. A large body
// reaches it in one piece (the frame.Writer writes it straight through),
// so p is written in pieces of writeChunk, each with its own deadline;
// except over a WebSocket, where each Write is one message.
func (w transportWriter) Write(p []byte) (int, error) {
	c := w.c
	d := time.Duration(0)
	if c.dl != nil {
		d = c.cfg.writeTimeout
		if d == 0 && c.mon != nil {
			// A server that takes nothing for as long as a silent one
			// would be declared dead is dead: without this the writer
			// could block forever.
			d = c.mon.Timeout()
		}
	}
	if d == 0 {
		return c.rw.Write(p)
	}
	if _, ws := c.rw.(*wsConn); ws {
		c.dl.SetWriteDeadline(time.Now().Add(d))
		return c.rw.Write(p)
	}
	n := 0
	for n < len(p) {
		c.dl.SetWriteDeadline(time.Now().Add(d))
		m, err := c.rw.Write(p[n:min(len(p), n+writeChunk)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// writeChunk is the most transportWriter writes under one deadline.
const writeChunk = frame.DefaultBufferSize

func (c *Conn) writeError(err error) error {
	select {
	case <-c.closing:
		return c.closedErr()
	default:
	}
	return fmt.Errorf("stomp: write: %w", err)
}

func (c *Conn) heartBeatError() error {
	var te *heartbeat.TimeoutError
	if errors.As(c.mon.Err(), &te) {
		return &HeartBeatError{Interval: te.Interval, Silence: te.Silence}
	}
	return &HeartBeatError{Interval: c.hbRecv}
}
