package server

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stompout/stomp/frame"
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
	for _, n := range []int{0, 1, 32, 33, 64, 65, 128, 129, 192, 193, 256, 257, 384, 385, 512, 513, 640, 641, 768, 769, 896, 897, 1024, 1025, 1200, 1500, 1700, 2000, 2500, 3000, 3500, 4000, 4097, 40000} {
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

// releasing delivers every message it is sent to subscription "0" of the
// sending session and releases it at once, while the delivery is still
// queued: the engine must keep the box until it is written.
type releasing struct{ recorder }

func (h *releasing) Send(ctx context.Context, s *Session, m *Message) error {
	err := s.Deliver(Delivery{Subscription: "0", Message: m})
	m.Release()
	m.Release() // a second call does nothing
	return err
}

// TestReleaseKeepsQueuedDeliveries sends messages of every box class
// through a handler that releases each one as soon as it has delivered it,
// so that released boxes are reused for the SENDs that follow while their
// MESSAGEs are still being written: every MESSAGE must come out as its SEND
// went in.
func TestReleaseKeepsQueuedDeliveries(t *testing.T) {
	sizes := []int{0, 5, 32, 33, 100, 200, 300, 500, 700, 800, 1000, 1024, 1025, 1300, 2100, 3000, 4050, 5000}
	const n = 600
	body := func(i int) string {
		b := make([]byte, sizes[i%len(sizes)])
		for j := range b {
			b[j] = 'a' + byte((i+j)%26)
		}
		return string(b)
	}
	synctest.Test(t, func(t *testing.T) {
		c := dial(t, testServer(&releasing{}))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\x00")
		sent := make(chan error, 1)
		go func() {
			var all strings.Builder
			for i := range n {
				fmt.Fprintf(&all, "SEND\ndestination:/queue/a\nseq:%d\n\n%s\x00", i, body(i))
			}
			_, err := io.WriteString(c.c, all.String())
			sent <- err
		}()
		for i := range n {
			c.expect(fmt.Sprintf("MESSAGE\ndestination:/queue/a\nmessage-id:s1-%d\nsubscription:0\nseq:%d\ncontent-length:%d\n\n%s\x00", i+1, i, len(body(i)), body(i)))
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
		c.close()
	})
}

// TestReleaseReuse checks when a box is reused: only once the engine, the
// handler (Release) and every delivery (written) are done with it; never
// for a Message the handler made itself.
func TestReleaseReuse(t *testing.T) {
	f := frame.New(frame.CmdSend, "destination", "/queue/a")
	f.Body = []byte("0123456789abcdef0123456789abcdef")
	t.Run("not while the engine holds it", func(t *testing.T) {
		for range 100 {
			m := newMessage(f)
			m.Release() // the handler's reference; the engine's remains
			if m2 := newMessage(f); m2 == m {
				t.Fatal("a box was reused while the engine still held it")
			}
		}
	})
	t.Run("not while a delivery holds it", func(t *testing.T) {
		for range 100 {
			m := newMessage(f)
			m.ref() // a Delivery
			m.unref()
			m.Release()
			if m2 := newMessage(f); m2 == m {
				t.Fatal("a box was reused while a delivery still held it")
			}
		}
	})
	t.Run("once all are done", func(t *testing.T) {
		reused := 0
		for range 100 {
			m := newMessage(f)
			m.ref()
			m.unref() // the delivery, written
			m.unref() // the engine, Send returned
			m.Release()
			m2 := newMessage(f)
			if m2 == m {
				reused++
			}
			if string(m2.Body) != string(f.Body) || m2.Destination != "/queue/a" || m2.Header.Get("destination") != "/queue/a" {
				t.Fatalf("reused box holds %q %q %v", m2.Body, m2.Destination, m2.Header)
			}
		}
		// sync.Pool may drop what it is given (it does so on purpose under
		// -race, for a quarter of them) or hand it to another P.
		if reused < 50 {
			t.Fatalf("%d of 100 released boxes reused at once, want most", reused)
		}
	})
	t.Run("never a handler's own", func(t *testing.T) {
		m := &Message{Destination: "/queue/a", Body: f.Body}
		m.Release()
		m.Release()
		c := *newMessage(f) // a copy shares the ctl, not the box
		c.Release()
		if c.ctl.released.Load() {
			t.Fatal("Release of a copy released the original")
		}
	})
}

// idFromHeader delivers each message it is sent to subscription "0" with
// its ID taken from the message's own x-id header, a string of the box's
// memory, and releases it at once.
type idFromHeader struct{ recorder }

func (h *idFromHeader) Send(ctx context.Context, s *Session, m *Message) error {
	m.ID = m.Header.Get("x-id")
	err := s.Deliver(Delivery{Subscription: "0", Message: m})
	m.Release()
	return err
}

// TestReleasedMessageIDKept checks that in a client ack mode the engine
// keeps its own copy of a released Message's ID: the box is reused by the
// SENDs that follow before the client ACKs, and the ACKs still name the
// ids the MESSAGEs carried.
func TestReleasedMessageIDKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &idFromHeader{}
		c := dial(t, testServer(h))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client-individual\n\n\x00")
		const n = 20
		for i := range n {
			c.send(fmt.Sprintf("SEND\ndestination:/queue/a\nx-id:id-%02d\n\nb\x00", i))
			c.expect(fmt.Sprintf("MESSAGE\ndestination:/queue/a\nmessage-id:id-%02d\nsubscription:0\nack:%d\nx-id:id-%02d\ncontent-length:1\n\nb\x00", i, i+1, i))
		}
		for i := range n {
			c.send(fmt.Sprintf("ACK\nid:%d\nreceipt:r%d\n\n\x00", i+1, i))
			c.expect(fmt.Sprintf("RECEIPT\nreceipt-id:r%d\n\n\x00", i))
		}
		var acks []string
		for _, e := range h.Events() {
			if strings.HasPrefix(e, "ack ") {
				acks = append(acks, e)
			}
		}
		for i := range n {
			if want := fmt.Sprintf("ack 0 [id-%02d] tx=", i); i >= len(acks) || acks[i] != want {
				t.Fatalf("acks %q, want ack %d to be %q", acks, i, want)
			}
		}
		c.close()
	})
}
