package stomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/stompout/stomp/internal/stomptest"
)

// deliver has the peer send MESSAGE frames for subscription sub, with
// message-id m-<id> and ack a-<id>, and returns them as received.
func deliver(t *testing.T, p *stomptest.Peer, s *Subscription, ids ...string) []Message {
	t.Helper()
	var out []Message
	for _, id := range ids {
		p.Send("MESSAGE", id, "subscription", s.ID(), "destination", "/queue/a", "message-id", "m-"+id, "ack", "a-"+id)
		out = append(out, recv(t, s.C()))
	}
	return out
}

// marker sends a SEND and has the peer expect it next: nothing was written
// before it.
func marker(t *testing.T, c *Conn, p *stomptest.Peer) {
	t.Helper()
	if err := c.Send(ctxT(t), "/queue/marker", nil, WithContentLength(false)); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("SEND", "", "destination", "/queue/marker"))
}

// In AckClient mode an ACK goes out only for the contiguous prefix of
// settled messages, one per run; a NACK alone, once everything before it is
// settled; a second settlement is refused with nothing sent.
func TestAckClientPrefix(t *testing.T) {
	noLeaks(t)
	w := stomptest.Wire
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClient), WithID("s"), WithPrefetch(8))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	ms := deliver(t, p, sub, "1", "2", "3", "4", "5")

	// Out of order: 2 and 4 wait for 1 and 3.
	for _, i := range []int{1, 3} {
		if err := ms[i].Ack(ctx); err != nil {
			t.Fatalf("Ack %d: %v", i+1, err)
		}
	}
	marker(t, c, p)
	if err := ms[0].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(w("ACK", "", "id", "a-2")) // covers 1 and 2, not 4
	for _, i := range []int{0, 1, 3} {
		if err := ms[i].Ack(ctx); !errors.Is(err, ErrAlreadyAcked) {
			t.Fatalf("second Ack of %d: %v", i+1, err)
		}
		if err := ms[i].Nack(ctx); !errors.Is(err, ErrAlreadyAcked) {
			t.Fatalf("Nack of acked %d: %v", i+1, err)
		}
	}
	marker(t, c, p)
	// 3 is nacked: its NACK, alone, then the ACK of 4.
	if err := ms[2].Nack(ctx); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(w("NACK", "", "id", "a-3"))
	p.ExpectBytes(w("ACK", "", "id", "a-4"))
	// A receipt on a deferred ack resolves with the frame that covers it.
	more := deliver(t, p, sub, "6")
	var r5, r6 *Receipt
	if err := more[0].Ack(ctx, WithReceipt(&r6)); err != nil {
		t.Fatal(err)
	}
	marker(t, c, p)
	if err := ms[4].Ack(ctx, WithReceipt(&r5)); err != nil {
		t.Fatal(err)
	}
	f := p.Expect("ACK")
	if f.Header.Get("id") != "a-6" || f.Header.Get("receipt") == "" {
		t.Fatalf("ACK %v", f.Header)
	}
	select {
	case <-r5.Done():
		t.Fatal("receipt resolved before the RECEIPT")
	case <-r6.Done():
		t.Fatal("receipt resolved before the RECEIPT")
	default:
	}
	p.Send("RECEIPT", "", "receipt-id", f.Header.Get("receipt"))
	for _, r := range []*Receipt{r5, r6} {
		if err := r.Wait(ctx); err != nil {
			t.Fatalf("receipt: %v", err)
		}
	}
	marker(t, c, p)
}

// In AckClientIndividual mode frames go out at once, in any order, and a
// second settlement is refused.
func TestAckIndividualTwice(t *testing.T) {
	noLeaks(t)
	w := stomptest.Wire
	for _, v := range []Version{V10, V11, V12} {
		t.Run(string(v), func(t *testing.T) {
			c, p := connectPeer(t, v, nil)
			p.SetVersion(v)
			ctx := ctxT(t)
			sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClientIndividual), WithID("s"))
			if err != nil {
				t.Fatal(err)
			}
			p.Expect("SUBSCRIBE")
			ms := deliver(t, p, sub, "1", "2")
			if err := ms[1].Ack(ctx); err != nil {
				t.Fatal(err)
			}
			switch v {
			case V10:
				p.ExpectBytes(w("ACK", "", "message-id", "m-2"))
			case V11:
				p.ExpectBytes(w("ACK", "", "message-id", "m-2", "subscription", "s"))
			default:
				p.ExpectBytes(w("ACK", "", "id", "a-2"))
			}
			if err := ms[1].Ack(ctx); !errors.Is(err, ErrAlreadyAcked) {
				t.Fatalf("second Ack: %v", err)
			}
			copyOf := ms[1]
			if err := copyOf.Ack(ctx); !errors.Is(err, ErrAlreadyAcked) {
				t.Fatalf("Ack of a copy: %v", err)
			}
			marker(t, c, p)
			if err := ms[0].Ack(ctx); err != nil {
				t.Fatal(err)
			}
			p.Expect("ACK")
		})
	}
}

// A transactional ack in client mode of a message after an unsettled one
// is refused: the cumulative frame would settle the earlier one in the
// transaction too.
func TestAckClientTxOrder(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClient), WithID("s"))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	ms := deliver(t, p, sub, "1", "2")
	tx, err := c.Begin(ctx, WithID("t"))
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("BEGIN")
	if err := tx.Ack(ctx, ms[1]); !errors.Is(err, ErrAckOrder) {
		t.Fatalf("tx.Ack out of order: %v", err)
	}
	if err := tx.Ack(ctx, ms[0]); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("ACK", "", "id", "a-1", "transaction", "t"))
	if err := tx.Ack(ctx, ms[1]); err != nil {
		t.Fatal(err)
	}
	p.ExpectBytes(stomptest.Wire("ACK", "", "id", "a-2", "transaction", "t"))
}

// redialPeers connects a Conn over pipes whose server ends it hands out,
// one per transport, so that a test can drop one and script the next.
func redialPeers(t *testing.T, v Version) (*Conn, <-chan *stomptest.Peer) {
	t.Helper()
	peers := make(chan *stomptest.Peer, 4)
	var (
		mu      sync.Mutex
		servers []net.Conn
	)
	// Registered before the Conn's Close, so run after it: no transport
	// ends under a live Conn, which would dial again.
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range servers {
			s.Close()
		}
	})
	dial := func(ctx context.Context) (io.ReadWriteCloser, error) {
		client, server := net.Pipe()
		p := stomptest.New(t, server)
		mu.Lock()
		servers = append(servers, server)
		mu.Unlock()
		go func() {
			p.Accept(v, "session", "s", "server", "peer/1.0")
			peers <- p
		}()
		return client, nil
	}
	rw, _ := dial(context.Background())
	c, err := Connect(ctxT(t), rw, WithRedial(dial), WithVersions(v))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, peers
}

// The prefix is per transport: a message of a lost transport neither holds
// back the ACKs of the next one's nor is acknowledged by them.
func TestAckClientAcrossReconnect(t *testing.T) {
	noLeaks(t)
	c, peers := redialPeers(t, V12)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClient), WithID("s"))
	if err != nil {
		t.Fatal(err)
	}
	p1 := <-peers
	p1.Expect("SUBSCRIBE")
	old := deliver(t, p1, sub, "1", "2")
	if err := old[1].Ack(ctx); err != nil { // deferred behind 1
		t.Fatal(err)
	}
	p1.Close()
	p2 := <-peers
	p2.Expect("SUBSCRIBE") // subscribed again
	fresh := deliver(t, p2, sub, "3")
	if err := old[0].Ack(ctx); !errors.Is(err, ErrStaleMessage) {
		t.Fatalf("Ack of a message of the lost transport: %v", err)
	}
	if err := fresh[0].Ack(ctx); err != nil {
		t.Fatal(err)
	}
	p2.ExpectBytes(stomptest.Wire("ACK", "", "id", "a-3"))
}

// A server's view of AckClient, as brokers keep it: the unacknowledged
// deliveries in order; an ACK or NACK names one and covers it and every
// earlier one. Acks and nacks from 8 goroutines in random order must make
// frames that never name an unknown id, never cover a message that was not
// settled, nor an acked message with a NACK or a nacked one with an ACK,
// and in the end cover every message.
func TestAckClientRandomOrder(t *testing.T) {
	noLeaks(t)
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			const n, workers = 300, 8
			c, p := connectPeer(t, V12, nil)
			ctx := ctxT(t)
			sub, err := c.Subscribe(ctx, "/queue/a", WithAck(AckClient), WithID("s"), WithBuffer(n))
			if err != nil {
				t.Fatal(err)
			}
			p.Expect("SUBSCRIBE")
			for i := range n {
				p.Send("MESSAGE", "", "subscription", "s", "destination", "/queue/a", "message-id", fmt.Sprint("m", i), "ack", fmt.Sprint(i))
			}
			var (
				mu     sync.Mutex
				intent = map[string]bool{} // ack id -> nack?; recorded before the call
			)
			ms := make(chan Message, n)
			for range n {
				ms <- recv(t, sub.C())
			}
			close(ms)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(seed, uint64(w)))
					for m := range ms {
						if rng.IntN(3) == 0 {
							runtime.Gosched()
						}
						nack := rng.IntN(10) == 0
						mu.Lock()
						intent[m.Header.Get("ack")] = nack
						mu.Unlock()
						var err error
						if nack {
							err = m.Nack(ctx)
						} else {
							err = m.Ack(ctx)
						}
						if err != nil {
							t.Errorf("settle %s: %v", m.ID, err)
						}
					}
				})
			}
			check := func() error {
				pending := make([]string, n) // the server's unacknowledged deliveries
				for i := range pending {
					pending[i] = fmt.Sprint(i)
				}
				for len(pending) > 0 {
					f := p.ReadFrame()
					id := f.Header.Get("id")
					k := slices.Index(pending, id)
					if k < 0 {
						return fmt.Errorf("%s for unknown ack id %s", f.Command, id)
					}
					mu.Lock()
					for _, covered := range pending[:k+1] {
						nack, ok := intent[covered]
						switch {
						case !ok:
							mu.Unlock()
							return fmt.Errorf("%s %s covers %s, not settled", f.Command, id, covered)
						case nack != (f.Command == "NACK"):
							mu.Unlock()
							return fmt.Errorf("%s %s covers %s, nacked %v", f.Command, id, covered, nack)
						case nack && k != 0:
							mu.Unlock()
							return fmt.Errorf("NACK %s covers more than itself", id)
						}
					}
					mu.Unlock()
					pending = pending[k+1:]
				}
				return nil
			}
			err = check()
			wg.Wait() // the workers end either way: the peer reads whatever they write
			if err != nil {
				t.Fatal(err)
			}
			marker(t, c, p) // nothing more
		})
	}
}
