package broker_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/server"
)

// Every option refuses the values it cannot take, and New says which.
func TestOptionsValidated(t *testing.T) {
	for _, tc := range []struct {
		opt  broker.Option
		want string
	}{
		{broker.WithQueueLimit(0), "broker: WithQueueLimit(0): not positive"},
		{broker.WithQueueBytes(-1), "broker: WithQueueBytes(-1): not positive"},
		{broker.WithMemoryLimit(0), "broker: WithMemoryLimit(0): not positive"},
		{broker.WithBacklogLimit(0), "broker: WithBacklogLimit(0): not positive"},
		{broker.WithSlowConsumerTimeout(0), "broker: WithSlowConsumerTimeout(0s): not positive"},
		{broker.WithQueueFullTimeout(-time.Second), "broker: WithQueueFullTimeout(-1s): not positive"},
		{broker.WithPrefetch(-1), "broker: WithPrefetch(-1): not positive"},
		{broker.WithMaxRedeliveries(-1), "broker: WithMaxRedeliveries(-1): negative"},
		{broker.WithRedeliveryDelay(-1), "broker: WithRedeliveryDelay(-1ns): negative"},
		{broker.WithDeadLetterPrefix("/topic/dead."), `broker: WithDeadLetterPrefix("/topic/dead."): not a queue name prefix`},
		{broker.WithDeadLetterPrefix("DLQ."), `broker: WithDeadLetterPrefix("DLQ."): not a queue name prefix`},
		{broker.WithServerOptions(server.WithOutboundQueue(0)), "server: WithOutboundQueue(0): not positive"},
	} {
		b, err := broker.New(tc.opt)
		if b != nil || err == nil || err.Error() != tc.want {
			t.Errorf("got %v, %v; want error %q", b, err, tc.want)
		}
		if _, err := broker.Start("127.0.0.1:0", tc.opt); err == nil || err.Error() != tc.want {
			t.Errorf("Start: got %v; want error %q", err, tc.want)
		}
	}
	b, err := broker.New(broker.WithQueueLimit(1), broker.WithMaxRedeliveries(0), broker.WithRedeliveryDelay(0), broker.WithDeadLetterPrefix("/queue/dead/"))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// A queue at WithQueueBytes: the SEND that does not fit waits (no RECEIPT,
// the producer's session open) and is admitted once a consumer takes a
// message; an empty queue takes one message larger than the bound.
func TestQueueBytesBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithQueueBytes(1000), broker.WithQueueFullTimeout(time.Minute))
		p := open(t, b.Pipe(), "1.2")
		big := strings.Repeat("x", 2000)
		p.sendMsg("/queue/big", big, "receipt", "r0") // empty queue: taken
		p.recvCmd("RECEIPT")
		p.sendMsg("/queue/big", "small", "receipt", "r1")
		synctest.Wait()
		q, _ := b.Queue("/queue/big")
		if q.Depth != 1 || q.Waiting != 1 || q.Bytes <= 2000 {
			t.Fatalf("queue %+v", q)
		}
		if st := b.Stats(); st.Bytes <= 2000 || st.DeferredSends != 1 {
			t.Fatalf("stats %+v", st)
		}
		c := open(t, b.Pipe(), "1.2")
		c.do("SUBSCRIBE", "id", "0", "destination", "/queue/big")
		if f := c.recvCmd("MESSAGE"); string(f.Body) != big {
			t.Fatalf("got %v", f)
		}
		if f := p.recvCmd("RECEIPT"); f.Header.Get("receipt-id") != "r1" {
			t.Fatalf("got %v", f)
		}
		if f := c.recvCmd("MESSAGE"); string(f.Body) != "small" {
			t.Fatalf("got %v", f)
		}
		c.close()
		p.close()
		if st := b.Stats(); st.Bytes != 0 || st.DeferredSends != 0 || st.Refused != 0 || len(st.Queues) != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// Past WithMemoryLimit a SEND is accepted (its message is in the queue,
// consumers get it) but its RECEIPT waits until the broker holds less than
// the limit again; a fresh session still works meanwhile.
func TestMemoryLimitDefersSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithMemoryLimit(4500)) // four messages of a little over 1000 bytes
		p := open(t, b.Pipe(), "1.2")
		body := strings.Repeat("m", 1000)
		for i := range 4 {
			p.sendMsg("/queue/mem", body, "receipt", fmt.Sprint("r", i))
			p.recvCmd("RECEIPT")
		}
		p.sendMsg("/queue/mem", body, "receipt", "r4") // over the limit
		synctest.Wait()
		st := b.Stats()
		if st.Bytes <= 4500 || st.DeferredSends != 1 || st.Queues[0].Depth != 5 {
			t.Fatalf("stats %+v", st)
		}
		// A topic SEND that goes straight to its subscriber adds nothing.
		fresh := open(t, b.Pipe(), "1.1")
		fresh.receipt("SUBSCRIBE", "id", "t", "destination", "/topic/free")
		fresh.sendMsg("/topic/free", "hello", "receipt", "rt")
		fresh.awaitReceipt("rt")
		if f := fresh.recvCmd("MESSAGE"); string(f.Body) != "hello" {
			t.Fatalf("got %v", f)
		}
		c := open(t, b.Pipe(), "1.2")
		c.do("SUBSCRIBE", "id", "0", "destination", "/queue/mem", "ack", "client-individual")
		for range 5 {
			f := c.recvCmd("MESSAGE")
			c.do("ACK", "id", f.Header.Get("ack"))
		}
		if f := p.recvCmd("RECEIPT"); f.Header.Get("receipt-id") != "r4" {
			t.Fatalf("got %v", f)
		}
		c.close()
		p.close()
		fresh.close()
		if st := b.Stats(); st.Bytes != 0 || st.DeferredSends != 0 || st.MessagesIn != 6 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// A topic subscriber whose backlog passes WithBacklogLimit holds back the
// SENDs that feed it: the producer gets their RECEIPTs only as the
// subscriber reads, and nobody is disconnected.
func TestBacklogLimitDefersSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithBacklogLimit(2000), broker.WithServerOptions(server.WithOutboundBytes(1)))
		s := open(t, b.Pipe(), "1.2")
		s.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/bl")
		p := open(t, b.Pipe(), "1.2")
		body := strings.Repeat("b", 500)
		// s does not read: the first message blocks its writer, the next
		// one fills its outbound queue (one byte: one message), the rest go
		// to its backlog.
		const n = 10
		for i := range n {
			p.sendMsg("/topic/bl", body+fmt.Sprint(i), "receipt", fmt.Sprint("r", i))
		}
		synctest.Wait()
		st := b.Stats()
		if st.DeferredSends == 0 || st.Topics[0].Backlog == 0 || st.Topics[0].BacklogBytes <= 2000 || st.Bytes != st.Topics[0].BacklogBytes {
			t.Fatalf("stats %+v", st)
		}
		got := 0
		for i := range n {
			// The RECEIPTs that were not held came at once.
			f := s.recvCmd("MESSAGE")
			if string(f.Body) != body+fmt.Sprint(i) {
				t.Fatalf("message %d: %v", i, f)
			}
			got++
		}
		for i := range n {
			if f := p.recvCmd("RECEIPT"); f.Header.Get("receipt-id") != fmt.Sprint("r", i) {
				t.Fatalf("got %v", f)
			}
		}
		s.close()
		p.close()
		if st := b.Stats(); st.Bytes != 0 || st.DeferredSends != 0 || st.SlowConsumers != 0 || got != n {
			t.Fatalf("stats %+v", st)
		}
	})
}

// A session that publishes to a topic it subscribes to never waits for
// itself: with its backlog far above WithBacklogLimit and nothing read, its
// SENDs are all taken and none deferred, while another producer's are
// deferred. It then reads everything.
func TestNoWaitForItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithBacklogLimit(1000), broker.WithServerOptions(server.WithOutboundBytes(1)))
		s := open(t, b.Pipe(), "1.2")
		s.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/self")
		body := strings.Repeat("s", 300)
		const n = 50
		go func() {
			for range n {
				s.sendMsg("/topic/self", body) // a net.Pipe: each write waits for the broker to read it
			}
		}()
		synctest.Wait()
		if st := b.Stats(); st.MessagesIn != n || st.DeferredSends != 0 || st.Topics[0].BacklogBytes < 40*300 {
			t.Fatalf("stats %+v", st)
		}
		other := open(t, b.Pipe(), "1.2")
		other.sendMsg("/topic/self", "from another", "receipt", "o")
		synctest.Wait()
		if st := b.Stats(); st.DeferredSends != 1 {
			t.Fatalf("stats %+v", st)
		}
		for range n {
			if f := s.recvCmd("MESSAGE"); string(f.Body) != body {
				t.Fatalf("got %v", f)
			}
		}
		if f := s.recvCmd("MESSAGE"); string(f.Body) != "from another" {
			t.Fatalf("got %v", f)
		}
		other.awaitReceipt("o")
		s.close()
		other.close()
		if st := b.Stats(); st.Bytes != 0 || st.DeferredSends != 0 || st.SlowConsumers != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// Two sessions that feed each other's topics and read only after they have
// sent everything: a session that is itself waiting is never waited for, so
// one of them always goes on; both complete.
func TestFeedEachOtherNoDeadlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithBacklogLimit(1000),
			broker.WithServerOptions(server.WithOutboundBytes(1), server.WithSendWindow(2, 1<<20)))
		a := open(t, b.Pipe(), "1.2")
		c := open(t, b.Pipe(), "1.2")
		a.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/a")
		c.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/c")
		body := strings.Repeat("f", 300)
		const n = 40
		sent := make(chan string, 2)
		for _, x := range []struct {
			r    *raw
			dest string
		}{{a, "/topic/c"}, {c, "/topic/a"}} {
			go func() {
				for range n {
					x.r.sendMsg(x.dest, body)
				}
				sent <- x.dest
			}()
		}
		// Neither reads: one of them must have sent everything.
		<-sent
		synctest.Wait()
		if st := b.Stats(); st.MessagesIn < n {
			t.Fatalf("stats %+v", st)
		}
		// Now both read; the one held back is let go as the other reads.
		for _, r := range []*raw{a, c} {
			go func() {
				for range n {
					if f := r.recvCmd("MESSAGE"); string(f.Body) != body {
						t.Errorf("got %v", f)
					}
				}
				sent <- "read"
			}()
		}
		for range 3 {
			<-sent
		}
		a.close()
		c.close()
		if st := b.Stats(); st.MessagesIn != 2*n || st.Bytes != 0 || st.DeferredSends != 0 || st.SlowConsumers != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}
