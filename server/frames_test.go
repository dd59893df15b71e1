package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stompout/stomp/frame"
)

// deliverOnSubscribe makes the recorder push n messages to every new
// subscription.
func deliverOnSubscribe(rec *recorder, n int) {
	rec.onSubscribe = func(s *Session, sub *Subscription) error {
		for i := 1; i <= n; i++ {
			m := &Message{ID: fmt.Sprintf("m%d", i), Destination: sub.Destination, Body: []byte(fmt.Sprintf("body%d", i))}
			m.Header.Add("destination", "ignored")
			m.Header.Add("content-type", "text/plain")
			m.Header.Add("reply-to", "/queue/r:1")
			if err := s.Deliver(Delivery{Subscription: sub.ID, Message: m}); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestSendAndReceipt(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				c := dial(t, testServer(rec))
				c.connect(v, "s1")
				c.send("SEND\ndestination:/queue/a\nreceipt:r1\ncontent-type:text/plain\n\nhello\x00")
				c.expect("RECEIPT\nreceipt-id:r1\n\n\x00")
				// The RECEIPT came after the handler processed the frame.
				if ev := rec.Events(); ev[len(ev)-1] != "send /queue/a hello" {
					t.Fatalf("events %q", ev)
				}
				// A body with NULs, by content-length.
				c.send("SEND\ndestination:/queue/a\ncontent-length:3\nreceipt:r2\n\na\x00b\x00")
				c.expect("RECEIPT\nreceipt-id:r2\n\n\x00")
				c.close()
			})
		})
	}
}

func TestMessageFramesAndAcks(t *testing.T) {
	tests := []struct {
		v       string
		sub     string // SUBSCRIBE frame
		first   string // first MESSAGE frame expected
		ack2    string // ACK for the second message
		ack1    string // ACK for the first message
		wantAck string // what the handler sees for ack2 (client mode: cumulative)
	}{
		{"1.0", "SUBSCRIBE\ndestination:/queue/a\nack:client\n\n\x00",
			"MESSAGE\ndestination:/queue/a\nmessage-id:m1\ncontent-type:text/plain\nreply-to:/queue/r:1\ncontent-length:5\n\nbody1\x00",
			"ACK\nmessage-id:m2\n\n\x00", "ACK\nmessage-id:m1\n\n\x00",
			"ack /queue/a [m1 m2] tx="},
		{"1.1", "SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client\n\n\x00",
			"MESSAGE\ndestination:/queue/a\nmessage-id:m1\nsubscription:0\ncontent-type:text/plain\nreply-to:/queue/r\\c1\ncontent-length:5\n\nbody1\x00",
			"ACK\nsubscription:0\nmessage-id:m2\n\n\x00", "ACK\nsubscription:0\nmessage-id:m1\n\n\x00",
			"ack 0 [m1 m2] tx="},
		{"1.2", "SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client\n\n\x00",
			"MESSAGE\ndestination:/queue/a\nmessage-id:m1\nsubscription:0\nack:1\ncontent-type:text/plain\nreply-to:/queue/r\\c1\ncontent-length:5\n\nbody1\x00",
			"ACK\nid:2\n\n\x00", "ACK\nid:1\n\n\x00",
			"ack 0 [m1 m2] tx="},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				deliverOnSubscribe(rec, 3)
				c := dial(t, testServer(rec))
				c.connect(tt.v, "s1")
				c.send(tt.sub)
				c.expect(tt.first)
				c.expectPrefix("MESSAGE\n")
				c.expectPrefix("MESSAGE\n")
				c.send(strings.Replace(tt.ack2, "\n\n", "\nreceipt:a2\n\n", 1))
				c.expect("RECEIPT\nreceipt-id:a2\n\n\x00")
				if ev := rec.Events(); ev[len(ev)-1] != tt.wantAck {
					t.Fatalf("events %q, want last %q", ev, tt.wantAck)
				}
				// m1 was covered by the cumulative ACK: acking it again is an error.
				c.send(tt.ack1)
				got := c.expectPrefix("ERROR\nmessage:unknown ack id\n")
				_ = got
				c.expectClosed()
				c.close()
			})
		})
	}
}

func TestClientIndividualAndNack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		deliverOnSubscribe(rec, 3)
		c := dial(t, testServer(rec))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:x\ndestination:/queue/b\nack:client-individual\n\n\x00")
		for range 3 {
			c.expectPrefix("MESSAGE\n")
		}
		c.send("ACK\nid:2\n\n\x00NACK\nid:3\n\n\x00ACK\nid:1\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		want := []string{"ack x [m2] tx=", "nack x [m3] tx=", "ack x [m1] tx="}
		if ev := rec.Events(); !slices.Equal(ev[len(ev)-3:], want) {
			t.Fatalf("events %q", ev)
		}
		c.close()
	})
}

func TestAutoSubscriptionAndUnsubscribe(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				deliverOnSubscribe(rec, 1)
				srv := testServer(rec)
				c := dial(t, srv)
				c.connect(v, "s1")
				c.send("SUBSCRIBE\nid:7\ndestination:/topic/t\n\n\x00")
				sub := "subscription:7\n"
				c.expect("MESSAGE\ndestination:/topic/t\nmessage-id:m1\n" + sub + "content-type:text/plain\nreply-to:/queue/r" + map[string]string{"1.0": ":", "1.1": `\c`, "1.2": `\c`}[v] + "1\ncontent-length:5\n\nbody1\x00")
				c.send("UNSUBSCRIBE\nid:7\nreceipt:u\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:u\n\n\x00")
				s := rec.sessions[0]
				if err := s.Deliver(Delivery{Subscription: "7", Message: &Message{}}); !errors.Is(err, ErrUnknownSubscription) {
					t.Fatalf("Deliver after UNSUBSCRIBE = %v", err)
				}
				c.send("UNSUBSCRIBE\nid:7\n\n\x00")
				c.expect(errorFrame("", "unknown subscription", "no subscription 7"))
				c.expectClosed()
				c.close()
			})
		})
	}
}

func TestTransactions(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				deliverOnSubscribe(rec, 2)
				c := dial(t, testServer(rec))
				c.connect(v, "s1")
				c.send("SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client-individual\n\n\x00")
				c.expectPrefix("MESSAGE\n")
				c.expectPrefix("MESSAGE\n")
				ackID := map[string]string{"1.0": "message-id:m1", "1.1": "subscription:0\nmessage-id:m1", "1.2": "id:1"}[v]
				c.send("BEGIN\ntransaction:t1\nreceipt:b\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:b\n\n\x00")
				c.send("SEND\ndestination:/q\ntransaction:t1\nreceipt:s1\n\none\x00")
				c.expect("RECEIPT\nreceipt-id:s1\n\n\x00")
				c.send("SEND\ndestination:/q\ntransaction:t1\n\ntwo\x00")
				c.send("ACK\n" + ackID + "\ntransaction:t1\nreceipt:a\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:a\n\n\x00")
				before := len(rec.Events())
				for _, e := range rec.Events() {
					if strings.HasPrefix(e, "send") || strings.HasPrefix(e, "ack") {
						t.Fatalf("handler called before COMMIT: %q", e)
					}
				}
				c.send("COMMIT\ntransaction:t1\nreceipt:c\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:c\n\n\x00")
				want := []string{"send /q one", "send /q two", "ack 0 [m1] tx=t1"}
				if ev := rec.Events()[before:]; !slices.Equal(ev, want) {
					t.Fatalf("at COMMIT %q, want %q", ev, want)
				}
				// ABORT discards.
				c.send("BEGIN\ntransaction:t2\n\n\x00SEND\ndestination:/q\ntransaction:t2\n\nlost\x00ABORT\ntransaction:t2\nreceipt:ab\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:ab\n\n\x00")
				// An open transaction is aborted by DISCONNECT.
				c.send("BEGIN\ntransaction:t3\n\n\x00SEND\ndestination:/q\ntransaction:t3\n\nlost\x00DISCONNECT\nreceipt:d\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:d\n\n\x00")
				c.expectClosed()
				c.close()
				for _, e := range rec.Events() {
					if strings.Contains(e, "lost") {
						t.Fatalf("aborted send reached the handler: %q", rec.Events())
					}
				}
				if ev := rec.Events(); ev[len(ev)-1] != "disconnect <nil>" {
					t.Fatalf("events %q", ev)
				}
			})
		})
	}
}

func TestTransactionAbortedOnConnectionLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec))
		c.connect("1.2", "s1")
		c.send("BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\nreceipt:1\n\nlost\x00")
		c.expect("RECEIPT\nreceipt-id:1\n\n\x00")
		err := c.close()
		if !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("ServeConn = %v", err)
		}
		ev := rec.Events()
		if len(ev) != 2 || !strings.HasPrefix(ev[1], "disconnect server: connection lost") {
			t.Fatalf("events %q", ev)
		}
	})
}

func TestHandlerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{sendErr: &ApplicationError{Message: "queue full", Body: "/queue/a holds 10 messages"}}
		c := dial(t, testServer(rec))
		c.connect("1.2", "s1")
		c.send("SEND\ndestination:/queue/a\nreceipt:r9\n\nx\x00")
		c.expect(errorFrame("r9", "queue full", "/queue/a holds 10 messages"))
		c.expectClosed()
		var ae *ApplicationError
		if err := c.close(); !errors.As(err, &ae) {
			t.Fatalf("ServeConn = %v", err)
		}
		ev := rec.Events()
		want := []string{"connect 1.2 login= host=/", "send /queue/a x", "error server: queue full: /queue/a holds 10 messages", "disconnect server: queue full: /queue/a holds 10 messages"}
		if !slices.Equal(ev, want) {
			t.Fatalf("events %q", ev)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// Commit runs the handler; its error carries COMMIT's receipt.
		rec := &recorder{sendErr: &ApplicationError{Message: "nope"}}
		c := dial(t, testServer(rec))
		c.connect("1.1", "s1")
		c.send("BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\n\nx\x00COMMIT\ntransaction:t\nreceipt:c\n\n\x00")
		c.expect(errorFrame("c", "nope", ""))
		c.expectClosed()
		c.close()
	})
}

func TestSessionClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec))
		c.connect("1.2", "s1")
		s := rec.sessions[0]
		if s.ID() != "s1" || s.Version() != "1.2" || s.Login() != "" {
			t.Fatalf("session %q %q %q", s.ID(), s.Version(), s.Login())
		}
		s.Close(&ApplicationError{Message: "go away"})
		c.expect(errorFrame("", "go away", ""))
		c.expectClosed()
		c.close()
		if s.Context().Err() == nil {
			t.Fatal("session context not cancelled")
		}
	})
}

func TestDeliverUnencodable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec))
		c.connect("1.0", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/q\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		m := &Message{ID: "x"}
		m.Header.Add("multi", "line\nvalue")
		if err := rec.sessions[0].Deliver(Delivery{Subscription: "0", Message: m}); !errors.Is(err, frame.ErrUnencodable) {
			t.Fatalf("Deliver = %v", err)
		}
		c.close()
	})
}

type closingHandler struct{ recorder }

func (h *closingHandler) Send(ctx context.Context, s *Session, m *Message) error {
	h.recorder.Send(ctx, s, m)
	s.Close(&ApplicationError{Message: "enough"})
	return nil
}

func TestCloseFromHandlerStopsHandling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &closingHandler{}
		c := dial(t, testServer(h))
		c.connect("1.2", "s1")
		w := c.sendAsync("SEND\ndestination:/a\n\none\x00SEND\ndestination:/a\n\ntwo\x00")
		c.expect(errorFrame("", "enough", ""))
		c.expectClosed()
		c.close()
		<-w
		want := []string{"connect 1.2 login= host=/", "send /a one", "error server: enough", "disconnect server: enough"}
		if ev := h.Events(); !slices.Equal(ev, want) {
			t.Fatalf("events %q", ev)
		}
	})
}
