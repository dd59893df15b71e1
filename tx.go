package stomp

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/stompout/stomp/frame"
)

// Tx is a STOMP transaction: the SEND, ACK and NACK frames sent through it
// take effect together on Commit, or not at all on Abort. The server
// aborts a transaction left open when the transport ends; so does a
// reconnect: the Tx is then done, and its methods return an error
// matching ErrTxAborted (and ErrConnectionLost). Methods are safe for
// concurrent use; after Commit or Abort they return ErrTxDone, and so
// does a call racing with Commit or Abort whose frame would have followed
// the COMMIT or ABORT.
type Tx struct {
	conn *Conn
	id   string
	seq  uint64
	done atomic.Bool
	// sess is the session whose writer wrote the BEGIN: the transaction
	// lives and dies with it. Set by that writer before any later frame
	// of the transaction is taken from the queue.
	sess atomic.Pointer[session]
	// aborted is why the server aborted the transaction (its session was
	// lost); nil while it is open or after Commit or Abort.
	aborted atomic.Pointer[error]

	// ended is owned by the writer goroutine: it has written the COMMIT
	// or ABORT, so a frame of the transaction queued after it fails with
	// ErrTxDone instead of reaching a server that no longer knows the
	// transaction (which answers ERROR and ends the connection).
	ended bool
}

// Begin sends BEGIN and returns the transaction once the frame is flushed.
// Options: WithID (default "tx-N"), WithHeader, WithReceipt. If ctx ends
// first, it returns ctx.Err(); if the writer had already taken the BEGIN,
// an ABORT follows it.
func (c *Conn) Begin(ctx context.Context, opts ...BeginOption) (*Tx, error) {
	var cc callConfig
	if err := cc.applyBegin(opts); err != nil {
		return nil, cc.settle(err)
	}
	id := cc.id
	if id == "" {
		id = c.txIDs.next("tx-")
	}
	t := &Tx{conn: c, id: id, seq: c.seq.Add(1)}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return nil, cc.settle(c.closedErr())
	case c.txs[id] != nil:
		c.mu.Unlock()
		return nil, cc.settle(fmt.Errorf("stomp: transaction id %q is in use", id))
	}
	c.txs[id] = t
	c.mu.Unlock()
	if pending, err := c.txFrame(ctx, frame.CmdBegin, t, id, &cc); err != nil {
		c.removeTx(t)
		if pending {
			// The BEGIN still goes out: undo it after it.
			c.queueCtrl(frame.New(frame.CmdAbort, frame.HdrTransaction, id))
		}
		return nil, err
	}
	return t, nil
}

// Transact runs fn in a new transaction: it commits when fn returns nil
// and waits for the server's RECEIPT of the COMMIT, so a nil result means
// the broker has committed; it aborts when fn returns an error or panics
// (the panic goes on after the ABORT). It returns fn's error (joined with
// the ABORT's, if that failed) or the error of BEGIN or COMMIT. If ctx
// ends while it waits for the COMMIT's RECEIPT, it returns ctx.Err() and
// the outcome is unknown. Once ctx has ended, an ABORT is queued without
// waiting for the writer, and a COMMIT that could not be sent is followed
// by one.
func (c *Conn) Transact(ctx context.Context, fn func(tx *Tx) error) (err error) {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			tx.abort(ctx)
			panic(p)
		}
	}()
	if err := fn(tx); err != nil {
		if aerr := tx.abort(ctx); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	r, err := tx.CommitReceipt(ctx)
	if err != nil {
		if !tx.done.Load() { // the COMMIT was not sent: do not leave it open
			tx.abort(ctx)
		}
		return err
	}
	return r.Wait(ctx)
}

// abort ends the transaction for Transact: with Abort while ctx lasts;
// once ctx has ended, by queueing the ABORT without waiting for it, so
// that neither a cancelled ctx nor a stuck writer keeps Transact from
// returning, and the transaction is not left open on the server.
func (t *Tx) abort(ctx context.Context) error {
	err := t.Abort(ctx)
	switch {
	case err == nil, errors.Is(err, ErrTxDone):
		return nil
	case t.done.CompareAndSwap(false, true): // not sent
		if ctx.Err() == nil {
			t.done.Store(false)
			return err // could not be encoded, say: nothing to queue
		}
		t.conn.queueCtrl(frame.New(frame.CmdAbort, frame.HdrTransaction, t.id))
		t.conn.removeTx(t)
		return nil
	case ctx.Err() != nil && !errors.Is(err, ErrClosed):
		return nil // taken by the writer: it still goes out
	}
	return err
}

// ID returns the transaction id (the transaction header).
func (t *Tx) ID() string { return t.id }

// Send sends a SEND frame in the transaction; see Conn.Send.
func (t *Tx) Send(ctx context.Context, dest string, body []byte, opts ...SendOption) error {
	if t.done.Load() {
		return settleOpts(opts, t.doneErr())
	}
	return t.conn.send(ctx, t, dest, body, opts)
}

// SendJSON sends v as JSON in the transaction; see Conn.SendJSON.
func (t *Tx) SendJSON(ctx context.Context, dest string, v any, opts ...SendOption) error {
	if t.done.Load() {
		return settleOpts(opts, t.doneErr())
	}
	return t.conn.sendJSON(ctx, t, dest, v, opts)
}

// Ack acknowledges m in the transaction; see Message.Ack. The client
// counts it as m's settlement whatever becomes of the transaction: a second
// Ack or Nack of m returns ErrAlreadyAcked, even after Abort (the broker then
// redelivers m once the subscription or the connection ends; in AckClient
// mode a later cumulative ACK of the subscription covers it). In AckClient
// mode it returns ErrAckOrder while an earlier message of the subscription
// is unsettled.
func (t *Tx) Ack(ctx context.Context, m Message, opts ...CallOption) error {
	if t.done.Load() {
		return settleOpts(opts, t.doneErr())
	}
	return t.conn.ackFrame(ctx, frame.CmdAck, t, m, opts)
}

// Nack rejects m in the transaction; see Message.Nack.
func (t *Tx) Nack(ctx context.Context, m Message, opts ...CallOption) error {
	if t.done.Load() {
		return settleOpts(opts, t.doneErr())
	}
	return t.conn.ackFrame(ctx, frame.CmdNack, t, m, opts)
}

// Commit sends COMMIT and returns once it is flushed; WithReceipt asks the
// server to confirm. If the frame could not be sent (ctx ended before the
// writer took it, or it could not be encoded), it returns the error and
// the transaction stays open; if ctx ends after the writer took it, it
// returns ctx.Err() but the COMMIT still goes out and the transaction is
// done.
func (t *Tx) Commit(ctx context.Context, opts ...CallOption) error {
	return t.end(ctx, frame.CmdCommit, opts)
}

// CommitReceipt is Commit asking the server for a RECEIPT of the COMMIT,
// and returns its future (never nil; see SendReceipt): once r.Wait returns
// nil, the broker has applied the transaction.
func (t *Tx) CommitReceipt(ctx context.Context, opts ...CallOption) (*Receipt, error) {
	var r *Receipt
	err := t.Commit(ctx, append(opts, WithReceipt(&r))...)
	return r, err
}

// Abort sends ABORT and returns once it is flushed; see Commit.
func (t *Tx) Abort(ctx context.Context, opts ...CallOption) error {
	return t.end(ctx, frame.CmdAbort, opts)
}

func (t *Tx) end(ctx context.Context, cmd string, opts []CallOption) error {
	var cc callConfig
	if err := cc.apply(opts); err != nil {
		return cc.settle(err)
	}
	if !t.done.CompareAndSwap(false, true) {
		return cc.settle(t.doneErr())
	}
	pending, err := t.conn.txFrame(ctx, cmd, t, t.id, &cc)
	if err != nil && !pending {
		t.done.Store(false) // not sent: still open (unless the connection has ended)
		return err
	}
	t.conn.removeTx(t)
	return err
}

func (c *Conn) txFrame(ctx context.Context, cmd string, t *Tx, id string, cc *callConfig) (pending bool, err error) {
	req := c.newRequest(cmd)
	req.tx = t
	req.f.Header.Add(frame.HdrTransaction, id)
	addHeaders(&req.f.Header, cc.headers)
	return c.doPending(ctx, req, cc)
}

// doneErr is what a call on a done transaction returns.
func (t *Tx) doneErr() error {
	if e := t.aborted.Load(); e != nil {
		return *e
	}
	return ErrTxDone
}

// abortedBy marks the transaction aborted by the loss of its session.
func (t *Tx) abortedBy(cause error) {
	err := fmt.Errorf("%w: %w", ErrTxAborted, lost(cause))
	t.aborted.CompareAndSwap(nil, &err)
	t.done.Store(true)
}

// abortedErr is the answer to a frame of the transaction that reached the
// writer of a later session.
func (t *Tx) abortedErr() error {
	if e := t.aborted.Load(); e != nil {
		return *e
	}
	return fmt.Errorf("%w: %w", ErrTxAborted, ErrConnectionLost)
}

func (c *Conn) removeTx(t *Tx) {
	c.mu.Lock()
	if c.txs[t.id] == t {
		delete(c.txs, t.id)
	}
	c.mu.Unlock()
}
