package broker_test

import (
	"strconv"
	"sync"
	"testing"

	"github.com/stompout/stomp"
)

// TestReusedMessagesStayIntact runs every path on which the broker gives a
// message back to the engine for reuse (server.Message.Release): a queue
// in auto mode (written), a queue in client-individual mode with NACKs
// (redelivered copies sharing the body) and ACKs, and a topic whose slow
// subscriber builds a backlog while a fast one takes each message at once.
// Bodies of every box size come out as they went in, so no box was reused
// while anything still referred to it.
func TestReusedMessagesStayIntact(t *testing.T) {
	const n = 2000
	sizes := []int{0, 7, 32, 64, 100, 200, 300, 450, 600, 700, 850, 1000, 1024, 1500, 2300, 3300, 4000, 4500}
	body := func(seq int) []byte {
		b := make([]byte, sizes[seq%len(sizes)])
		for j := range b {
			b[j] = 'a' + byte((seq*7+j)%26)
		}
		return b
	}
	ctx := testCtx(t)
	b := newBroker(t)
	conn := func() *stomp.Conn {
		c, err := stomp.Connect(ctx, b.Pipe())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	type consumer struct {
		name string
		dest string
		opts []stomp.SubscribeOption
		// nack: NACK every fifth message the first time it comes (client
		// ack modes acknowledge the others).
		nack bool
	}
	consumers := []consumer{
		{"queue auto", "/queue/reuse-auto", nil, false},
		{"queue client-individual, NACKs", "/queue/reuse-indiv", []stomp.SubscribeOption{stomp.WithAck(stomp.AckClientIndividual), stomp.WithPrefetch(8)}, true},
		{"topic fast", "/topic/reuse", nil, false},
		{"topic slow (backlog)", "/topic/reuse", []stomp.SubscribeOption{stomp.WithAck(stomp.AckClientIndividual), stomp.WithPrefetch(2)}, false},
	}
	var wg sync.WaitGroup
	for _, cs := range consumers {
		c := conn()
		var r *stomp.Receipt
		sub, err := c.Subscribe(ctx, cs.dest, append(cs.opts, stomp.WithReceipt(&r))...)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			seen := make([]bool, n)
			nacked := make([]bool, n)
			for got := 0; got < n; {
				var m stomp.Message
				select {
				case m = <-sub.C():
				case <-ctx.Done():
					t.Errorf("%s: %d of %d messages", cs.name, got, n)
					return
				}
				seq, err := strconv.Atoi(m.Header.Get("seq"))
				if err != nil || seq < 0 || seq >= n {
					t.Errorf("%s: seq header %q", cs.name, m.Header.Get("seq"))
					return
				}
				if want := body(seq); string(m.Body) != string(want) {
					t.Errorf("%s: message %d: body %q, want %q", cs.name, seq, m.Body, want)
					return
				}
				if m.Header.Get("destination") != cs.dest {
					t.Errorf("%s: message %d: destination %q", cs.name, seq, m.Header.Get("destination"))
					return
				}
				if cs.opts == nil {
					seen[seq], got = true, got+1
					continue
				}
				if cs.nack && seq%5 == 0 && !nacked[seq] {
					nacked[seq] = true
					if err := m.Nack(ctx); err != nil {
						t.Errorf("%s: nack: %v", cs.name, err)
						return
					}
					continue
				}
				if err := m.Ack(ctx); err != nil {
					t.Errorf("%s: ack: %v", cs.name, err)
					return
				}
				if !seen[seq] {
					seen[seq], got = true, got+1
				}
			}
		})
	}
	p := conn()
	for seq := range n {
		for _, dest := range []string{"/queue/reuse-auto", "/queue/reuse-indiv", "/topic/reuse"} {
			if err := p.Send(ctx, dest, body(seq), stomp.WithHeader("seq", strconv.Itoa(seq))); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
}
