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
// the writer (message-ids formatted once per batch), and the broker's
// giving each Message back for reuse. The clients here
// allocate nothing: they write prepared bytes and count NULs.
func TestAllocsPerMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 20,000 messages")
	}
	// The budgets: issue 10 asks for at most 4 in auto mode; measured here
	// 0.3 to 0.6 (queue and topic alike; 12.1 and 10.1 before issue 10,
	// 2.1 to 2.5 before the engine reused released Messages, 1.2 before
	// their header text went into the same box), so one more allocation
	// per message fails. Nothing is per message: the Message, with its
	// headers and body, comes from a box the broker released
	// (server.Message.Release); what is left is the writer, per batch (the
	// message-ids) and per run (a goroutine, a wire.Writer), and struct
	// reuse that a deep queue outgrows. Under -race sync.Pool drops a
	// quarter of the boxes on purpose: 0.6 to 1.4. With an ACK per message
	// (client-individual, 1.2) the engine also makes the Ack for the
	// handler and the delivery's message-id and ack id, and the broker
	// gives each Ack back (server.Ack.Release): measured 0.9 to 1.1 (1.1
	// under -race), 13 before the pending acks came from slabs, the index
	// chained them, both ids shared a string and acknowledged queue
	// messages were reused, 6.4 to 6.8 before their boxes were, 4.7 to 5.3
	// before the ACK's header was read as views into the Ack's own
	// allocation, 2.6 to 3.5 before Acks were reused and the ids cut from
	// slabs of text.
	auto, indiv := 1.25, 2.0
	if raceEnabled {
		auto, indiv = 2.25, 3.0
	}
	for _, tc := range []struct {
		dest, ack string
		max       float64
	}{
		{"/queue/allocs", "auto", auto},
		{"/topic/allocs", "auto", auto},
		{"/queue/allocs-indiv", "client-individual", indiv},
	} {
		t.Run(strings.TrimPrefix(tc.dest, "/")[:5]+"-"+tc.ack, func(t *testing.T) {
			got := allocsPerMessage(t, tc.dest, tc.ack, 20000)
			t.Logf("%s, %s: %.2f allocations per message", tc.dest, tc.ack, got)
			if got > tc.max {
				t.Errorf("%s, %s: %.2f allocations per message, want at most %.1f (issue 10)", tc.dest, tc.ack, got, tc.max)
			}
		})
	}
}

// allocsPerMessage sends n messages to dest, received in ack mode ack
// (auto, or client-individual with an ACK per message), after a warm-up
// and returns the heap allocations of the process per message.
func allocsPerMessage(t *testing.T, dest, ack string, n int) float64 {
	br := mustNew(t, broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	defer br.Close()
	c := open(t, br.Pipe(), "1.2")
	c.receipt("SUBSCRIBE", "id", "0", "destination", dest, "ack", ack)
	p := open(t, br.Pipe(), "1.2")
	p.receipt("SUBSCRIBE", "id", "x", "destination", "/queue/unused") // a round trip: p is connected

	const batch = 100
	one := "SEND\ndestination:" + dest + "\ncontent-type:text/plain\ncontent-length:32\n\n" + strings.Repeat("x", 32) + "\x00"
	chunk := []byte(strings.Repeat(one, batch))
	buf := make([]byte, 32<<10)
	acks := make([]byte, 0, 32<<10)
	run := func(msgs int) {
		done := make(chan error, 1)
		go func() {
			have := 0 // buf[:have] is an incomplete frame
			for got := 0; got < msgs; {
				k, err := c.c.Read(buf[have:])
				if err != nil {
					done <- err
					return
				}
				if ack == "auto" {
					got += bytes.Count(buf[:k], []byte{0})
					continue
				}
				// ACK each complete MESSAGE by its ack header.
				data, acks := buf[:have+k], acks[:0]
				for {
					end := bytes.IndexByte(data, 0)
					if end < 0 {
						break
					}
					f := data[:end]
					data = data[end+1:]
					if i := bytes.Index(f, []byte("\nack:")); i >= 0 {
						id := f[i+5:]
						id = id[:bytes.IndexByte(id, '\n')]
						acks = append(append(append(acks, "ACK\nid:"...), id...), "\n\n\x00"...)
						got++
					}
				}
				have = copy(buf, data)
				if len(acks) > 0 {
					if _, err := c.c.Write(acks); err != nil {
						done <- err
						return
					}
				}
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

// TestAllocsPerReceiptedSend asserts what a SEND that waits for its
// RECEIPT costs the broker, one at a time (so each RECEIPT is a writer
// run of its own), to a topic nobody subscribes to: measured 1.3 to 1.6
// allocations (the writer goroutine's start, the receipt id's copy; the
// Message is reused), 4.3 under -race; 4.6 here, and 18 to 23 over TCP in
// compat's receipt-each row, before the session kept its wire.Writer from
// one run to the next (a Writer, its frame.Writer, a socket writer and
// their scratch, made and regrown per run) and encoded RECEIPTs without a
// frame.Frame each. The client here writes prepared bytes and reads into
// one buffer.
func TestAllocsPerReceiptedSend(t *testing.T) {
	if testing.Short() {
		t.Skip("measures 5,000 round trips")
	}
	br := mustNew(t, broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	defer br.Close()
	p := open(t, br.Pipe(), "1.2")
	send := []byte("SEND\ndestination:/topic/allocs-receipt\nreceipt:r\ncontent-length:32\n\n" + strings.Repeat("x", 32) + "\x00")
	want := "RECEIPT\nreceipt-id:r\n\n\x00"
	buf := make([]byte, 256)
	run := func(n int) {
		for range n {
			if _, err := p.c.Write(send); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(p.c, buf[:len(want)]); err != nil || string(buf[:len(want)]) != want {
				t.Fatalf("got %q, %v; want the RECEIPT", buf[:len(want)], err)
			}
		}
	}
	run(500) // warm-up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 5000
	run(n)
	runtime.ReadMemStats(&after)
	p.c.Close()
	got := float64(after.Mallocs-before.Mallocs) / n
	t.Logf("%.2f allocations per receipted SEND", got)
	budget := 3.0
	if raceEnabled {
		budget = 6.0 // sync.Pool drops a quarter of what it is given
	}
	if got > budget {
		t.Errorf("%.2f allocations per receipted SEND, want at most %.1f (issue 10: at most 4 per message through the broker)", got, budget)
	}
}
