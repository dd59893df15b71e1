package stomp

import (
	"fmt"
	"sync"
	"time"
)

// State is where a Conn stands.
type State int

// The states of a Conn, in the order a life goes through them.
const (
	// StateConnecting: Dial or Connect is making the first connection.
	StateConnecting State = iota
	// StateConnected: a transport is in service (StateChange.Addr says
	// to which broker).
	StateConnected
	// StateLost: the transport in service was lost (StateChange.Err says
	// why); calls wait for the next one (see WithOutageWait).
	StateLost
	// StateReconnecting: a round of connection attempts failed
	// (StateChange.Err says how); the next comes after StateChange.Delay.
	StateReconnecting
	// StateClosed: the Conn has ended (StateChange.Err is Conn.Err).
	StateClosed
)

// String returns the state's name in lower case ("connected", ...).
func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateLost:
		return "lost"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// StateChange is one step in a Conn's life, as Conn.State returns it and
// WithStateListener's function receives it.
type StateChange struct {
	State   State
	Addr    string        // StateConnected: the broker's address; StateLost: the one lost (never a passcode)
	Err     error         // StateLost, StateReconnecting: what went wrong; StateClosed: Conn.Err()
	Attempt int           // StateReconnecting: rounds failed in this outage
	Delay   time.Duration // StateReconnecting: the wait before the next round
}

// String describes the change in one line.
func (e StateChange) String() string {
	switch e.State {
	case StateConnected:
		return "connected to " + e.Addr
	case StateLost:
		return fmt.Sprintf("connection to %s lost: %v", e.Addr, e.Err)
	case StateReconnecting:
		return fmt.Sprintf("reconnecting: attempt %d failed (%v), next in %v", e.Attempt, e.Err, e.Delay)
	case StateClosed:
		if e.Err != nil {
			return fmt.Sprintf("closed: %v", e.Err)
		}
	}
	return e.State.String()
}

// State returns the Conn's latest state change. It does not block.
func (c *Conn) State() StateChange {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// setState records e and hands it to the listener, if any, without
// waiting for it.
func (c *Conn) setState(e StateChange) {
	c.mu.Lock()
	c.state = e
	c.mu.Unlock()
	if c.events != nil {
		c.events.push(e)
	}
}

// maxEvents bounds the state changes waiting for a listener that does not
// keep up; past it the oldest are dropped (consecutive reconnecting
// attempts are folded into the latest before that).
const maxEvents = 256

// eventQueue delivers state changes to the listener on a goroutine of its
// own, in order, so that a slow listener never holds up the client.
type eventQueue struct {
	f    func(StateChange)
	wake chan struct{} // capacity 1

	mu     sync.Mutex
	q      []StateChange
	closed bool
}

func newEventQueue(f func(StateChange)) *eventQueue {
	return &eventQueue{f: f, wake: make(chan struct{}, 1)}
}

func (q *eventQueue) push(e StateChange) {
	q.mu.Lock()
	switch n := len(q.q); {
	case n > 0 && e.State == StateReconnecting && q.q[n-1].State == StateReconnecting:
		q.q[n-1] = e
	case n >= maxEvents:
		copy(q.q, q.q[1:])
		q.q[n-1] = e
	default:
		q.q = append(q.q, e)
	}
	q.mu.Unlock()
	q.signal()
}

func (q *eventQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close lets run return once it has delivered what is queued.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// run is the listener's goroutine.
func (q *eventQueue) run() {
	var batch []StateChange
	for {
		q.mu.Lock()
		batch, q.q = q.q, batch[:0]
		closed := q.closed
		q.mu.Unlock()
		for _, e := range batch {
			q.f(e)
		}
		if len(batch) == 0 {
			if closed {
				return
			}
			<-q.wake
		}
		clear(batch)
	}
}
