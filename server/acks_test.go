package server

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stompout/stomp/frame"
)

// TestCommitCumulativeAckAppliesNothing is the case of issue 9: a
// transaction holding a SEND, ACK m2 and ACK m1 on a client (cumulative)
// subscription. ACK m2 covers m1, so the COMMIT fails, and nothing of it
// is applied, in every version.
func TestCommitCumulativeAckAppliesNothing(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				deliverOnSubscribe(rec, 2)
				c := dial(t, testServer(rec))
				c.connect(v, "s1")
				c.send("SUBSCRIBE\nid:0\ndestination:/q\nack:client\n\n\x00")
				c.expectPrefix("MESSAGE\n")
				c.expectPrefix("MESSAGE\n")
				ack := map[string][2]string{
					"1.0": {"message-id:m2", "message-id:m1"},
					"1.1": {"subscription:0\nmessage-id:m2", "subscription:0\nmessage-id:m1"},
					"1.2": {"id:2", "id:1"},
				}[v]
				id1 := map[string]string{"1.0": "m1", "1.1": "m1", "1.2": "1"}[v]
				w := c.sendAsync("BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\n\nin-tx\x00" +
					"ACK\n" + ack[0] + "\ntransaction:t\n\n\x00ACK\n" + ack[1] + "\ntransaction:t\n\n\x00COMMIT\ntransaction:t\nreceipt:c\n\n\x00")
				c.expect(errorFrame("c", "unknown ack id", "message "+id1+" is covered by an earlier acknowledgement of the transaction"))
				c.expectClosed()
				c.close()
				<-w
				for _, e := range rec.Events() {
					if strings.Contains(e, "in-tx") || strings.HasPrefix(e, "ack ") {
						t.Fatalf("part of the failed COMMIT applied: %q", rec.Events())
					}
				}
			})
		})
	}
}

// TestCommitAcksInOrder: a valid transaction mixing individual and
// cumulative acks on two subscriptions applies all of it, in order.
func TestCommitAcksInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		deliverOnSubscribe(rec, 3)
		c := dial(t, testServer(rec))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:a\ndestination:/q\nack:client\n\n\x00")
		for range 3 {
			c.expectPrefix("MESSAGE\n") // ack ids 1-3
		}
		c.send("SUBSCRIBE\nid:b\ndestination:/q\nack:client-individual\n\n\x00")
		for range 3 {
			c.expectPrefix("MESSAGE\n") // ack ids 4-6
		}
		c.send("BEGIN\ntransaction:t\n\n\x00ACK\nid:1\ntransaction:t\n\n\x00ACK\nid:6\ntransaction:t\n\n\x00" +
			"ACK\nid:3\ntransaction:t\n\n\x00NACK\nid:4\ntransaction:t\n\n\x00COMMIT\ntransaction:t\nreceipt:c\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:c\n\n\x00")
		ev := rec.Events()
		want := []string{"ack a [m1] tx=t", "ack b [m3] tx=t", "ack a [m2 m3] tx=t", "nack b [m1] tx=t"}
		if got := ev[len(ev)-4:]; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("events %q, want %q", got, want)
		}
		// What is left: ack id 5 only.
		c.send("ACK\nid:5\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		c.send("ACK\nid:2\n\n\x00")
		c.expect(errorFrame("", "unknown ack id", "no unacknowledged message 2"))
		c.close()
	})
}

// TestAckSameMessageIDTwoSubscriptions: before 1.2 a message-id delivered
// to two subscriptions of a session is resolved by the subscription header
// (1.1) or oldest first (1.0), and unsubscribing forgets its deliveries.
func TestAckSameMessageIDTwoSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		deliverOnSubscribe(rec, 1)
		c := dial(t, testServer(rec))
		c.connect("1.1", "s1")
		c.send("SUBSCRIBE\nid:a\ndestination:/q\nack:client\n\n\x00")
		c.expectPrefix("MESSAGE\n")
		c.send("SUBSCRIBE\nid:b\ndestination:/q\nack:client\n\n\x00")
		c.expectPrefix("MESSAGE\n")
		c.send("ACK\nsubscription:b\nmessage-id:m1\nreceipt:1\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:1\n\n\x00")
		if ev := rec.Events(); ev[len(ev)-1] != "ack b [m1] tx=" {
			t.Fatalf("events %q", ev)
		}
		c.send("UNSUBSCRIBE\nid:a\n\n\x00ACK\nmessage-id:m1\n\n\x00")
		c.expect(errorFrame("", "unknown ack id", "no unacknowledged message m1"))
		c.close()
	})
}

// TestAckIndexChains: deliveries under one key (a message-id delivered
// to several subscriptions, before 1.2) are found oldest first, per
// subscription, and each can be removed: from the middle, the head and the
// tail of its chain.
func TestAckIndexChains(t *testing.T) {
	ix := make(ackIndex)
	subs := []*Subscription{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d"}}
	ps := make([]*pendingAck, len(subs))
	for i, sub := range subs {
		ps[i] = &pendingAck{sub: sub, seq: uint64(i + 1), msgID: "m1"}
		ix.add(ps[i])
	}
	ix.add(&pendingAck{sub: subs[0], msgID: "m2"})
	order := func() (ids string) {
		for p := ix["m1"]; p != nil; p = p.next {
			ids += p.sub.ID
		}
		return ids
	}
	if got := order(); got != "abcd" || ix.find("m1", "", nil) != ps[0] || ix.find("m1", "c", nil) != ps[2] {
		t.Fatalf("chain %q", got)
	}
	if p := ix.find("m1", "", func(p *pendingAck) bool { return p.seq < 3 }); p != ps[2] {
		t.Fatalf("find skipping the first two: %+v", p)
	}
	for _, step := range []struct {
		remove int
		want   string
	}{{1, "acd"}, {0, "cd"}, {3, "c"}, {2, ""}} {
		ix.remove(ps[step.remove])
		if got := order(); got != step.want || ps[step.remove].next != nil {
			t.Fatalf("after removing %s: chain %q, want %q", subs[step.remove].ID, got, step.want)
		}
	}
	if _, ok := ix["m1"]; ok || len(ix) != 1 || ix.find("m2", "a", nil) == nil {
		t.Fatalf("index left %v", ix)
	}
}

// newAckSession is a session with one subscription in mode and n
// deliveries tracked, for the index's unit tests and benchmarks.
func newAckSession(mode AckMode, n int) (*Session, *Subscription) {
	s := &Session{version: frame.V12, subs: make(map[string]*Subscription)}
	sub := &Subscription{ID: "0", Ack: mode, session: s}
	s.subs["0"] = sub
	for range n {
		s.ackSeq++
		s.track(sub, &pendingAck{seq: s.ackSeq, ackID: strconv.FormatUint(s.ackSeq, 10), msgID: "m" + strconv.FormatUint(s.ackSeq, 10)})
	}
	return s, sub
}

func ackFrame(id int) *frame.Frame {
	return frame.New(frame.CmdAck, frame.HdrID, strconv.Itoa(id))
}

// TestAckIndexCompacts: individual acks in any order leave nothing behind,
// and the subscription's list does not keep its dead entries.
func TestAckIndexCompacts(t *testing.T) {
	const n = 10000
	s, sub := newAckSession(AckClientIndividual, n)
	for i := n; i >= 1; i -= 2 { // newest first, every other one
		if a, err := s.resolve(ackFrame(i), true); err != nil || len(a.MessageIDs) != 1 || a.MessageIDs[0] != "m"+strconv.Itoa(i) {
			t.Fatalf("ack %d: %v %v", i, a, err)
		}
	}
	if len(s.acks) != n/2 {
		t.Fatalf("%d indexed, want %d", len(s.acks), n/2)
	}
	for i := 1; i <= n; i += 2 {
		if _, err := s.resolve(ackFrame(i), true); err != nil {
			t.Fatalf("ack %d: %v", i, err)
		}
	}
	if len(s.acks) != 0 || len(sub.pending) != 0 || sub.head != 0 {
		t.Fatalf("left: %d indexed, %d listed, head %d", len(s.acks), len(sub.pending), sub.head)
	}
	if _, err := s.resolve(ackFrame(1), true); err == nil {
		t.Fatal("a second ACK of a message resolved")
	}

	s, sub = newAckSession(AckClient, n)
	for i := 100; i <= n; i += 100 {
		a, err := s.resolve(ackFrame(i), true)
		if err != nil || len(a.MessageIDs) != 100 || a.MessageIDs[0] != "m"+strconv.Itoa(i-99) {
			t.Fatalf("cumulative ack %d: %d ids, %v", i, len(a.MessageIDs), err)
		}
	}
	if len(s.acks) != 0 || len(sub.pending) != 0 {
		t.Fatalf("left: %d indexed, %d listed", len(s.acks), len(sub.pending))
	}
}

// BenchmarkAckLargePrefetch resolves the acks of 50,000 unacknowledged
// deliveries, newest first (the worst case of a scan): the cost per ack
// must not grow with the prefetch.
func BenchmarkAckLargePrefetch(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		b.Run("individual/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				s, _ := newAckSession(AckClientIndividual, n)
				frames := make([]*frame.Frame, n)
				for i := range frames {
					frames[i] = ackFrame(n - i)
				}
				b.StartTimer()
				for _, f := range frames {
					if _, err := s.resolve(f, true); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/ack")
		})
		b.Run("cumulative/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				s, _ := newAckSession(AckClient, n)
				b.StartTimer()
				for i := 1; i <= n; i++ {
					if _, err := s.resolve(ackFrame(i), true); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/ack")
		})
	}
}

// ackKeeper keeps every Ack the engine hands it, as a handler may.
type ackKeeper struct {
	recorder
	mu   sync.Mutex
	acks []*Ack
}

func (k *ackKeeper) Ack(ctx context.Context, s *Session, a *Ack) error {
	k.mu.Lock()
	k.acks = append(k.acks, a)
	k.mu.Unlock()
	return k.recorder.Ack(ctx, s, a)
}

// An ACK's header strings are views of the Reader's buffer (SetViews): the
// Ack a handler keeps, its ID and its Header, and an ACK a transaction
// holds until COMMIT, must be copies that later frames read into the same
// buffer do not change.
func TestKeptAckOutlivesItsFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := &ackKeeper{}
		deliverOnSubscribe(&k.recorder, 3)
		c := dial(t, testServer(k))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/q\nack:client-individual\n\n\x00")
		for range 3 {
			c.expectPrefix("MESSAGE\n") // ack ids 1-3
		}
		// Each write is read whole into the start of the Reader's buffer,
		// over the one before: same lengths, other bytes.
		c.send("ACK\nid:1\nx-note:first\nreceipt:r1\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r1\n\n\x00")
		c.send("BEGIN\ntransaction:t\n\n\x00ACK\nid:3\nx-note:third\ntransaction:t\nreceipt:r3\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r3\n\n\x00")
		c.send("ACK\nid:2\nx-note:secnd\nreceipt:r2\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r2\n\n\x00")
		c.send("SEND\ndestination:/q\nx-note:xxxxx\nxxxxxxxxxxxx:xx\n\n\x00COMMIT\ntransaction:t\nreceipt:c\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:c\n\n\x00")
		k.mu.Lock()
		defer k.mu.Unlock()
		type kept struct{ id, note, tx string }
		var got []kept
		for _, a := range k.acks {
			got = append(got, kept{a.ID, a.Header.Get("x-note"), a.Transaction})
		}
		want := []kept{{"1", "first", ""}, {"2", "secnd", ""}, {"3", "third", "t"}}
		if !slices.Equal(got, want) {
			t.Fatalf("kept acks %+v, want %+v", got, want)
		}
		c.close()
	})
}

// ackReleaser records what each Ack says, then gives it back (Release),
// twice, as a careless handler might.
type ackReleaser struct {
	recorder
	mu   sync.Mutex
	seen []string // "ID note tx [message-ids]", copied before Release
}

func (k *ackReleaser) Ack(ctx context.Context, s *Session, a *Ack) error {
	k.mu.Lock()
	k.seen = append(k.seen, a.ID+" "+a.Header.Get("x-note")+" "+a.Transaction+" "+strings.Join(a.MessageIDs, ","))
	k.mu.Unlock()
	a.Release()
	a.Release()
	return nil
}

// TestReleasedAckReused: Acks a handler gives back are reused for later
// ACKs, of every header size (the box's text and a longer one), in and
// out of a transaction, and each says what its own frame said; an Ack the
// handler made itself is not taken.
func TestReleasedAckReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, after = 40, 4
		k := &ackReleaser{}
		deliverOnSubscribe(&k.recorder, n+after)
		c := dial(t, testServer(k))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/q\nack:client-individual\n\n\x00")
		for range n + after {
			c.expectPrefix("MESSAGE\n")
		}
		var want []string
		var frames strings.Builder
		frames.WriteString("BEGIN\ntransaction:t\n\n\x00")
		for i := 1; i <= n; i++ {
			note := strings.Repeat(strconv.Itoa(i%10), i*i%150) // up to 149 bytes: past ackText
			tx := ""
			if i%4 == 0 {
				tx = "t"
			}
			fmt.Fprintf(&frames, "ACK\nid:%d\nx-note:%s\n", i, note)
			if tx != "" {
				frames.WriteString("transaction:t\n")
			}
			frames.WriteString("\n\x00")
			if tx == "" {
				want = append(want, fmt.Sprintf("%d %s  m%d", i, note, i))
			}
		}
		for i := 4; i <= n; i += 4 { // at COMMIT, in order
			want = append(want, fmt.Sprintf("%d %s t m%d", i, strings.Repeat(strconv.Itoa(i%10), i*i%150), i))
		}
		frames.WriteString("COMMIT\ntransaction:t\n\n\x00")
		for i := n + 1; i <= n+after; i++ { // in boxes the transaction's used
			fmt.Fprintf(&frames, "ACK\nid:%d\n\n\x00", i)
			want = append(want, fmt.Sprintf("%d   m%d", i, i))
		}
		frames.WriteString("DISCONNECT\nreceipt:c\n\n\x00")
		c.send(frames.String())
		c.expect("RECEIPT\nreceipt-id:c\n\n\x00")
		k.mu.Lock()
		got := slices.Clone(k.seen)
		k.mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("acks seen:\n%q\nwant:\n%q", got, want)
		}
		c.close()
	})
	own := &Ack{ID: "mine", MessageIDs: []string{"m1"}}
	own.Release()
	if own.ID != "mine" || len(own.MessageIDs) != 1 {
		t.Fatalf("Release changed an Ack the handler made: %+v", own)
	}
}

// TestDeliveryIDsFromSlabs: the ids of client-mode deliveries, cut from the
// session's slabs of text, stay as they were made while later ones are
// written, across slabs and with ids longer than a slab's reserve (a long
// session id).
func TestDeliveryIDsFromSlabs(t *testing.T) {
	for _, v := range []frame.Version{frame.V11, frame.V12} {
		t.Run(string(v), func(t *testing.T) {
			s := &Session{version: v, id: strings.Repeat("s", 100)}
			type ids struct{ msg, ack string }
			var got, want []ids
			for i := 1; i <= 2000; i++ {
				var m Message
				var w ids
				switch i % 3 {
				case 0:
					m.Seq = uint64(i) * 1e9
					w.msg = "m-" + strconv.FormatUint(m.Seq, 10)
				case 1:
					w.msg = s.id + "-" + strconv.Itoa(i)
				case 2:
					m.ID = "given-" + strconv.Itoa(i)
					w.msg = m.ID
				}
				s.ackSeq++
				if v == frame.V12 {
					w.ack = strconv.FormatUint(s.ackSeq, 10)
				}
				msg, ack := s.deliveryIDs(&m, uint64(i))
				got = append(got, ids{msg, ack})
				want = append(want, w)
			}
			if !slices.Equal(got, want) {
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("delivery %d: ids %+v, want %+v", i+1, got[i], want[i])
					}
				}
			}
		})
	}
}
