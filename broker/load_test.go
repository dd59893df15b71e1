package broker_test

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/reconnect"
	"github.com/stompout/stomp/server"
)

// Many producers and competing consumers over TCP: every message is
// received exactly once (nobody fails), and the queue ends empty.
func TestManyProducersAndConsumers(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const producers, consumers, each = 6, 4, 300
	total := producers * each

	var mu sync.Mutex
	seen := make(map[string]int)
	got := make(chan struct{}, total)
	var wg sync.WaitGroup
	var clients []*raw
	for i := range consumers {
		c := open(t, dialTCP(t, b.Addr()), []string{"1.1", "1.2"}[i%2])
		clients = append(clients, c)
		mode := []string{"auto", "client", "client-individual", "client-individual"}[i]
		c.receipt("SUBSCRIBE", "id", "s", "destination", "/queue/load", "ack", mode, "prefetch-count", "10")
		c.c.SetDeadline(time.Time{})
		wg.Add(1)
		// The loop ends when the test closes the connection.
		go func() {
			defer wg.Done()
			for {
				var f *frame.Frame
				if len(c.early) > 0 {
					f, c.early = c.early[0], c.early[1:]
				} else {
					g, err := c.r.ReadFrame()
					if err != nil {
						return
					}
					f = g.Clone()
				}
				if f.IsHeartBeat() {
					continue
				}
				if f.Command != "MESSAGE" {
					t.Errorf("consumer got %v", f)
					return
				}
				mu.Lock()
				seen[string(f.Body)]++
				mu.Unlock()
				if mode != "auto" {
					ack := frame.New("ACK", "id", f.Header.Get("ack"))
					if c.w.Version() != frame.V12 {
						ack = frame.New("ACK", "subscription", "s", "message-id", f.Header.Get("message-id"))
					}
					if c.w.WriteFrame(ack) != nil || c.w.Flush() != nil {
						return
					}
				}
				got <- struct{}{}
			}
		}()
	}
	var pwg sync.WaitGroup
	for p := range producers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			c := open(t, dialTCP(t, b.Addr()), "1.2")
			for i := range each {
				c.sendMsg("/queue/load", fmt.Sprintf("p%d-%d", p, i))
			}
			c.close()
		}()
	}
	pwg.Wait()
	timeout := time.After(30 * time.Second)
	for range total {
		select {
		case <-got:
		case <-timeout:
			t.Fatalf("received %d of %d; stats %+v", len(seen), total, b.Stats())
		}
	}
	for _, c := range clients {
		c.c.Close()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != total {
		t.Fatalf("%d distinct messages of %d", len(seen), total)
	}
	for body, n := range seen {
		if n != 1 {
			t.Fatalf("%s received %d times", body, n)
		}
	}
	st := b.Stats()
	if st.MessagesIn != uint64(total) {
		t.Fatalf("stats %+v", st)
	}
}

// A session that subscribes and never reads stalls nobody for longer than
// WithSlowConsumerTimeout: the producer and a fast subscriber go on, the
// slow topic subscriber is cut off with ERROR "slow consumer", and the
// slow queue subscriber's messages stay in the queue (bounded by its
// prefetch), so memory stays bounded.
func TestSlowConsumerDoesNotStallOthers(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", broker.WithSlowConsumerTimeout(200*time.Millisecond),
		broker.WithServerOptions(server.WithHeartBeat(0, 0), server.WithOutboundQueue(256)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	slow := open(t, dialTCP(t, b.Addr()), "1.2")
	slow.receipt("SUBSCRIBE", "id", "q", "destination", "/queue/work", "ack", "client-individual", "prefetch-count", "5")
	slow.receipt("SUBSCRIBE", "id", "t", "destination", "/topic/firehose")
	// From here on the slow client never reads.

	fast := open(t, dialTCP(t, b.Addr()), "1.2")
	fast.receipt("SUBSCRIBE", "id", "t", "destination", "/topic/firehose")

	const n = 5000
	body := string(make([]byte, 1024))
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	done := make(chan int)
	var count atomic.Int64
	go func() {
		fast.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for count.Load() < n {
			f, err := fast.r.ReadFrame()
			if err != nil {
				break
			}
			if f.Command == "MESSAGE" {
				count.Add(1)
			}
		}
		done <- int(count.Load())
	}()
	p := open(t, dialTCP(t, b.Addr()), "1.2")
	for i := range n {
		p.sendMsg("/topic/firehose", body)
		if i%10 == 0 {
			p.sendMsg("/queue/work", body)
		}
		// The producer keeps within what a reading subscriber's outbound
		// queue absorbs; the slow one falls behind all the same.
		for int64(i)-count.Load() > 128 {
			time.Sleep(time.Millisecond)
		}
	}
	p.receipt("SEND", "destination", "/topic/firehose") // the producer was never held up
	if got := <-done; got != n+1 && got != n {
		t.Fatalf("fast subscriber got %d of %d", got, n)
	}
	// The slow one is cut off once it has taken nothing for the timeout,
	// whether or not its backlog held the producer back meanwhile.
	st := b.Stats()
	for deadline := time.Now().Add(5 * time.Second); st.SlowConsumers == 0 && time.Now().Before(deadline); st = b.Stats() {
		time.Sleep(10 * time.Millisecond)
	}
	if st.SlowConsumers != 1 || st.Topics[0].Subscribers != 1 || st.Topics[0].Backlog != 0 {
		t.Fatalf("stats %+v", st)
	}
	q, _ := b.Queue("/queue/work")
	if q.Unacked > 5 || q.Depth != n/10-q.Unacked {
		t.Fatalf("queue %+v", q)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 500 queued 1 KiB messages and bounded outbound queues; the 5000
	// topic messages did not pile up.
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 8<<20 {
		t.Fatalf("heap grew by %d bytes", grew)
	}
	slow.c.Close()
	fast.c.Close()
	p.close()
}

// Close in the middle of traffic: every session ends, nothing deadlocks,
// no goroutine is left (TestMain checks).
func TestCloseUnderLoad(t *testing.T) {
	for _, graceful := range []bool{false, true} {
		t.Run(fmt.Sprint("graceful=", graceful), func(t *testing.T) {
			ctx := testCtx(t)
			b, err := broker.Start("127.0.0.1:0", broker.WithServerOptions(server.WithHeartBeat(0, 0), server.WithLinger(200*time.Millisecond)))
			if err != nil {
				t.Fatal(err)
			}
			var conns []*stomp.Conn
			var wg sync.WaitGroup
			var producers []func()
			for i := range 8 {
				c, err := stomp.Dial(ctx, b.Addr(), stomp.WithReconnect(reconnect.Never()))
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				if i%2 == 0 {
					producers = append(producers, func() {
						defer wg.Done()
						for c.Send(ctx, []string{"/queue/busy", "/topic/busy"}[i%4/2], []byte("x")) == nil {
						}
					})
					continue
				}
				mode := []stomp.AckMode{stomp.AckAuto, stomp.AckClientIndividual}[i%4/2]
				sub, err := c.Subscribe(ctx, "/queue/busy", stomp.WithAck(mode), stomp.WithPrefetch(8))
				if err != nil {
					t.Fatal(err)
				}
				tsub, err := c.Subscribe(ctx, "/topic/busy", stomp.WithBuffer(4096))
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for m := range sub.C() {
						if mode != stomp.AckAuto {
							m.Ack(ctx)
						}
					}
					for range tsub.C() {
					}
				}()
			}
			for _, p := range producers {
				wg.Add(1)
				go p()
			}
			time.Sleep(100 * time.Millisecond)
			if graceful {
				if err := b.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
			} else {
				b.Close()
			}
			for _, c := range conns {
				select {
				case <-c.Done():
				case <-ctx.Done():
					t.Fatal("a client connection did not end")
				}
			}
			wg.Wait()
			if st := b.Stats(); st.Sessions != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}
