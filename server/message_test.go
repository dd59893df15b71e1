package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
)

// TestDeliverMessageIDs checks the message-id of each kind of delivery,
// mixed in one batch: Message.ID, Message.Seq (formatted by the writer),
// neither (the engine's id); and in client-individual mode that the Ack
// carries the same ids.
func TestDeliverMessageIDs(t *testing.T) {
	for _, ack := range []string{"auto", "client-individual"} {
		t.Run(ack, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				msgs := []*Message{{ID: "given"}, {Seq: 7}, {}, {Seq: 123456789012}, {}}
				rec.onSubscribe = func(s *Session, sub *Subscription) error {
					for i, m := range msgs {
						m.Body = fmt.Appendf(nil, "b%d", i)
						if err := s.Deliver(Delivery{Subscription: sub.ID, Message: m}); err != nil {
							return err
						}
					}
					return nil
				}
				c := dial(t, testServer(rec))
				c.connect("1.2", "s1")
				c.send("SUBSCRIBE\nid:0\ndestination:/queue/a\nack:" + ack + "\n\n\x00")
				ids := []string{"given", "m-7", "s1-1", "m-123456789012", "s1-2"}
				for i, id := range ids {
					ackHdr := ""
					if ack != "auto" {
						ackHdr = fmt.Sprintf("ack:%d\n", i+1)
					}
					c.expect(fmt.Sprintf("MESSAGE\ndestination:/queue/a\nmessage-id:%s\nsubscription:0\n%scontent-length:2\n\nb%d\x00", id, ackHdr, i))
				}
				if ack == "auto" {
					c.close()
					return
				}
				var acks strings.Builder
				for i := range ids {
					fmt.Fprintf(&acks, "ACK\nid:%d\n\n\x00", i+1)
				}
				acks.WriteString("DISCONNECT\nreceipt:d\n\n\x00")
				c.send(acks.String())
				c.expect("RECEIPT\nreceipt-id:d\n\n\x00")
				var got []string
				for _, ev := range rec.Events() {
					if id, ok := strings.CutPrefix(ev, "ack 0 ["); ok {
						got = append(got, strings.TrimSuffix(id, "] tx="))
					}
				}
				if !slices.Equal(got, ids) {
					t.Fatalf("acked %q, want %q", got, ids)
				}
				c.close()
			})
		})
	}
}

// echo delivers every message it is sent back to subscription "0" of the
// sending session, as it came.
type echo struct{ recorder }

func (e *echo) Send(ctx context.Context, s *Session, m *Message) error {
	return s.Deliver(Delivery{Subscription: "0", Message: m})
}

// TestSendMessageRoundTrip sends messages of every body size class of
// newMessage, and header counts on both sides of what fits its room, and
// checks that they come back as they went (the receipt and transaction
// headers dropped).
func TestSendMessageRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 32, 33, 64, 65, 128, 129, 192, 193, 256, 257, 384, 385, 512, 513, 640, 641, 768, 769, 896, 897, 1024, 1025, 40000} {
		for _, extra := range []int{0, 1, 2, 6} {
			t.Run(fmt.Sprintf("body=%d/headers=%d", n, extra), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c := dial(t, testServer(&echo{}))
					c.connect("1.2", "s1")
					c.send("SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\x00")
					body := strings.Repeat("x", n)
					var hdrs strings.Builder
					for i := range extra {
						fmt.Fprintf(&hdrs, "h%d:v%d\n", i, i)
					}
					c.send("BEGIN\ntransaction:t\n\n\x00")
					c.send("SEND\ndestination:/queue/a\nreceipt:r\n" + hdrs.String() + "\n" + body + "\x00")
					c.expect("MESSAGE\ndestination:/queue/a\nmessage-id:s1-1\nsubscription:0\n" + hdrs.String() + fmt.Sprintf("content-length:%d\n\n", n) + body + "\x00")
					c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
					c.send("SEND\ndestination:/queue/a\ntransaction:t\n" + hdrs.String() + "\n" + body + "\x00")
					c.send("COMMIT\ntransaction:t\n\n\x00")
					c.expect("MESSAGE\ndestination:/queue/a\nmessage-id:s1-2\nsubscription:0\n" + hdrs.String() + fmt.Sprintf("content-length:%d\n\n", n) + body + "\x00")
					c.close()
				})
			})
		}
	}
}
