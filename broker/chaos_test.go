package broker_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// chaosConn is a raw client whose frames arrive on a channel, so that a
// consumer can wait for a frame or for the end of the test.
type chaosConn struct {
	t    *testing.T
	c    net.Conn
	w    *frame.Writer
	in   chan *frame.Frame // closed when the connection ends
	quit chan struct{}
	done chan struct{}
}

func dialChaos(t *testing.T, b *broker.Broker, v string, kv ...string) *chaosConn {
	cc := &chaosConn{t: t, c: b.Pipe(), in: make(chan *frame.Frame), quit: make(chan struct{}), done: make(chan struct{})}
	cc.w = frame.NewWriter(cc.c)
	r := frame.NewReader(cc.c)
	cc.send(frame.New(frame.CmdConnect, append([]string{"accept-version", v, "host", "/"}, kv...)...))
	if f, err := r.ReadFrame(); err != nil || f.Command != frame.CmdConnected {
		t.Fatalf("CONNECT: %v %v", f, err)
	}
	r.SetVersion(frame.Version(v))
	cc.w.SetVersion(frame.Version(v))
	go func() {
		defer close(cc.done)
		defer close(cc.in)
		for {
			f, err := r.ReadFrame()
			if err != nil {
				return
			}
			if f.IsHeartBeat() {
				continue
			}
			select {
			case cc.in <- f.Clone():
			case <-cc.quit:
				return
			}
		}
	}()
	return cc
}

func (cc *chaosConn) send(f *frame.Frame) {
	cc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := cc.w.WriteFrame(f); err != nil {
		cc.t.Errorf("write %v: %v", f, err)
	}
	if err := cc.w.Flush(); err != nil {
		cc.t.Errorf("flush %v: %v", f, err)
	}
}

func (cc *chaosConn) do(cmd string, kv ...string) { cc.send(frame.New(cmd, kv...)) }

// until reads frames, passing MESSAGEs to onMsg, until one with command
// cmd (and receipt-id id, for RECEIPT) arrives.
func (cc *chaosConn) until(cmd, id string, onMsg func(*frame.Frame)) {
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f, ok := <-cc.in:
			if !ok {
				cc.t.Errorf("connection ended waiting for %s %s", cmd, id)
				return
			}
			switch {
			case f.Command == cmd && (cmd != frame.CmdReceipt || f.Header.Get("receipt-id") == id):
				return
			case f.Command == frame.CmdMessage:
				onMsg(f)
			default:
				cc.t.Errorf("got %v waiting for %s %s", f, cmd, id)
				return
			}
		case <-timeout:
			cc.t.Errorf("no %s %s", cmd, id)
			return
		}
	}
}

func (cc *chaosConn) close() {
	cc.c.Close()
	close(cc.quit)
	<-cc.done
}

// Competing consumers that ack, nack, ack in transactions they commit or
// abort, unsubscribe, disconnect, drop their connection or get themselves
// an ERROR, at random, in every version and ack mode, against producers
// that send with receipts, some in transactions (some aborted): every
// message sent is acknowledged exactly once, no aborted message is ever
// delivered, and the queue ends empty.
func TestChaosQueueExactlyOnce(t *testing.T) {
	// No dead-lettering: every message is to be acknowledged on dest.
	b := mustNew(t, broker.WithMaxRedeliveries(0), broker.WithServerOptions(server.WithHeartBeat(0, 0), server.WithOutboundQueue(4)))
	defer b.Close()
	const dest = "/queue/chaos"
	const producers, each, consumers = 4, 200, 6
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	var mu sync.Mutex
	acked := make(map[string]int) // body -> times acknowledged
	aborted := make(map[string]bool)
	var expected atomic.Int64
	var producing sync.WaitGroup
	var nacked atomic.Int64
	ack := func(body string) {
		mu.Lock()
		acked[body]++
		if acked[body] > 1 {
			t.Errorf("%s acknowledged %d times", body, acked[body])
		}
		if aborted[body] {
			t.Errorf("%s delivered, but its transaction was aborted", body)
		}
		mu.Unlock()
	}
	allDone := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= int(expected.Load())
	}

	for p := range producers {
		producing.Add(1)
		expected.Add(each) // less the aborted ones, below
		go func() {
			defer producing.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(p)))
			cc := dialChaos(t, b, "1.2")
			defer cc.close()
			n := 0
			for i := 0; i < each; {
				if rng.IntN(3) > 0 {
					body := fmt.Sprintf("p%d-%d", p, i)
					f := frame.New(frame.CmdSend, "destination", dest, "receipt", body)
					f.Body = []byte(body)
					cc.send(f)
					cc.until(frame.CmdReceipt, body, nil)
					i++
					continue
				}
				tx := fmt.Sprintf("t%d", n)
				n++
				cc.do("BEGIN", "transaction", tx)
				var bodies []string
				for k := 0; k < 1+rng.IntN(4) && i < each; k++ {
					body := fmt.Sprintf("p%d-%d", p, i)
					f := frame.New(frame.CmdSend, "destination", dest, "transaction", tx)
					f.Body = []byte(body)
					cc.send(f)
					bodies = append(bodies, body)
					i++
				}
				if rng.IntN(4) == 0 {
					mu.Lock()
					for _, body := range bodies {
						aborted[body] = true
					}
					mu.Unlock()
					expected.Add(-int64(len(bodies)))
					cc.do("ABORT", "transaction", tx, "receipt", tx)
				} else {
					cc.do("COMMIT", "transaction", tx, "receipt", tx)
				}
				cc.until(frame.CmdReceipt, tx, nil)
			}
			cc.do("DISCONNECT", "receipt", "bye")
			cc.until(frame.CmdReceipt, "bye", nil)
		}()
	}

	var consuming sync.WaitGroup
	for ci := range consumers {
		consuming.Add(1)
		go func() {
			defer consuming.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(100+ci)))
			for session := 0; ; session++ {
				v := []string{"1.0", "1.1", "1.2"}[rng.IntN(3)]
				mode := []string{"auto", "client", "client-individual"}[rng.IntN(3)]
				cc := dialChaos(t, b, v)
				cc.do("SUBSCRIBE", "id", "s", "destination", dest, "ack", mode, "prefetch-count", fmt.Sprint(1+rng.IntN(5)))
				// pending: received, not yet acknowledged (client modes).
				type msg struct{ body, id string }
				var pending []msg
				ackHeaders := func(m msg) []string {
					switch v {
					case "1.2":
						return []string{"id", m.id}
					case "1.1":
						return []string{"subscription", "s", "message-id", m.id}
					}
					return []string{"message-id", m.id}
				}
				// resolve removes what an ACK or NACK of m covers and
				// returns it.
				resolve := func(m msg) []msg {
					for i, p := range pending {
						if p.id == m.id {
							from := i
							if mode == "client" {
								from = 0
							}
							covered := append([]msg(nil), pending[from:i+1]...)
							pending = append(pending[:from], pending[i+1:]...)
							return covered
						}
					}
					t.Errorf("ack of %v not pending", m)
					return nil
				}
				onMsg := func(f *frame.Frame) {
					if mode == "auto" {
						ack(string(f.Body))
						return
					}
					id := f.Header.Get("message-id")
					if v == "1.2" {
						id = f.Header.Get("ack")
					}
					pending = append(pending, msg{string(f.Body), id})
				}
				ended := false
				for !ended {
					var f *frame.Frame
					select {
					case f = <-cc.in:
						if f == nil {
							t.Errorf("consumer %d session %d: connection ended", ci, session)
							return
						}
					case <-time.After(5 * time.Millisecond):
						if allDone() {
							cc.do("DISCONNECT", "receipt", "bye")
							cc.until(frame.CmdReceipt, "bye", onMsg)
							cc.close()
							return
						}
						continue
					}
					if f.Command != frame.CmdMessage {
						t.Errorf("consumer got %v", f)
						cc.close()
						return
					}
					onMsg(f)
					if mode == "auto" {
						if rng.IntN(20) == 0 {
							switch rng.IntN(3) {
							case 0:
								cc.do("UNSUBSCRIBE", "id", "s", "receipt", "u")
								cc.until(frame.CmdReceipt, "u", onMsg)
							case 1:
								cc.do("SEND", "receipt", "bad") // no destination: ERROR
								cc.until(frame.CmdError, "", onMsg)
								cc.close()
								ended = true
								continue
							}
							cc.do("DISCONNECT", "receipt", "bye")
							cc.until(frame.CmdReceipt, "bye", onMsg)
							cc.close()
							ended = true
						}
						continue
					}
					m := pending[len(pending)-1]
					switch r := rng.IntN(20); {
					case r < 12:
						cc.do("ACK", ackHeaders(m)...)
						for _, c := range resolve(m) {
							ack(c.body)
						}
					case r < 14 && v != "1.0":
						cc.do("NACK", ackHeaders(m)...)
						nacked.Add(int64(len(resolve(m))))
					case r < 17:
						tx := fmt.Sprint("t", rng.Int())
						cc.do("BEGIN", "transaction", tx)
						cc.do("ACK", append(ackHeaders(m), "transaction", tx)...)
						if rng.IntN(2) == 0 {
							// Still unacknowledged: ack it for good.
							cc.do("ABORT", "transaction", tx)
							cc.do("ACK", ackHeaders(m)...)
						} else {
							cc.do("COMMIT", "transaction", tx)
						}
						for _, c := range resolve(m) {
							ack(c.body)
						}
					default:
						// End the session with messages pending: they must
						// come back. Make sure the broker has processed
						// every ACK sent so far first.
						switch rng.IntN(4) {
						case 0:
							cc.do("UNSUBSCRIBE", "id", "s", "receipt", "u")
							cc.until(frame.CmdReceipt, "u", onMsg)
							cc.do("DISCONNECT", "receipt", "bye")
							cc.until(frame.CmdReceipt, "bye", onMsg)
						case 1:
							cc.do("DISCONNECT", "receipt", "bye")
							cc.until(frame.CmdReceipt, "bye", onMsg)
						case 2:
							cc.do("BEGIN", "transaction", "sync", "receipt", "sync")
							cc.until(frame.CmdReceipt, "sync", onMsg)
						case 3:
							cc.do("ACK", append(ackHeaders(msg{id: "bogus"}), "receipt", "x")...)
							cc.until(frame.CmdError, "", onMsg)
						}
						cc.close()
						ended = true
					}
				}
			}
		}()
	}
	producing.Wait()
	done := make(chan struct{})
	go func() { consuming.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		mu.Lock()
		t.Fatalf("acknowledged %d of %d; stats %+v", len(acked), expected.Load(), b.Stats())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != int(expected.Load()) {
		t.Fatalf("acknowledged %d of %d", len(acked), expected.Load())
	}
	// Sessions that ended by ERROR or a dropped connection may still be
	// tearing down.
	st := b.Stats()
	for deadline := time.Now().Add(5 * time.Second); st.Sessions != 0 && time.Now().Before(deadline); st = b.Stats() {
		time.Sleep(time.Millisecond)
	}
	if len(st.Queues) != 0 || st.Sessions != 0 || st.Redelivered == 0 {
		t.Fatalf("stats %+v (nacked %d)", st, nacked.Load())
	}
	t.Logf("expected %d, stats %+v", expected.Load(), st)
}

// Concurrent producers on a topic, subscribers in every version and ack
// mode (acking as they go): each subscriber receives every message exactly
// once, each producer's messages in the order they were sent.
func TestTopicConcurrentFanOut(t *testing.T) {
	b := mustNew(t, broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	defer b.Close()
	const dest = "/topic/fan"
	const producers, each = 4, 200
	type sub struct {
		cc   *chaosConn
		v    string
		mode string
	}
	var subs []sub
	for i, v := range []string{"1.0", "1.1", "1.2", "1.2"} {
		mode := []string{"auto", "client", "client-individual", "auto"}[i]
		cc := dialChaos(t, b, v)
		cc.do("SUBSCRIBE", "id", "s", "destination", dest, "ack", mode, "receipt", "sub")
		cc.until(frame.CmdReceipt, "sub", nil)
		subs = append(subs, sub{cc, v, mode})
	}
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := make([]int, producers)
			for n := 0; n < producers*each; n++ {
				var f *frame.Frame
				select {
				case f = <-s.cc.in:
				case <-time.After(10 * time.Second):
					t.Errorf("%s %s: %d messages", s.v, s.mode, n)
					return
				}
				if f == nil || f.Command != frame.CmdMessage {
					t.Errorf("%s %s: got %v", s.v, s.mode, f)
					return
				}
				var p, i int
				fmt.Sscanf(string(f.Body), "p%d-%d", &p, &i)
				if i != next[p] {
					t.Errorf("%s %s: got %s, want p%d-%d", s.v, s.mode, f.Body, p, next[p])
					return
				}
				next[p]++
				switch {
				case s.mode == "auto":
				case s.v == "1.2":
					s.cc.do("ACK", "id", f.Header.Get("ack"))
				default:
					s.cc.do("ACK", "subscription", "s", "message-id", f.Header.Get("message-id"))
				}
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			cc := dialChaos(t, b, "1.2")
			defer cc.close()
			for i := range each {
				f := frame.New(frame.CmdSend, "destination", dest)
				f.Body = []byte(fmt.Sprintf("p%d-%d", p, i))
				cc.send(f)
			}
			cc.do("DISCONNECT", "receipt", "bye")
			cc.until(frame.CmdReceipt, "bye", nil)
		}()
	}
	pwg.Wait()
	wg.Wait()
	for _, s := range subs {
		s.cc.close()
	}
	if st := b.Stats(); st.SlowConsumers != 0 || st.MessagesIn != producers*each {
		t.Fatalf("stats %+v", st)
	}
}
