package broker_test

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/server"
)

// TestAllocsPerMessage asserts what one 32-byte message costs in heap
// allocations through the broker (one producer sending without receipts,
// one auto-ack consumer, over in-process pipes), so that the number cannot
// creep back: the engine reading the SEND (the header block's string, the
// Message with its headers and body), the queue or topic, the delivery and
// the writer (message-ids formatted once per batch). The clients here
// allocate nothing: they write prepared bytes and count NULs.
func TestAllocsPerMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 20,000 messages")
	}
	// maxAllocs is the budget: issue 10 asks for at most 4; measured here
	// 2.1 to 2.5 (queue and topic alike, -race or not; 12.1 and 10.1
	// before issue 10), so one more allocation per message fails. Two are
	// per message (the Reader's header string, the Message); the rest is
	// the writer, per batch (the message-ids) and per run (a goroutine, a
	// wire.Writer and scratch), and struct reuse that a deep queue
	// outgrows.
	const maxAllocs = 3.0
	for _, dest := range []string{"/queue/allocs", "/topic/allocs"} {
		t.Run(strings.TrimPrefix(dest, "/")[:5], func(t *testing.T) {
			got := allocsPerMessage(t, dest, 20000)
			t.Logf("%s: %.2f allocations per message", dest, got)
			if got > maxAllocs {
				t.Errorf("%s: %.2f allocations per message, want at most %.1f (issue 10)", dest, got, maxAllocs)
			}
		})
	}
}

// allocsPerMessage sends n messages to dest after a warm-up and returns
// the heap allocations of the process per message.
func allocsPerMessage(t *testing.T, dest string, n int) float64 {
	br := mustNew(t, broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	defer br.Close()
	c := open(t, br.Pipe(), "1.2")
	c.receipt("SUBSCRIBE", "id", "0", "destination", dest)
	p := open(t, br.Pipe(), "1.2")
	p.receipt("SUBSCRIBE", "id", "x", "destination", "/queue/unused") // a round trip: p is connected

	const batch = 100
	one := "SEND\ndestination:" + dest + "\ncontent-type:text/plain\ncontent-length:32\n\n" + strings.Repeat("x", 32) + "\x00"
	chunk := []byte(strings.Repeat(one, batch))
	buf := make([]byte, 32<<10)
	run := func(msgs int) {
		done := make(chan error, 1)
		go func() {
			for got := 0; got < msgs; {
				k, err := c.c.Read(buf)
				if err != nil {
					done <- err
					return
				}
				got += bytes.Count(buf[:k], []byte{0})
			}
			done <- nil
		}()
		for range msgs / batch {
			if _, err := p.c.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil && err != io.EOF {
			t.Fatal(err)
		}
	}
	run(2000) // warm-up: the pools, the arrays, the goroutines' stacks
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	run(n)
	runtime.ReadMemStats(&after)
	for _, x := range []net.Conn{p.c, c.c} {
		x.Close()
	}
	return float64(after.Mallocs-before.Mallocs) / float64(n)
}
