package stomp

import (
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
)

// TestAllocations pins the allocation counts the benchmarks show: Send
// allocates nothing; receiving a message costs one allocation (issue 10
// allows two), the copy that gives the user ownership: one block for the
// header entries, the header text and the body (frame.Reader.SetOwned).
func TestAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	noLeaks(t)
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	c := rawConnect(t, client, server)
	ctx := context.Background()
	discard := make(chan struct{})
	go func() { io.Copy(io.Discard, server); close(discard) }()
	sub, err := c.Subscribe(ctx, "/q", WithID("s"))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("0123456789")
	if n := testing.AllocsPerRun(200, func() {
		if err := c.Send(ctx, "/q", body, WithContentLength(true)); err != nil {
			t.Fatal(err)
		}
	}); n != 0 { // a typed option in an interface: no closure
		t.Errorf("Send with WithContentLength: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(200, func() {
		if err := c.Send(ctx, "/q", body); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send: %v allocations, want 0", n)
	}
	msg := []byte("MESSAGE\nsubscription:s\ndestination:/q\nmessage-id:1\nack:1\n\n0123456789\x00")
	if n := testing.AllocsPerRun(200, func() {
		if _, err := server.Write(msg); err != nil {
			t.Fatal(err)
		}
		<-sub.C()
	}); n > 1 {
		t.Errorf("receive: %v allocations per message, want at most 1", n)
	}

	// A backlog that forms and drains again and again (the application
	// slower than the broker in bursts) reuses its chunks: a burst of 600
	// messages, four times the channel's buffer, then all of it taken.
	// Measured: about 110 bytes per message, the message's own copy (190
	// to 200 before its header entries were packed); 290 when each burst
	// allocated its chunks anew.
	bl, err := c.Subscribe(ctx, "/b", WithID("b"), WithBuffer(150))
	if err != nil {
		t.Fatal(err)
	}
	burst := []byte(strings.Repeat("MESSAGE\nsubscription:b\ndestination:/b\nmessage-id:1\nack:1\n\n0123456789\x00", 600))
	round := func() {
		if _, err := server.Write(burst); err != nil {
			t.Fatal(err)
		}
		for range 600 {
			<-bl.C()
		}
	}
	round() // warm-up: the chunks, the pool
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		round()
	}
	runtime.ReadMemStats(&after)
	b := float64(after.TotalAlloc-before.TotalAlloc) / (20 * 600)
	t.Logf("receive through a backlog: %.0f bytes per message", b)
	if b > 200 {
		t.Errorf("receive through a backlog: %.0f bytes per message, want at most 200 (the backlog's chunks reused)", b)
	}
	c.Close()
	<-discard
}
