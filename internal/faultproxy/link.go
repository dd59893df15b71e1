package faultproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// link is one proxied connection: the client's side, the target's, and a
// reader and a writer goroutine for each direction.
type link struct {
	p      *Proxy
	client net.Conn
	ctx    context.Context // cancelled by cut: ends the dial
	cancel context.CancelFunc
	done   chan struct{} // closed by cut
	once   sync.Once

	mu     sync.Mutex
	server net.Conn // nil until dialled
	rule   *cutRule // nil: no CutAfter for this connection
}

type chunk struct {
	b   []byte
	due time.Time // not written before
}

// run dials the target and forwards both ways until the link is cut or
// both directions have ended.
func (l *link) run(target string) {
	defer l.p.wg.Done()
	d := net.Dialer{Timeout: dialTimeout}
	srv, err := d.DialContext(l.ctx, "tcp", target)
	if err != nil {
		l.cut(nil)
		return
	}
	l.mu.Lock()
	select {
	case <-l.done:
		l.mu.Unlock()
		srv.Close()
		return
	default:
	}
	l.server = srv
	l.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(ClientToServer, l.client, srv) }()
	go func() { defer wg.Done(); l.pump(ServerToClient, srv, l.client) }()
	wg.Wait()
	l.cut(nil)
}

// pump forwards src to dst: a reader goroutine reads chunks ahead (at most
// queueChunks), this one writes them when due and not stalled. src's EOF
// becomes a half-close of dst; any other end cuts the link.
func (l *link) pump(dir Direction, src, dst net.Conn) {
	ch := make(chan chunk, queueChunks)
	var readErr error // set before ch closes
	go func() {
		defer close(ch)
		buf := make([]byte, chunkSize)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				c := chunk{b: append([]byte(nil), buf[:n]...), due: time.Now().Add(l.p.currentDelay())}
				select {
				case ch <- c:
				case <-l.done:
					readErr = net.ErrClosed
					return
				}
			}
			if err != nil {
				readErr = err
				return
			}
		}
	}()
	// The reader ends once the link is cut (its conns are closed) or src
	// ends; wait for it in every case.
	defer func() {
		for range ch {
		}
	}()

	counter := &l.p.fwd[0]
	if dir == ServerToClient {
		counter = &l.p.fwd[1]
	}
	for {
		var c chunk
		var ok bool
		select {
		case c, ok = <-ch:
		case <-l.done:
			return
		}
		if !ok {
			if errors.Is(readErr, io.EOF) {
				closeWrite(dst)
			} else {
				l.cut(nil)
			}
			return
		}
		if wait := time.Until(c.due); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
		}
		if !l.p.waitForward(l.done) {
			return
		}
		b, last := l.allow(dir, c.b)
		if len(b) > 0 {
			// Counted before the write, so that a peer that has read the
			// bytes finds them counted; corrected if the write fails.
			counter.Add(int64(len(b)))
			n, err := dst.Write(b)
			if err != nil {
				counter.Add(int64(n - len(b)))
				l.cut(nil)
				return
			}
		}
		if last {
			l.cut(dst)
			return
		}
	}
}

// allow applies the CutAfter rule to b: the part of b that may be
// forwarded, and whether the link is cut after it.
func (l *link) allow(dir Direction, b []byte) ([]byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rule == nil || l.rule.dir&dir == 0 {
		return b, false
	}
	n := min(int64(len(b)), l.rule.left)
	l.rule.left -= n
	return b[:n], l.rule.left == 0
}

// cut ends the link once: both conns close at once, except graceful
// (non-nil after a CutAfter), which gets a half-close after the bytes
// already written and is closed when its peer has read them (or after
// drainTime).
func (l *link) cut(graceful net.Conn) {
	l.once.Do(func() {
		close(l.done)
		l.cancel()
		l.mu.Lock()
		srv := l.server
		l.mu.Unlock()
		for _, c := range []net.Conn{l.client, srv} {
			switch {
			case c == nil:
			case c == graceful:
				closeWrite(c)
				l.p.wg.Add(1) // a pump of this link is running: the count is not 0
				go l.p.drain(c)
			default:
				c.Close()
			}
		}
		l.p.remove(l)
	})
}

// kill cuts the link and closes both conns, a draining one too.
func (l *link) kill() {
	l.cut(nil)
	l.mu.Lock()
	srv := l.server
	l.mu.Unlock()
	l.client.Close()
	if srv != nil {
		srv.Close()
	}
}

// drain reads and discards what c's peer still sends until it closes (it
// has read everything before our FIN by then) or drainTime passes, then
// closes c. Closing a socket with unread input would reset it, and a
// reset can destroy bytes not yet delivered.
func (p *Proxy) drain(c net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	if p.draining == nil {
		p.draining = map[net.Conn]struct{}{}
	}
	p.draining[c] = struct{}{}
	p.mu.Unlock()

	c.SetReadDeadline(time.Now().Add(drainTime))
	io.Copy(io.Discard, c)
	c.Close()

	p.mu.Lock()
	delete(p.draining, c)
	p.mu.Unlock()
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
