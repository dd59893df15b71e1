package stomp

import (
	"context"
	"sync"
)

// Receipt is the future of a RECEIPT the client asked for with
// WithReceipt. It resolves exactly once: with nil when the RECEIPT
// arrives, with a *ServerError when an ERROR frame ends the connection
// (whether or not it names this receipt), with the error that ended the
// connection otherwise (ErrClosed after Close or Disconnect), or with the
// error that kept the frame from being sent. All methods are safe for
// concurrent use.
type Receipt struct {
	id   string
	once sync.Once
	err  error         // written once, before done is closed
	done chan struct{} // closed when resolved
}

func newReceipt(id string) *Receipt {
	return &Receipt{id: id, done: make(chan struct{})}
}

// ID returns the receipt id sent in the frame's receipt header.
func (r *Receipt) ID() string { return r.id }

// Done returns a channel closed once the receipt is resolved.
func (r *Receipt) Done() <-chan struct{} { return r.done }

// Wait blocks until the receipt is resolved or ctx ends and returns the
// receipt's error (nil for a RECEIPT), or ctx.Err(). Ending ctx ends only
// this wait.
func (r *Receipt) Wait(ctx context.Context) error {
	select {
	case <-r.done:
		return r.err
	default:
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err returns the error the receipt resolved with: nil before it is
// resolved and after a RECEIPT; use Done to tell the two apart.
func (r *Receipt) Err() error {
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// resolve settles the future; only the first call has an effect.
func (r *Receipt) resolve(err error) {
	r.once.Do(func() {
		r.err = err
		close(r.done)
	})
}
