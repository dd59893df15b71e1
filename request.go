package stomp

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/stompout/stomp/frame"
)

// request is one frame on its way from a call to a session's writer
// goroutine. It lives until its frame is written (or given up on).
// Requests are pooled: the caller fills one, queues it, and returns it to
// the pool once the writer has answered on done (or has released it).
type request struct {
	f     frame.Frame
	cc    callConfig // the call's options, kept here so that they do not escape to the heap
	mode  frame.ContentLengthMode
	state atomic.Int32 // see the req* constants
	done  chan error   // capacity 1: the writer's one answer
	conn  *Conn        // whose pool it returns to
	rcpt  *Receipt     // the receipt asked for, registered with the session that writes the frame
	// bound is the session the frame belongs to (an ACK of a message it
	// delivered, a frame of a transaction begun on it, DISCONNECT): the
	// writer of any other session refuses it (see session.refuse) and writes
	// nothing. nil: any session.
	bound *session
	tx    *Tx           // the transaction the frame belongs to, or nil
	sub   *Subscription // SUBSCRIBE, UNSUBSCRIBE: the subscription
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
	req.state.Store(reqQueued)
	return req
}

func freeRequest(req *request) {
	req.f.Body = nil
	req.cc.receipt = nil
	req.rcpt, req.bound, req.tx, req.sub = nil, nil, nil, nil
	req.conn.reqPool.Put(req)
}

// addHeaders appends the caller's extra headers.
func addHeaders(h *frame.Header, kvs [][2]string) {
	for _, kv := range kvs {
		h.Add(kv[0], kv[1])
	}
}

// do queues req for the writer and waits until it is flushed. With a
// receipt asked for in cc, the future is made first and resolved with the
// error if the frame is not sent.
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
// session ends first. A pending frame's receipt stays registered, to be
// resolved by the server's answer or the session's end.
func (c *Conn) doPending(ctx context.Context, req *request, cc *callConfig) (pending bool, err error) {
	var r *Receipt
	if cc.receipt != nil {
		r = newReceipt(c.rcptIDs.next("rcpt-"))
		*cc.receipt = r
		req.f.Header.Add(frame.HdrReceipt, r.id)
		req.rcpt = r
	}
	pending, err = c.write(ctx, req)
	if err != nil && r != nil && !pending {
		r.resolve(err)
	}
	return pending, err
}

// write queues req and waits for the writer's answer; it frees req when
// the writer is done with it. pending is as for doPending. During an
// outage req waits in the queue for the next session, unless the Conn
// was configured to fail at once (WithOutageWait(false)).
func (c *Conn) write(ctx context.Context, req *request) (pending bool, err error) {
	if err := ctx.Err(); err != nil {
		freeRequest(req)
		return false, err
	}
	if d := c.direct.Load(); d != nil && directable(req, d) {
		select {
		case <-c.closing: // the queue says why
		default:
			if ok, err := d.sendDirect(ctx, req); ok {
				freeRequest(req)
				return false, err
			}
		}
	}
	if !c.cfg.outageWait && c.current() == nil {
		freeRequest(req)
		select {
		case <-c.closing:
			return false, c.closedErr()
		default:
		}
		return false, ErrNotConnected
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

// answerOrClosed is the result of a request once the Conn has ended: the
// writer's answer if it gave one (the frame was flushed before the end),
// else the Conn's error.
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

// queueCtrl queues f on the session in service without blocking (for the
// reader goroutine, and for undoing a cancelled call). During an outage f
// is dropped: it concerns server state that died with the session.
func (c *Conn) queueCtrl(f *frame.Frame) {
	if s := c.current(); s != nil {
		s.queueCtrl(f)
	}
}
