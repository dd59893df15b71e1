package compat

import (
	"bytes"
	"net"
	"runtime"
	"testing"
	"time"

	gostompserver "github.com/go-stomp/stomp/v3/server"
	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/server"
)

// idleConns is how many idle connections each server holds while its
// memory is measured (issue 9: 5,000).
const idleConns = 5000

// idleBound is the most an idle stompout connection may cost beyond the
// bare TCP pair (measured: about 7.3 KB, of which 4 KiB are the stack of
// the session's reader goroutine, the only goroutine an idle session has;
// it was about 79 KB before sessions gave their buffers back while idle,
// and 13.3 KB while the writer goroutine waited for work).
const idleBound = 9 << 10

// quiet is a go-stomp Logger that discards everything.
type quiet struct{}

func (quiet) Debugf(string, ...interface{})   {}
func (quiet) Infof(string, ...interface{})    {}
func (quiet) Warningf(string, ...interface{}) {}
func (quiet) Errorf(string, ...interface{})   {}
func (quiet) Debug(string)                    {}
func (quiet) Info(string)                     {}
func (quiet) Warning(string)                  {}
func (quiet) Error(string)                    {}

// usage is the heap and stack memory in use after a full collection.
type usage struct{ heap, stack int64 }

func inUse() usage {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return usage{int64(ms.HeapInuse), int64(ms.StackInuse)}
}

// cost is what one connection costs, split in heap and stacks.
type cost struct{ heap, stack int64 }

func (c cost) total() int64 { return c.heap + c.stack }

// idleCost opens idleConns connections to addr, each completing CONNECT
// (STOMP 1.2, no heart-beats) when stomp is set, and returns the memory
// they cost per connection, client ends included, once they are idle.
func idleCost(t *testing.T, addr string, stomp bool) cost {
	t.Helper()
	before := inUse()
	conns := make([]net.Conn, 0, idleConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 512)
	for range idleConns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
		if !stomp {
			continue
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\nlogin:guest\npasscode:guest\n\n\x00")); err != nil {
			t.Fatal(err)
		}
		var got []byte
		for !bytes.Contains(got, []byte{0}) {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("connection %d: CONNECTED: %q %v", len(conns), got, err)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.HasPrefix(got, []byte("CONNECTED\n")) {
			t.Fatalf("connection %d: %q", len(conns), got)
		}
		c.SetDeadline(time.Time{})
	}
	time.Sleep(200 * time.Millisecond) // let every session settle into its idle read
	after := inUse()
	return cost{(after.heap - before.heap) / idleConns, (after.stack - before.stack) / idleConns}
}

// TestIdleMemoryPerConnection measures what an idle connection costs on
// stomp serve's engine (the embedded broker) and on go-stomp's server, and
// on a bare TCP pair (the part both share: the client's end and the
// accepted socket), and prints the three. Ours is compared with
// go-stomp's beyond the bare pair (the figures are deltas of HeapInuse and
// StackInuse after GC). Issue 9 targets at most half of go-stomp's: the test
// asserts that, and an absolute bound. (Measured on 2 cores, 10 runs: 38 to
// 40% of go-stomp's; go-stomp's server keeps two goroutines and their
// buffers per connection.)
func TestIdleMemoryPerConnection(t *testing.T) {
	// The bare pair: a listener that keeps the accepted sockets, with no
	// goroutine per connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan []net.Conn, 1)
	go func() {
		var cs []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				held <- cs
				return
			}
			cs = append(cs, c)
		}
	}()
	bare := idleCost(t, ln.Addr().String(), false)
	ln.Close()
	for _, c := range <-held {
		c.Close()
	}

	b, err := broker.Start("127.0.0.1:0", broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	ours := idleCost(t, b.Addr(), true)
	b.Close()

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// go-stomp's Serve never returns (its request loop outlives the
	// listener): its goroutine is left to the end of the test binary.
	go (&gostompserver.Server{Log: quiet{}}).Serve(gl)
	theirs := idleCost(t, gl.Addr().String(), true)
	gl.Close()

	t.Logf("idle memory per connection (%d connections, client end included; heap+stack): bare TCP pair %d+%d B, stompout %d+%d B, go-stomp %d+%d B",
		idleConns, bare.heap, bare.stack, ours.heap, ours.stack, theirs.heap, theirs.stack)
	o, g := ours.total()-bare.total(), theirs.total()-bare.total()
	t.Logf("beyond the bare pair: stompout %d B, go-stomp %d B (%.0f%%)", o, g, 100*float64(o)/float64(g))
	if o > idleBound {
		t.Errorf("an idle stompout connection costs %d B beyond the bare TCP pair, more than %d B", o, idleBound)
	}
	if 2*o > g {
		t.Errorf("an idle stompout connection costs %d B beyond the bare TCP pair, more than half of go-stomp's %d B", o, g)
	}
}
