package stomp

import (
	"errors"
	"testing"

	"github.com/stompout/stomp/internal/stomptest"
)

// TestFrameBytes checks the exact bytes of every client command in every
// version.
func TestFrameBytes(t *testing.T) {
	noLeaks(t)
	w := stomptest.Wire
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			c, p := connectPeer(t, v, nil)
			ctx := ctxT(t)

			// SEND: content-length on by default, content-type, extra headers, receipt last.
			if err := c.Send(ctx, "/queue/a", []byte("hi")); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("SEND", "hi", "destination", "/queue/a", "content-length", "2"))
			var r *Receipt
			if err := c.Send(ctx, "/queue/a", []byte("hi"), WithContentType("text/plain"),
				WithHeader("persistent", "true"), WithReceipt(&r), WithContentLength(false)); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("SEND", "hi", "destination", "/queue/a", "content-type", "text/plain",
				"persistent", "true", "receipt", "rcpt-1"))
			p.Send("RECEIPT", "", "receipt-id", "rcpt-1")
			if err := r.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Send(ctx, "/queue/a", []byte("a\x00b")); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("SEND", "a\x00b", "destination", "/queue/a", "content-length", "3"))
			if err := c.Send(ctx, "/queue/a", []byte("a\x00b"), WithContentLength(false)); err == nil {
				t.Fatal("NUL body without content-length accepted")
			}

			// SUBSCRIBE in each ack mode.
			s1, err := c.Subscribe(ctx, "/queue/a")
			if err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/a", "id", "sub-1", "ack", "auto"))
			s2, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClient), WithID("mine"), WithPrefetch(10),
				WithHeader("selector", "x = 1"))
			if err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/a", "id", "mine", "ack", "client",
				"prefetch-count", "10", "activemq.prefetchSize", "10", "selector", "x = 1"))
			s3, err := c.Subscribe(ctx, "/queue/b", WithAck(AckClientIndividual))
			if err != nil {
				t.Fatal(err)
			}
			// A client mode advertises the channel's capacity as the prefetch.
			p.ExpectBytes(w("SUBSCRIBE", "", "destination", "/queue/b", "id", "sub-2", "ack", "client-individual",
				"prefetch-count", "256", "activemq.prefetchSize", "256"))

			// MESSAGE -> Ack / Nack per version.
			p.Send("MESSAGE", "body", "subscription", "mine", "destination", "/queue/a",
				"message-id", "m-1", "ack", "a-1", "content-type", "text/plain", "redelivered", "true")
			m := recv(t, s2.C())
			if m.Destination != "/queue/a" || m.ID != "m-1" || m.Subscription != "mine" || !m.Redelivered ||
				m.ContentType != "text/plain" || string(m.Body) != "body" || m.Header.Get("ack") != "a-1" {
				t.Fatalf("message %+v", m)
			}
			if err := m.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			switch v {
			case V10:
				p.ExpectBytes(w("ACK", "", "message-id", "m-1"))
				if err := m.Nack(ctx); !errors.Is(err, ErrNackUnsupported) {
					t.Fatalf("1.0 Nack: %v", err)
				}
			case V11:
				p.ExpectBytes(w("ACK", "", "message-id", "m-1", "subscription", "mine"))
				if err := m.Nack(ctx); !errors.Is(err, ErrAlreadyAcked) {
					t.Fatalf("Nack after Ack: %v", err)
				}
				m = nackable(t, p, s2)
				if err := m.Nack(ctx); err != nil {
					t.Fatal(err)
				}
				p.ExpectBytes(w("NACK", "", "message-id", "m-1b", "subscription", "mine"))
			case V12:
				p.ExpectBytes(w("ACK", "", "id", "a-1"))
				if err := m.Ack(ctx); !errors.Is(err, ErrAlreadyAcked) {
					t.Fatalf("second Ack: %v", err)
				}
				m = nackable(t, p, s2)
				if err := m.Nack(ctx); err != nil {
					t.Fatal(err)
				}
				p.ExpectBytes(w("NACK", "", "id", "a-1b"))
			}

			// Auto-mode messages cannot be acked.
			p.Send("MESSAGE", "", "subscription", "sub-1", "destination", "/queue/a", "message-id", "m-2", "ack", "a-2")
			if err := recv(t, s1.C()).Ack(ctx); !errors.Is(err, ErrAutoAck) {
				t.Fatalf("Ack of auto message: %v", err)
			}

			// Transactions.
			tx, err := c.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("BEGIN", "", "transaction", "tx-1"))
			if err := tx.Send(ctx, "/queue/b", []byte("x"), WithContentType("text/plain")); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("SEND", "x", "destination", "/queue/b", "content-type", "text/plain",
				"transaction", "tx-1", "content-length", "1"))
			p.Send("MESSAGE", "", "subscription", "sub-2", "destination", "/queue/b", "message-id", "m-3", "ack", "a-3")
			m3 := recv(t, s3.C())
			if err := tx.Ack(ctx, m3); err != nil {
				t.Fatal(err)
			}
			switch v {
			case V10:
				p.ExpectBytes(w("ACK", "", "message-id", "m-3", "transaction", "tx-1"))
			case V11:
				p.ExpectBytes(w("ACK", "", "message-id", "m-3", "subscription", "sub-2", "transaction", "tx-1"))
			case V12:
				p.ExpectBytes(w("ACK", "", "id", "a-3", "transaction", "tx-1"))
			}
			if got := c.Transactions(); len(got) != 1 || got[0] != tx {
				t.Fatalf("Transactions() = %v", got)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("COMMIT", "", "transaction", "tx-1"))
			if err := tx.Commit(ctx); !errors.Is(err, ErrTxDone) {
				t.Fatalf("second Commit: %v", err)
			}
			tx2, err := c.Begin(ctx, WithID("t2"))
			if err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("BEGIN", "", "transaction", "t2"))
			if err := tx2.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("ABORT", "", "transaction", "t2"))
			if len(c.Transactions()) != 0 {
				t.Fatal("transactions left")
			}

			// UNSUBSCRIBE.
			if got := c.Subscriptions(); len(got) != 3 || got[0] != s1 || got[1] != s2 || got[2] != s3 {
				t.Fatalf("Subscriptions() = %v", got)
			}
			if err := s2.Unsubscribe(ctx); err != nil {
				t.Fatal(err)
			}
			p.ExpectBytes(w("UNSUBSCRIBE", "", "id", "mine"))
			if _, ok := <-s2.C(); ok || s2.Err() != nil {
				t.Fatalf("after Unsubscribe: open %v, Err %v", ok, s2.Err())
			}
			if err := s2.Unsubscribe(ctx); err != nil {
				t.Fatal(err)
			}

			// Escaping follows the version.
			if v != V10 {
				if err := c.Send(ctx, "/queue/a", nil, WithHeader("k:x", "a:b\nc\\d")); err != nil {
					t.Fatal(err)
				}
				p.ExpectBytes(w("SEND", "", "destination", "/queue/a", `k\cx`, `a\cb\nc\\d`, "content-length", "0"))
			} else if err := c.Send(ctx, "/queue/a", nil, WithHeader("k", "a\nb")); err == nil {
				t.Fatal("newline in a 1.0 header accepted")
			}

			done := async(func() error { return c.Disconnect(ctx) })
			p.ExpectBytes(w("DISCONNECT", "", "receipt", "rcpt-2"))
			p.Send("RECEIPT", "", "receipt-id", "rcpt-2")
			if err := waitErr(t, done); err != nil {
				t.Fatal(err)
			}
			if _, ok := <-s1.C(); ok || !errors.Is(s1.Err(), ErrClosed) {
				t.Fatalf("s1 after Disconnect: %v", s1.Err())
			}
		})
	}
}

func TestJSON(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	type job struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	if err := c.SendJSON(ctx, "/queue/j", job{1, "a"}); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("SEND", `{"id":1,"name":"a"}`, "destination", "/queue/j",
		"content-type", "application/json", "content-length", "19"))
	if err := c.SendJSON(ctx, "/queue/j", make(chan int)); err == nil {
		t.Fatal("unencodable value accepted")
	}
	sub, err := c.Subscribe(ctx, "/queue/j")
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	p.Send("MESSAGE", `{"id":2,"name":"b"}`, "subscription", "sub-1", "destination", "/queue/j", "message-id", "1")
	var got job
	if err := recv(t, sub.C()).JSON(&got); err != nil || got != (job{2, "b"}) {
		t.Fatalf("JSON: %v %+v", err, got)
	}
	p.Send("MESSAGE", `nope`, "subscription", "sub-1", "destination", "/queue/j", "message-id", "2")
	if err := recv(t, sub.C()).JSON(&got); err == nil {
		t.Fatal("bad JSON decoded")
	}
}

// nackable has the peer deliver a second message to s (an ack settles a
// message once: a NACK needs another).
func nackable(t *testing.T, p *stomptest.Peer, s *Subscription) Message {
	t.Helper()
	p.Send("MESSAGE", "body", "subscription", "mine", "destination", "/queue/a", "message-id", "m-1b", "ack", "a-1b")
	return recv(t, s.C())
}
