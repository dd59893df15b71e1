package compat

import (
	"errors"
	"fmt"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/stompout/stomp/broker"
)

// The embedded broker serves a client this project did not write:
// go-stomp v3, over TCP, in STOMP 1.1 and 1.2.

var interopVersions = []gostomp.Version{gostomp.V11, gostomp.V12}

func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start("127.0.0.1:0", broker.WithUsers(map[string]string{"guest": "guest"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func dialGoStomp(t *testing.T, b *broker.Broker, v gostomp.Version) *gostomp.Conn {
	t.Helper()
	c, err := gostomp.Dial("tcp", b.Addr(),
		gostomp.ConnOpt.AcceptVersion(v),
		gostomp.ConnOpt.Login("guest", "guest"),
		gostomp.ConnOpt.HeartBeat(time.Second, time.Second),
		gostomp.ConnOpt.UnsubscribeReceiptTimeout(500*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("go-stomp Dial %s: %v", v, err)
	}
	if c.Version() != v {
		t.Fatalf("negotiated %s, want %s", c.Version(), v)
	}
	return c
}

// next reads one message from sub within a few seconds.
func next(t *testing.T, sub *gostomp.Subscription) *gostomp.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C:
		if !ok {
			t.Fatal("subscription closed")
		}
		if m.Err != nil {
			t.Fatalf("subscription error: %v", m.Err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no message")
	}
	return nil
}

// none checks that nothing arrives on sub for a moment.
func none(t *testing.T, sub *gostomp.Subscription) {
	t.Helper()
	select {
	case m := <-sub.C:
		t.Fatalf("unexpected message %q", m.Body)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestGoStompQueueAcks(t *testing.T) {
	for _, v := range interopVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			c := dialGoStomp(t, b, v)
			sub, err := c.Subscribe("/queue/interop", gostomp.AckClientIndividual)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				err := c.Send("/queue/interop", "text/plain", []byte(fmt.Sprint("msg", i)),
					gostomp.SendOpt.Receipt, gostomp.SendOpt.Header("x-seq", fmt.Sprint(i)), gostomp.SendOpt.Header("reply-to", "/queue/back"))
				if err != nil {
					t.Fatalf("Send with receipt: %v", err)
				}
			}
			m0, m1, m2 := next(t, sub), next(t, sub), next(t, sub)
			for i, m := range []*gostomp.Message{m0, m1, m2} {
				if string(m.Body) != fmt.Sprint("msg", i) || m.Header.Get("x-seq") != fmt.Sprint(i) ||
					m.Header.Get("reply-to") != "/queue/back" || m.ContentType != "text/plain" || m.Destination != "/queue/interop" {
					t.Fatalf("message %d: %q %v", i, m.Body, m.Header)
				}
			}
			if err := c.Ack(m0); err != nil {
				t.Fatal(err)
			}
			if err := c.Nack(m1); err != nil {
				t.Fatal(err)
			}
			r := next(t, sub)
			if string(r.Body) != "msg1" || r.Header.Get("redelivered") != "true" {
				t.Fatalf("redelivery %q %v", r.Body, r.Header)
			}
			if err := c.Ack(r); err != nil {
				t.Fatal(err)
			}
			if err := c.Ack(m2); err != nil {
				t.Fatal(err)
			}
			// Unsubscribe waits for the RECEIPT. go-stomp v3.1.5 can miss
			// it (Subscription.closeChannel broadcasts without holding
			// closeMutex: a lost wake-up) and then reports a timeout even
			// though the RECEIPT arrived; the broker's side is checked below.
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, &gostomp.ErrUnsubscribeReceiptTimeout) {
				t.Fatal(err)
			}
			if err := c.Disconnect(); err != nil {
				t.Fatal(err)
			}
			st := b.Stats()
			if st.Acked != 3 || st.Nacked != 1 || st.Redelivered != 1 || len(st.Queues) != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestGoStompCompetingConsumersAndLeaving(t *testing.T) {
	for _, v := range interopVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			c1, c2 := dialGoStomp(t, b, v), dialGoStomp(t, b, v)
			s1, err := c1.Subscribe("/queue/work", gostomp.AckClient)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := c2.Subscribe("/queue/work", gostomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			// go-stomp sends SUBSCRIBE without a receipt: a SEND with one
			// on the same connection shows it was processed.
			for _, c := range []*gostomp.Conn{c1, c2} {
				if err := c.Send("/queue/sync", "", nil, gostomp.SendOpt.Receipt); err != nil {
					t.Fatal(err)
				}
			}
			p := dialGoStomp(t, b, v)
			for i := range 4 {
				if err := p.Send("/queue/work", "", []byte(fmt.Sprint(i)), gostomp.SendOpt.Receipt); err != nil {
					t.Fatal(err)
				}
			}
			got1 := []string{string(next(t, s1).Body), string(next(t, s1).Body)}
			got2 := []string{string(next(t, s2).Body), string(next(t, s2).Body)}
			// Round-robin: each consumer got every other message.
			if !(got1[0] == "0" && got1[1] == "2" && got2[0] == "1" && got2[1] == "3") &&
				!(got1[0] == "1" && got1[1] == "3" && got2[0] == "0" && got2[1] == "2") {
				t.Fatalf("round-robin: %q %q", got1, got2)
			}
			// c1 leaves without acknowledging: its two go to c2, redelivered.
			if err := c1.Disconnect(); err != nil {
				t.Fatal(err)
			}
			for _, want := range got1 {
				m := next(t, s2)
				if string(m.Body) != want || m.Header.Get("redelivered") != "true" {
					t.Fatalf("got %q %v, want %s redelivered", m.Body, m.Header, want)
				}
			}
			c2.Disconnect()
			p.Disconnect()
		})
	}
}

func TestGoStompTransactions(t *testing.T) {
	for _, v := range interopVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			c := dialGoStomp(t, b, v)
			sub, err := c.Subscribe("/queue/tx", gostomp.AckClientIndividual)
			if err != nil {
				t.Fatal(err)
			}
			tx := c.Begin()
			for _, s := range []string{"a", "b"} {
				if err := tx.Send("/queue/tx", "text/plain", []byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			none(t, sub)
			if err := tx.CommitWithReceipt(); err != nil {
				t.Fatal(err)
			}
			ma, mb := next(t, sub), next(t, sub)
			if string(ma.Body) != "a" || string(mb.Body) != "b" {
				t.Fatalf("got %q %q", ma.Body, mb.Body)
			}
			aborted := c.Begin()
			aborted.Send("/queue/tx", "text/plain", []byte("never"))
			aborted.Ack(ma)
			if err := aborted.AbortWithReceipt(); err != nil {
				t.Fatal(err)
			}
			none(t, sub)
			if q, _ := b.Queue("/queue/tx"); q.Unacked != 2 || q.Depth != 0 {
				t.Fatalf("after ABORT: %+v", q)
			}
			acks := c.Begin()
			acks.Ack(ma)
			acks.Ack(mb)
			if err := acks.CommitWithReceipt(); err != nil {
				t.Fatal(err)
			}
			if q, _ := b.Queue("/queue/tx"); q.Unacked != 0 || q.Depth != 0 {
				t.Fatalf("after COMMIT: %+v", q)
			}
			if err := c.Disconnect(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGoStompTopics(t *testing.T) {
	for _, v := range interopVersions {
		t.Run(v.String(), func(t *testing.T) {
			b := startBroker(t)
			c1, c2 := dialGoStomp(t, b, v), dialGoStomp(t, b, v)
			s1, err := c1.Subscribe("/topic/news", gostomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := c2.Subscribe("/topic/news", gostomp.AckAuto)
			if err != nil {
				t.Fatal(err)
			}
			// A receipt for a SUBSCRIBE: go-stomp sends SUBSCRIBE without
			// one, so make sure it was processed before publishing.
			if err := c2.Send("/queue/sync", "", nil, gostomp.SendOpt.Receipt); err != nil {
				t.Fatal(err)
			}
			if err := c1.Send("/queue/sync", "", nil, gostomp.SendOpt.Receipt); err != nil {
				t.Fatal(err)
			}
			if err := c1.Send("/topic/news", "text/plain", []byte("hello all"), gostomp.SendOpt.Receipt); err != nil {
				t.Fatal(err)
			}
			for _, s := range []*gostomp.Subscription{s1, s2} {
				if m := next(t, s); string(m.Body) != "hello all" {
					t.Fatalf("got %q", m.Body)
				}
			}
			c1.Disconnect()
			c2.Disconnect()
		})
	}
}

func TestGoStompBadLogin(t *testing.T) {
	b := startBroker(t)
	_, err := gostomp.Dial("tcp", b.Addr(), gostomp.ConnOpt.Login("guest", "wrong"))
	if err == nil {
		t.Fatal("Dial with a bad passcode succeeded")
	}
}
