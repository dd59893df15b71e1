// Package faultproxy is a TCP proxy for tests that breaks connections on
// demand: it listens on 127.0.0.1, forwards every connection it accepts to
// a target (the embedded broker, RabbitMQ, ...), and can cut them all at
// once, stop forwarding without closing (only heart-beats can tell), refuse
// new connections (accept and close them, or stop listening altogether),
// add latency, or cut a connection after exactly n bytes.
//
//	p, err := faultproxy.Start(brokerAddr)
//	defer p.Close()
//	conn, err := stomp.Dial(ctx, p.URL())
//	p.Cut() // every connection through p closes, both sides
//
// Every goroutine it starts ends by Close.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Direction names one way through the proxy, or both.
type Direction uint8

const (
	// ClientToServer is what the client writes and the target reads.
	ClientToServer Direction = 1 << iota
	// ServerToClient is what the target writes and the client reads.
	ServerToClient
	// Both is either way; for CutAfter it counts the bytes of both.
	Both = ClientToServer | ServerToClient
)

// String names the direction: "client->server", "server->client" or "both".
func (d Direction) String() string {
	switch d {
	case ClientToServer:
		return "client->server"
	case ServerToClient:
		return "server->client"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

const (
	chunkSize   = 32 << 10        // the most one read forwards at a time
	queueChunks = 16              // chunks read ahead of the writer, per direction
	dialTimeout = 5 * time.Second // for the target
	drainTime   = time.Second     // a CutAfter cut waits this long for the peer to read its last bytes
)

// Proxy forwards TCP connections to a target and injects faults into them.
// Its methods are safe for concurrent use and do not block, except Close
// and WaitActive. Each connection costs five goroutines and holds at most
// about 1 MiB read ahead (17 chunks of 32 KiB each way).
type Proxy struct {
	addr string         // 127.0.0.1:port, kept across Down and Up
	wg   sync.WaitGroup // the accept loops, every link's goroutines
	fwd  [2]atomic.Int64
	accn atomic.Int64 // connections accepted

	mu       sync.Mutex
	ln       net.Listener // nil while Down
	target   string
	refuse   bool
	delay    time.Duration
	stall    chan struct{} // non-nil while stalled; Resume closes it
	cutAfter *cutRule      // for the next connection accepted
	links    map[*link]struct{}
	draining map[net.Conn]struct{} // conns cut by CutAfter, waiting for their peer
	changed  chan struct{}         // closed and replaced whenever links changes
	closed   bool
}

type cutRule struct {
	dir  Direction
	left int64 // guarded by the link's mu once it owns the rule
}

// Start listens on 127.0.0.1 on a free port and forwards every connection
// to target (host:port). The target is dialled for each connection as it
// is accepted, not now.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{addr: ln.Addr().String(), ln: ln, target: target, links: map[*link]struct{}{}, changed: make(chan struct{})}
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Addr is the proxy's listening address, 127.0.0.1:port.
func (p *Proxy) Addr() string { return p.addr }

// URL is "tcp://" + Addr, for Dial.
func (p *Proxy) URL() string { return "tcp://" + p.Addr() }

// SetTarget makes connections accepted from now on go to addr; those
// already open stay where they are.
func (p *Proxy) SetTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// Cut closes every open connection at once, both sides (the client's and
// the target's), dropping whatever was read but not yet forwarded. New
// connections are forwarded as before.
func (p *Proxy) Cut() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.cut(nil)
	}
}

// Stall stops forwarding in both directions, for open connections and new
// ones alike, without closing anything: what the peers write is read (up
// to a bounded read-ahead, then TCP pushes back) and held. Only a
// heart-beat timeout can tell. Bytes already being written when Stall is
// called may still arrive.
func (p *Proxy) Stall() {
	p.mu.Lock()
	if p.stall == nil {
		p.stall = make(chan struct{})
	}
	p.mu.Unlock()
}

// Resume forwards again after Stall, the held bytes first, in order.
func (p *Proxy) Resume() {
	p.mu.Lock()
	if p.stall != nil {
		close(p.stall)
		p.stall = nil
	}
	p.mu.Unlock()
}

// Down makes the proxy look like a stopped broker: it stops listening, so
// that dialling Addr is refused by the system (ECONNREFUSED), and cuts
// every open connection. Up listens again. Down while down does nothing.
func (p *Proxy) Down() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	p.Cut()
}

// Up listens again on the same address after Down; it fails if the port
// has been taken in between, or after Close. Up while up does nothing.
func (p *Proxy) Up() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("faultproxy: Up after Close")
	}
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("faultproxy: listen again: %w", err)
	}
	p.ln = ln
	p.wg.Add(1) // before Close waits: it sets closed, under mu, first
	go p.accept(ln)
	return nil
}

// Refuse(true) makes the proxy accept each new connection and close it at
// once, without dialling the target (the client sees its connect succeed,
// then EOF); Refuse(false) forwards them again. Open connections are not
// touched.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

// SetDelay adds latency d to every chunk forwarded from now on, in each
// direction: a chunk read at t is written at t+d at the earliest. Chunks
// are pipelined (a bounded read-ahead), so d is latency, not a bandwidth
// limit. 0 removes it.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = max(d, 0)
	p.mu.Unlock()
}

// CutAfter makes the next connection accepted close once exactly n bytes
// (n ≥ 0) have been forwarded in dir (for Both, counted over the two
// directions together): the peer on the receiving side gets those n bytes
// and then EOF, the other side is closed. With n = 0 the first byte to
// cross dir is not forwarded and the connection is cut. The rule applies
// to one connection; call CutAfter again for the next. A later call
// replaces a rule not yet used.
func (p *Proxy) CutAfter(dir Direction, n int64) {
	if dir&Both == 0 {
		dir = Both
	}
	p.mu.Lock()
	p.cutAfter = &cutRule{dir: dir & Both, left: max(n, 0)}
	p.mu.Unlock()
}

// Accepted is the number of connections accepted so far, refused ones
// included.
func (p *Proxy) Accepted() int { return int(p.accn.Load()) }

// Active is the number of connections open through the proxy now.
func (p *Proxy) Active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Forwarded is the number of bytes forwarded so far in dir, over every
// connection (for Both, the sum). Bytes are counted as they are written, so
// that bytes a peer has read are always counted.
func (p *Proxy) Forwarded(dir Direction) int64 {
	var n int64
	if dir&ClientToServer != 0 {
		n += p.fwd[0].Load()
	}
	if dir&ServerToClient != 0 {
		n += p.fwd[1].Load()
	}
	return n
}

// WaitActive blocks until Active() == n or ctx ends (then it returns
// ctx.Err()). It waits on a channel, not by polling.
func (p *Proxy) WaitActive(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		active, changed := len(p.links), p.changed
		p.mu.Unlock()
		if active == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("faultproxy: %d connections open, waiting for %d: %w", active, n, ctx.Err())
		}
	}
}

// Close stops listening, closes every connection at once and waits for
// every goroutine of the proxy to end. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	for c := range p.draining {
		c.Close()
	}
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	var err error
	if ln != nil {
		err = ln.Close()
	}
	for _, l := range links {
		l.kill()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and the like: try again
			continue
		}
		p.accn.Add(1)
		p.mu.Lock()
		if p.closed || p.refuse {
			p.mu.Unlock()
			c.Close()
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &link{p: p, client: c, ctx: ctx, cancel: cancel, rule: p.cutAfter, done: make(chan struct{})}
		p.cutAfter = nil
		target := p.target
		p.links[l] = struct{}{}
		p.notifyLocked()
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run(target)
	}
}

// notifyLocked wakes WaitActive; p.mu is held.
func (p *Proxy) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Proxy) remove(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.notifyLocked()
	p.mu.Unlock()
}

// waitForward returns once bytes may be forwarded (not stalled), or false
// when done closes first.
func (p *Proxy) waitForward(done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		stall := p.stall
		p.mu.Unlock()
		if stall == nil {
			return true
		}
		select {
		case <-stall:
		case <-done:
			return false
		}
	}
}

func (p *Proxy) currentDelay() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay
}
