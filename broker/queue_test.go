package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

func newBroker(t *testing.T, opts ...broker.Option) *broker.Broker {
	t.Helper()
	b := mustNew(t, append([]broker.Option{broker.WithServerOptions(server.WithHeartBeat(0, 0))}, opts...)...)
	t.Cleanup(func() { b.Close() })
	return b
}

func TestQueueRoundRobin(t *testing.T) {
	b := newBroker(t)
	c1 := open(t, b.Pipe(), "1.2")
	c2 := open(t, b.Pipe(), "1.2")
	p := open(t, b.Pipe(), "1.1")
	c1.receipt("SUBSCRIBE", "id", "a", "destination", "/queue/rr")
	c2.receipt("SUBSCRIBE", "id", "b", "destination", "/queue/rr")
	for i := range 4 {
		p.sendMsg("/queue/rr", fmt.Sprint(i), "reply-to", "/queue/replies", "x-custom", "v:1")
	}
	for i, c := range []*raw{c1, c2, c1, c2} {
		f := c.recvCmd("MESSAGE")
		if string(f.Body) != fmt.Sprint(i) {
			t.Fatalf("message %d went to the wrong consumer: %v", i, f)
		}
		if f.Header.Get("reply-to") != "/queue/replies" || f.Header.Get("x-custom") != "v:1" || f.Header.Has("ack") {
			t.Fatalf("headers not passed through: %v", f)
		}
	}
	c1.close()
	c2.close()
	p.close()
}

func TestClientAckCumulativeAndPrefetch(t *testing.T) {
	b := newBroker(t)
	p := open(t, b.Pipe(), "1.2")
	for i := range 5 {
		p.sendMsg("/queue/pf", fmt.Sprint(i))
	}
	p.receipt("DISCONNECT")
	if q, _ := b.Queue("/queue/pf"); q.Depth != 5 {
		t.Fatalf("queue %+v", q)
	}
	c := open(t, b.Pipe(), "1.2")
	c.do("SUBSCRIBE", "id", "0", "destination", "/queue/pf", "ack", "client", "prefetch-count", "2")
	m0, m1 := c.recvCmd("MESSAGE"), c.recvCmd("MESSAGE")
	c.nothing(50 * time.Millisecond) // prefetch reached
	if q, _ := b.Queue("/queue/pf"); q.Depth != 3 || q.Unacked != 2 {
		t.Fatalf("queue %+v", q)
	}
	_ = m0
	c.receipt("ACK", "id", m1.Header.Get("ack")) // cumulative: acks 0 and 1
	m2, m3 := c.recvCmd("MESSAGE"), c.recvCmd("MESSAGE")
	if string(m2.Body) != "2" || string(m3.Body) != "3" {
		t.Fatalf("got %q %q", m2.Body, m3.Body)
	}
	c.receipt("ACK", "id", m3.Header.Get("ack"))
	m4 := c.recvCmd("MESSAGE")
	c.receipt("ACK", "id", m4.Header.Get("ack"))
	if q, ok := b.Queue("/queue/pf"); q.Depth != 0 || q.Unacked != 0 || !ok {
		t.Fatalf("queue %+v", q)
	}
	st := b.Stats()
	if st.MessagesIn != 5 || st.MessagesOut != 5 || st.Acked != 5 || st.Redelivered != 0 {
		t.Fatalf("stats %+v", st)
	}
	c.close()
}

func TestNackRedelivers(t *testing.T) {
	for _, v := range []string{"1.1", "1.2"} {
		t.Run(v, func(t *testing.T) {
			b := newBroker(t)
			c := open(t, b.Pipe(), v)
			c.receipt("SUBSCRIBE", "id", "s", "destination", "/queue/n", "ack", "client-individual")
			c.sendMsg("/queue/n", "one")
			c.sendMsg("/queue/n", "two")
			m1, m2 := c.recvCmd("MESSAGE"), c.recvCmd("MESSAGE")
			ack := func(cmd string, m *frame.Frame) {
				if v == "1.2" {
					c.do(cmd, "id", m.Header.Get("ack"))
				} else {
					c.do(cmd, "subscription", "s", "message-id", m.Header.Get("message-id"))
				}
			}
			ack("NACK", m1)
			r := c.recvCmd("MESSAGE")
			if string(r.Body) != "one" || r.Header.Get("redelivered") != "true" || r.Header.Get("message-id") != m1.Header.Get("message-id") {
				t.Fatalf("redelivery %v", r)
			}
			ack("ACK", m2)
			ack("ACK", r)
			c.receipt("UNSUBSCRIBE", "id", "s")
			st := b.Stats()
			if st.Acked != 2 || st.Nacked != 1 || st.Redelivered != 1 || len(st.Queues) != 0 {
				t.Fatalf("stats %+v", st)
			}
			c.close()
		})
	}
}

func TestUnackedGoBackWhenConsumerLeaves(t *testing.T) {
	b := newBroker(t)
	c1 := open(t, b.Pipe(), "1.2")
	c1.receipt("SUBSCRIBE", "id", "s", "destination", "/queue/l", "ack", "client")
	p := open(t, b.Pipe(), "1.0")
	for i := range 3 {
		p.sendMsg("/queue/l", fmt.Sprint(i))
	}
	for range 3 {
		c1.recvCmd("MESSAGE")
	}
	c1.c.Close() // connection lost, nothing acknowledged
	c2 := open(t, b.Pipe(), "1.0")
	c2.do("SUBSCRIBE", "destination", "/queue/l", "ack", "client")
	for i := range 3 {
		f := c2.recvCmd("MESSAGE")
		if string(f.Body) != fmt.Sprint(i) || f.Header.Get("redelivered") != "true" {
			t.Fatalf("redelivery %d: %v", i, f)
		}
		c2.do("ACK", "message-id", f.Header.Get("message-id"))
	}
	c2.close()
	p.close()
	if st := b.Stats(); st.Acked != 3 || st.Redelivered != 3 || len(st.Queues) != 0 || st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnsubscribeRequeues(t *testing.T) {
	b := newBroker(t)
	c := open(t, b.Pipe(), "1.2")
	c.receipt("SUBSCRIBE", "id", "s", "destination", "/queue/u", "ack", "client-individual")
	c.sendMsg("/queue/u", "x")
	c.recvCmd("MESSAGE")
	c.receipt("UNSUBSCRIBE", "id", "s")
	if q, _ := b.Queue("/queue/u"); q.Depth != 1 {
		t.Fatalf("queue %+v", q)
	}
	c.receipt("SUBSCRIBE", "id", "t", "destination", "/queue/u")
	if f := c.recvCmd("MESSAGE"); f.Header.Get("redelivered") != "true" || f.Header.Get("subscription") != "t" {
		t.Fatalf("got %v", f)
	}
	c.close()
}

func TestTopicFanOut(t *testing.T) {
	b := newBroker(t)
	s1 := open(t, b.Pipe(), "1.2")
	s2 := open(t, b.Pipe(), "1.1")
	s1.receipt("SUBSCRIBE", "id", "1", "destination", "/topic/news")
	s2.receipt("SUBSCRIBE", "id", "2", "destination", "/topic/news", "ack", "client")
	p := open(t, b.Pipe(), "1.2")
	p.sendMsg("/topic/news", "first")
	for _, s := range []*raw{s1, s2} {
		if f := s.recvCmd("MESSAGE"); string(f.Body) != "first" {
			t.Fatalf("got %v", f)
		}
	}
	late := open(t, b.Pipe(), "1.2")
	late.receipt("SUBSCRIBE", "id", "3", "destination", "/topic/news")
	p.sendMsg("/topic/news", "second")
	for _, s := range []*raw{s1, s2, late} {
		if f := s.recvCmd("MESSAGE"); string(f.Body) != "second" {
			t.Fatalf("got %v", f)
		}
	}
	p.sendMsg("/topic/nobody", "lost by design")
	p.receipt("SEND", "destination", "/topic/news")
	for _, s := range []*raw{s1, s2, late} {
		s.recvCmd("MESSAGE")
		s.close()
	}
	p.close()
}

func TestTransactions(t *testing.T) {
	b := newBroker(t)
	c := open(t, b.Pipe(), "1.2")
	c.receipt("SUBSCRIBE", "id", "s", "destination", "/queue/tx", "ack", "client-individual")
	c.receipt("BEGIN", "transaction", "t1")
	c.sendMsg("/queue/tx", "a", "transaction", "t1")
	c.sendMsg("/queue/tx", "b", "transaction", "t1")
	c.nothing(50 * time.Millisecond)
	c.receipt("COMMIT", "transaction", "t1")
	ma, mb := c.recvCmd("MESSAGE"), c.recvCmd("MESSAGE")
	if string(ma.Body) != "a" || string(mb.Body) != "b" || ma.Header.Has("transaction") {
		t.Fatalf("got %v %v", ma, mb)
	}
	// A transactional ACK that is aborted leaves the message unacked.
	c.receipt("BEGIN", "transaction", "t2")
	c.do("ACK", "id", ma.Header.Get("ack"), "transaction", "t2")
	c.sendMsg("/queue/tx", "never", "transaction", "t2")
	c.receipt("ABORT", "transaction", "t2")
	if q, _ := b.Queue("/queue/tx"); q.Unacked != 2 || q.Depth != 0 {
		t.Fatalf("queue %+v", q)
	}
	c.receipt("BEGIN", "transaction", "t3")
	c.do("ACK", "id", ma.Header.Get("ack"), "transaction", "t3")
	c.do("ACK", "id", mb.Header.Get("ack"), "transaction", "t3")
	c.receipt("COMMIT", "transaction", "t3")
	if st := b.Stats(); st.Acked != 2 || len(st.Queues) != 1 || st.Queues[0].Unacked != 0 {
		t.Fatalf("stats %+v", st)
	}
	c.close()
}

// A SEND to a full queue waits for room: its RECEIPT comes once a consumer
// has taken a message; one that waits past WithQueueFullTimeout is refused
// with an ERROR "queue full" carrying its receipt-id.
func TestQueueLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithQueueLimit(2), broker.WithQueueFullTimeout(time.Second))
		p := open(t, b.Pipe(), "1.2")
		p.sendMsg("/queue/full", "1")
		p.sendMsg("/queue/full", "2", "receipt", "ok")
		p.recvCmd("RECEIPT")
		p.sendMsg("/queue/full", "3", "receipt", "r3")
		time.Sleep(time.Second / 2)
		synctest.Wait()
		if st := b.Stats(); st.DeferredSends != 1 || st.Queues[0].Waiting != 1 || st.Queues[0].Depth != 2 {
			t.Fatalf("stats %+v", st)
		}
		c := open(t, b.Pipe(), "1.2")
		c.do("SUBSCRIBE", "id", "0", "destination", "/queue/full", "ack", "client-individual", "prefetch-count", "1")
		m := c.recvCmd("MESSAGE")
		c.receipt("ACK", "id", m.Header.Get("ack"))
		if f := p.recvCmd("RECEIPT"); f.Header.Get("receipt-id") != "r3" {
			t.Fatalf("got %v", f)
		}
		p.sendMsg("/queue/full", "4", "receipt", "r4") // 2, 3 and the unacked... full again
		time.Sleep(time.Second + time.Millisecond)
		f := p.recvCmd("ERROR")
		if f.Header.Get("receipt-id") != "r4" || f.Header.Get("message") != "queue full" || !strings.Contains(string(f.Body), "had no room for 1s") {
			t.Fatalf("got %v %q", f, f.Body)
		}
		st := b.Stats()
		if st.Refused != 1 || st.MessagesIn != 4 || st.Queues[0].Depth+st.Queues[0].Unacked != 2 || st.Queues[0].Waiting != 0 || st.DeferredSends != 0 {
			t.Fatalf("stats %+v", st)
		}
		c.close()
	})
}

func TestAuthentication(t *testing.T) {
	b := newBroker(t, broker.WithUsers(map[string]string{"alice": "wonder"}))
	c := b.Pipe()
	r := &raw{t: t, c: c, r: frame.NewReader(c), w: frame.NewWriter(c)}
	r.do("CONNECT", "accept-version", "1.2", "host", "/", "login", "alice", "passcode", "guess")
	f := r.recvCmd("ERROR")
	if f.Header.Get("message") != "access refused" || strings.Contains(f.String()+string(f.Body), "guess") {
		t.Fatalf("got %v %q", f, f.Body)
	}
	open(t, b.Pipe(), "1.2", "login", "alice", "passcode", "wonder").close()
}

func TestStartAddrURLShutdown(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") || b.URL() != "tcp://"+b.Addr() {
		t.Fatalf("addr %q url %q", b.Addr(), b.URL())
	}
	c := open(t, dialTCP(t, b.Addr()), "1.2")
	c.receipt("SUBSCRIBE", "id", "0", "destination", "/queue/x")
	if st := b.Stats(); st.Sessions != 1 || len(st.Queues) != 1 || st.Queues[0].Consumers != 1 {
		t.Fatalf("stats %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if f := c.recvCmd("ERROR"); f.Header.Get("message") != "server shutting down" {
		t.Fatalf("got %v", f)
	}
	c.c.Close()
	if st := b.Stats(); st.Sessions != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A queue consumer whose session's outbound queue is smaller than its
// prefetch: deliveries the session refuses stay in the queue and resume
// as the writer drains; nothing is lost or duplicated.
func TestQueueResumesAfterFullOutbound(t *testing.T) {
	for _, mode := range []string{"auto", "client-individual"} {
		t.Run(mode, func(t *testing.T) {
			b := newBroker(t, broker.WithServerOptions(server.WithOutboundQueue(2)))
			p := open(t, b.Pipe(), "1.2")
			for i := range 50 {
				p.sendMsg("/queue/narrow", fmt.Sprint(i))
			}
			p.receipt("SEND", "destination", "/queue/other")
			c := open(t, b.Pipe(), "1.2")
			c.do("SUBSCRIBE", "id", "0", "destination", "/queue/narrow", "ack", mode, "prefetch-count", "20")
			for i := range 50 {
				f := c.recvCmd("MESSAGE")
				if string(f.Body) != fmt.Sprint(i) || f.Header.Has("redelivered") {
					t.Fatalf("message %d: %v", i, f)
				}
				if mode != "auto" {
					c.do("ACK", "id", f.Header.Get("ack"))
				}
			}
			c.close()
			p.close()
			if q, _ := b.Queue("/queue/narrow"); q.Depth != 0 || q.Unacked != 0 {
				t.Fatalf("queue %+v", q)
			}
		})
	}
}

// A topic subscriber in a client ack mode that does not acknowledge gets
// no more than its prefetch; further messages wait in its backlog, and
// once it has taken nothing for WithSlowConsumerTimeout it is cut off with
// an ERROR "slow consumer". The producer and the other subscriber go on.
func TestTopicUnackedSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithSlowConsumerTimeout(time.Second))
		lazy := open(t, b.Pipe(), "1.2")
		lazy.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/t", "ack", "client", "prefetch-count", "2")
		ok := open(t, b.Pipe(), "1.1")
		ok.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/t")
		p := open(t, b.Pipe(), "1.2")
		for i := range 4 {
			p.sendMsg("/topic/t", fmt.Sprint(i))
		}
		for i := range 4 {
			if f := ok.recvCmd("MESSAGE"); string(f.Body) != fmt.Sprint(i) {
				t.Fatalf("got %v", f)
			}
		}
		lazy.recvCmd("MESSAGE")
		lazy.recvCmd("MESSAGE")
		start := time.Now()
		f := lazy.recvCmd("ERROR")
		if f.Header.Get("message") != "slow consumer" || !strings.Contains(string(f.Body), "with 2 messages (") {
			t.Fatalf("got %v %q", f, f.Body)
		}
		if waited := time.Since(start); waited < time.Second || waited > time.Second*5/4 {
			t.Fatalf("cut off after %v", waited)
		}
		p.receipt("SEND", "destination", "/topic/t")
		ok.recvCmd("MESSAGE")
		if st := b.Stats(); st.SlowConsumers != 1 || st.Bytes != 0 {
			t.Fatalf("stats %+v", st)
		}
		ok.close()
		p.close()
	})
}

// TestTopicSubscribersComeAndGo unsubscribes a topic's subscribers in an
// order that takes each place of its list (the middle, the first, the
// last): after each, a message reaches exactly those left, once each.
func TestTopicSubscribersComeAndGo(t *testing.T) {
	b := newBroker(t)
	subs := make([]*raw, 5)
	for i := range subs {
		subs[i] = open(t, b.Pipe(), "1.2")
		subs[i].receipt("SUBSCRIBE", "id", "s", "destination", "/topic/come-and-go")
	}
	p := open(t, b.Pipe(), "1.2")
	left := map[int]bool{0: true, 1: true, 2: true, 3: true, 4: true}
	for round, gone := range []int{2, 0, 4, 1, 3} {
		body := fmt.Sprint("round ", round)
		p.sendMsg("/topic/come-and-go", body)
		p.receipt("SEND", "destination", "/queue/unused") // the message is out
		for i := range subs {
			if !left[i] {
				continue
			}
			if f := subs[i].recvCmd("MESSAGE"); string(f.Body) != body {
				t.Fatalf("subscriber %d: %q, want %q", i, f.Body, body)
			}
		}
		if st := b.Stats(); len(st.Topics) != 1 || st.Topics[0].Subscribers != len(left) {
			t.Fatalf("round %d: %+v, want %d subscribers", round, st.Topics, len(left))
		}
		subs[gone].receipt("UNSUBSCRIBE", "id", "s")
		delete(left, gone)
	}
	for i := range subs {
		subs[i].nothing(20 * time.Millisecond)
	}
	if st := b.Stats(); len(st.Topics) != 0 {
		t.Fatalf("topics left: %+v", st.Topics)
	}
}
