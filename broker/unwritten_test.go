package broker

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/stompout/stomp/internal/stomptest"
)

// TestUnwrittenStaysSmallUnderABacklog: a queue consumer working through
// a backlog always has deliveries waiting for their Written callback, so
// its list of them never empties. The list must still not grow with the
// number of messages delivered (it did: 8 bytes per message for as long as
// the backlog lasted, a leak for a consumer that is behind for months).
func TestUnwrittenStaysSmallUnderABacklog(t *testing.T) {
	const n = 20000
	b, err := New(WithPrefetch(8))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	connect := func() *stomptest.Peer {
		p := stomptest.New(t, b.Pipe())
		p.Send("CONNECT", "", "accept-version", "1.2", "host", "/")
		p.Expect("CONNECTED")
		return p
	}
	prod := connect()
	defer prod.Close()
	for i := range n {
		prod.Send("SEND", fmt.Sprint(i), "destination", "/queue/a")
	}
	prod.Send("SEND", "", "destination", "/queue/a", "receipt", "r")
	prod.Expect("RECEIPT") // all are queued: the consumer starts on a backlog

	// Watch the consumer's list while the backlog drains: its largest
	// array, and whether it was ever seen with deliveries in it.
	var stop atomic.Bool
	done := make(chan struct{})
	var largest, seenLive int
	go func() {
		defer close(done)
		for !stop.Load() {
			b.mu.Lock()
			if q := b.queues["/queue/a"]; q != nil && len(q.consumers) > 0 {
				c := q.consumers[0]
				largest = max(largest, cap(c.unwritten))
				if len(c.unwritten) > c.uhead {
					seenLive++
				}
			}
			b.mu.Unlock()
			runtime.Gosched()
		}
	}()
	cons := connect()
	defer cons.Close()
	cons.Send("SUBSCRIBE", "", "id", "s", "destination", "/queue/a", "ack", "auto")
	for i := range n + 1 {
		if f := cons.Expect("MESSAGE"); i < n && string(f.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d: body %q", i, f.Body)
		}
	}
	stop.Store(true)
	<-done
	if seenLive == 0 {
		t.Fatal("never saw a delivery waiting for its callback: the test does not test a backlog")
	}
	if largest > 2048 {
		t.Fatalf("through a backlog of %d messages the unwritten list grew to room for %d", n, largest)
	}
	t.Logf("largest %d, seen live %d times", largest, seenLive)
}
