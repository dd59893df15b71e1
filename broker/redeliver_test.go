package broker_test

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/broker"
)

// A message NACKed more than WithMaxRedeliveries times moves to
// /queue/DLQ.<name>, with an original-destination header, instead of
// cycling for ever; the next message goes on.
func TestDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithMaxRedeliveries(2))
		p := open(t, b.Pipe(), "1.2")
		p.sendMsg("/queue/work", "poison")
		p.sendMsg("/queue/work", "fine", "receipt", "r")
		p.awaitReceipt("r")
		c := open(t, b.Pipe(), "1.2")
		c.receipt("SUBSCRIBE", "id", "0", "destination", "/queue/work", "ack", "client-individual", "prefetch-count", "1")
		for i := range 3 { // delivered, then redelivered twice
			f := c.recvCmd("MESSAGE")
			if string(f.Body) != "poison" || (i > 0) != (f.Header.Get("redelivered") == "true") {
				t.Fatalf("delivery %d: %v", i, f)
			}
			c.do("NACK", "id", f.Header.Get("ack"))
		}
		f := c.recvCmd("MESSAGE")
		if string(f.Body) != "fine" {
			t.Fatalf("got %v", f)
		}
		c.receipt("ACK", "id", f.Header.Get("ack"))
		d := open(t, b.Pipe(), "1.1")
		d.do("SUBSCRIBE", "id", "dlq", "destination", "/queue/DLQ.work")
		f = d.recvCmd("MESSAGE")
		if string(f.Body) != "poison" || f.Header.Get("destination") != "/queue/DLQ.work" || f.Header.Get("original-destination") != "/queue/work" {
			t.Fatalf("dead letter %v", f)
		}
		c.close()
		d.close()
		p.close()
		st := b.Stats()
		if st.DeadLettered != 1 || st.Nacked != 3 || st.Bytes != 0 || len(st.Queues) != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// A dead-letter queue that is full leaves the message where it was:
// nothing is lost, it is redelivered again.
func TestDeadLetterQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithMaxRedeliveries(1), broker.WithQueueLimit(1), broker.WithDeadLetterPrefix("/queue/dead/"))
		p := open(t, b.Pipe(), "1.2")
		p.sendMsg("/queue/dead/work", "filler", "receipt", "f")
		p.awaitReceipt("f")
		p.sendMsg("/queue/work", "poison", "receipt", "r")
		p.awaitReceipt("r")
		c := open(t, b.Pipe(), "1.2")
		c.receipt("SUBSCRIBE", "id", "0", "destination", "/queue/work", "ack", "client-individual")
		for i := range 4 {
			f := c.recvCmd("MESSAGE")
			if string(f.Body) != "poison" {
				t.Fatalf("delivery %d: %v", i, f)
			}
			c.do("NACK", "id", f.Header.Get("ack"))
		}
		c.recvCmd("MESSAGE")
		c.close()
		p.close()
		if st := b.Stats(); st.DeadLettered != 0 || st.Queues[0].Depth != 1 || st.Queues[1].Depth != 1 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// WithRedeliveryDelay: a NACKed message comes back after the delay, and
// the messages behind it are not held up meanwhile.
func TestRedeliveryDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithRedeliveryDelay(time.Second))
		p := open(t, b.Pipe(), "1.2")
		for i := range 3 {
			p.sendMsg("/queue/later", fmt.Sprint(i))
		}
		p.receipt("DISCONNECT")
		c := open(t, b.Pipe(), "1.2")
		c.receipt("SUBSCRIBE", "id", "0", "destination", "/queue/later", "ack", "client-individual", "prefetch-count", "1")
		f := c.recvCmd("MESSAGE")
		start := time.Now()
		c.do("NACK", "id", f.Header.Get("ack"))
		for _, want := range []string{"1", "2"} {
			f := c.recvCmd("MESSAGE")
			if string(f.Body) != want || time.Since(start) != 0 {
				t.Fatalf("got %v after %v", f, time.Since(start))
			}
			c.receipt("ACK", "id", f.Header.Get("ack")) // done before the stats below
		}
		if q, _ := b.Queue("/queue/later"); q.Depth != 0 || q.Unacked != 1 {
			t.Fatalf("queue %+v", q)
		}
		f = c.recvCmd("MESSAGE")
		if string(f.Body) != "0" || f.Header.Get("redelivered") != "true" || time.Since(start) != time.Second {
			t.Fatalf("got %v after %v", f, time.Since(start))
		}
		c.receipt("ACK", "id", f.Header.Get("ack"))
		c.close()
		if st := b.Stats(); st.Bytes != 0 || len(st.Queues) != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// A large prefetch acknowledged out of order, one ACK per message: each
// resolves on its own (the broker indexes unacknowledged messages by id).
func TestLargePrefetchAckedOutOfOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5000
		b := newBroker(t)
		p := open(t, b.Pipe(), "1.2")
		for i := range n {
			p.sendMsg("/queue/many", fmt.Sprint(i))
		}
		p.receipt("DISCONNECT")
		c := open(t, b.Pipe(), "1.2")
		c.do("SUBSCRIBE", "id", "0", "destination", "/queue/many", "ack", "client-individual", "prefetch-count", fmt.Sprint(n))
		acks := make([]string, n)
		for i := range n {
			acks[i] = c.recvCmd("MESSAGE").Header.Get("ack")
		}
		for i := n - 1; i >= 0; i-- {
			c.do("ACK", "id", acks[i])
		}
		c.receipt("UNSUBSCRIBE", "id", "0")
		c.close()
		if st := b.Stats(); st.Acked != n || st.Redelivered != 0 || st.Bytes != 0 || len(st.Queues) != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// By default a message goes to the dead-letter queue once it has come back
// more than DefaultMaxRedeliveries times.
func TestDeadLetterByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t)
		p := open(t, b.Pipe(), "1.2")
		p.sendMsg("/queue/loop", "poison", "receipt", "r")
		p.awaitReceipt("r")
		c := open(t, b.Pipe(), "1.2")
		c.receipt("SUBSCRIBE", "id", "0", "destination", "/queue/loop", "ack", "client-individual")
		for range broker.DefaultMaxRedeliveries + 1 {
			c.do("NACK", "id", c.recvCmd("MESSAGE").Header.Get("ack"))
		}
		c.receipt("SUBSCRIBE", "id", "1", "destination", "/queue/DLQ.loop")
		if f := c.recvCmd("MESSAGE"); f.Header.Get("subscription") != "1" || string(f.Body) != "poison" {
			t.Fatalf("got %v", f)
		}
		c.close()
		p.close()
		if st := b.Stats(); st.DeadLettered != 1 || st.Nacked != broker.DefaultMaxRedeliveries+1 {
			t.Fatalf("stats %+v", st)
		}
	})
}
