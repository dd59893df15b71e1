package broker_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// sampler polls a broker's Stats until stopped and keeps the peaks.
type sampler struct {
	b                  *broker.Broker
	stop               chan struct{}
	done               chan struct{}
	maxBytes, maxHeap  int64
	maxDeferred        int
	maxBacklog         int
	maxBacklogBytesSum int64
}

func sample(b *broker.Broker) *sampler {
	s := &sampler{b: b, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		var ms runtime.MemStats
		for n := 0; ; n++ {
			st := b.Stats()
			s.maxBytes = max(s.maxBytes, st.Bytes)
			s.maxDeferred = max(s.maxDeferred, st.DeferredSends)
			for _, t := range st.Topics {
				s.maxBacklog = max(s.maxBacklog, t.Backlog)
				s.maxBacklogBytesSum = max(s.maxBacklogBytesSum, t.BacklogBytes)
			}
			if n%20 == 0 {
				runtime.ReadMemStats(&ms)
				s.maxHeap = max(s.maxHeap, int64(ms.HeapAlloc))
			}
			select {
			case <-s.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return s
}

func (s *sampler) end() { close(s.stop); <-s.done }

func heapNow() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// tcpSub is a subscriber over loopback TCP whose reader waits for its
// application: the reader goroutine hands each frame to a channel of
// buffer frames and stops reading while it is full.
type tcpSub struct {
	*raw
	frames chan *frame.Frame
	done   chan error
}

func subscribeTCP(t *testing.T, addr string, buffer int, kv ...string) *tcpSub {
	t.Helper()
	s := &tcpSub{raw: open(t, dialTCP(t, addr), "1.2"), frames: make(chan *frame.Frame, buffer), done: make(chan error, 1)}
	s.receipt("SUBSCRIBE", kv...)
	go func() {
		defer close(s.frames)
		for {
			s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
			f, err := s.r.ReadFrame()
			if err != nil {
				s.done <- err
				return
			}
			if !f.IsHeartBeat() {
				s.frames <- f.Clone()
			}
		}
	}()
	return s
}

// pace waits until done events are due at rate per second since start.
func pace(start time.Time, done int, rate float64) {
	due := start.Add(time.Duration(float64(done) / rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}

// 100,000 messages to a topic whose one subscriber (a client over
// loopback TCP whose reader waits for its application) reads at half the
// producer's speed, measured first on a topic nobody reads: every message
// arrives, in order; nobody is disconnected; the broker's memory stays
// within the backlog's high-water mark plus one send window, because the
// producer is held back instead.
func TestTopicBurstToHalfSpeedSubscriber(t *testing.T) {
	const n = 100000
	b, err := broker.Start("127.0.0.1:0", broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sub := subscribeTCP(t, b.Addr(), 64, "id", "0", "destination", "/topic/burst")
	defer sub.c.Close()
	pc, err := stomp.Dial(ctx, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	body := make([]byte, 512) // 100,000 x 512 bytes: far more than the sockets, the outbound queue and the backlog hold
	// The producer's speed, alone.
	const warm = 10000
	start := time.Now()
	for i := range warm {
		var opts []stomp.SendOption
		var r *stomp.Receipt
		if i == warm-1 {
			opts = append(opts, stomp.WithReceipt(&r))
		}
		if err := pc.Send(ctx, "/topic/nobody", body, opts...); err != nil {
			t.Fatal(err)
		}
		if r != nil {
			if err := r.Wait(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	alone := warm / time.Since(start).Seconds()
	rate := alone / 2 // the subscriber's

	heap0 := heapNow()
	smp := sample(b)
	start = time.Now()
	got := make(chan error, 1)
	go func() {
		// The subscriber falls behind at once: it reads nothing until the
		// broker holds the producer back (whatever the machine's load makes
		// of the two speeds), then reads at half the producer's speed.
		for b.Stats().DeferredSends == 0 {
			select {
			case <-ctx.Done():
				got <- errors.New("the producer was never held back")
				return
			case <-time.After(time.Millisecond):
			}
		}
		start := time.Now()
		for i := range n {
			select {
			case f, ok := <-sub.frames:
				if !ok {
					got <- fmt.Errorf("subscription ended after %d: %v", i, <-sub.done)
					return
				}
				if f.Command != "MESSAGE" || len(f.Body) < 8 {
					got <- fmt.Errorf("message %d: got %v %q", i, f, f.Body)
					return
				}
				if k := binary.BigEndian.Uint64(f.Body); k != uint64(i) {
					got <- fmt.Errorf("message %d: got %d", i, k)
					return
				}
			case <-ctx.Done():
				got <- fmt.Errorf("message %d: %v", i, ctx.Err())
				return
			}
			if i%100 == 0 {
				pace(start, i, rate)
			}
		}
		got <- nil
	}()
	var r *stomp.Receipt
	for i := range n {
		binary.BigEndian.PutUint64(body, uint64(i))
		var opts []stomp.SendOption
		if i == n-1 {
			opts = append(opts, stomp.WithReceipt(&r))
		}
		if err := pc.Send(ctx, "/topic/burst", body, opts...); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	sent := time.Since(start)
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	smp.end()
	st := b.Stats()
	t.Logf("%d messages of %d bytes: the producer alone %.0f/s; subscriber paced to %.0f/s; producer held to %.0f/s (sent in %v), all read in %v (%.0f/s)",
		n, len(body), alone, rate, n/sent.Seconds(), sent.Round(time.Millisecond), took.Round(time.Millisecond), n/took.Seconds())
	t.Logf("broker memory: peak %d bytes held (limit %d + a send window), peak backlog %d messages, peak %d SENDs deferred; heap %d -> peak %d bytes",
		smp.maxBytes, broker.DefaultBacklogLimit, smp.maxBacklog, smp.maxDeferred, heap0, smp.maxHeap)
	if st.SlowConsumers != 0 || st.Sessions != 2 || st.Bytes != 0 || st.DeferredSends != 0 {
		t.Fatalf("stats %+v", st)
	}
	if smp.maxDeferred == 0 || smp.maxBacklog == 0 {
		t.Fatal("the burst never reached the broker's backlog: the test shows nothing")
	}
	size := int64(len(body) + 64) // body and headers, about
	if bound := broker.DefaultBacklogLimit + 2*server.DefaultSendWindowFrames*size; smp.maxBytes > bound {
		t.Fatalf("broker held %d bytes, more than %d", smp.maxBytes, bound)
	}
}

// A subscriber that stops reading for good is cut off once it has taken
// nothing for WithSlowConsumerTimeout: ERROR "slow consumer". The producer
// is held back only until then, the other subscriber gets everything, and
// the broker's memory returns to where it started.
func TestStuckSubscriberCutOff(t *testing.T) {
	const (
		n       = 20000
		timeout = 300 * time.Millisecond
	)
	b, err := broker.Start("127.0.0.1:0", broker.WithSlowConsumerTimeout(timeout), broker.WithBacklogLimit(64<<10),
		broker.WithServerOptions(server.WithHeartBeat(0, 0), server.WithOutboundBytes(64<<10)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	stuck := open(t, dialTCP(t, b.Addr()), "1.2")
	stuck.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/feed")
	stuck.receipt("SUBSCRIBE", "id", "q", "destination", "/queue/stuck", "ack", "client-individual")
	// From here on it reads nothing.

	good := subscribeTCP(t, b.Addr(), 64, "id", "0", "destination", "/topic/feed")
	defer good.c.Close()
	pc, err := stomp.Dial(ctx, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for range 3 { // queue messages the stuck session holds unacknowledged
		if err := pc.Send(ctx, "/queue/stuck", []byte("q")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	base := b.Stats().Bytes // the three queue messages
	heap0 := heapNow()

	smp := sample(b)
	var count atomic.Int64
	got := make(chan error, 1)
	go func() {
		for i := range n {
			select {
			case f, ok := <-good.frames:
				if !ok {
					got <- fmt.Errorf("good subscriber ended: %v", <-good.done)
					return
				}
				if f.Command != "MESSAGE" || len(f.Body) < 8 {
					got <- fmt.Errorf("message %d: got %v %q", i, f, f.Body)
					return
				}
				if k := binary.BigEndian.Uint64(f.Body); k != uint64(i) {
					got <- fmt.Errorf("message %d: got %d", i, k)
					return
				}
				count.Add(1)
			case <-ctx.Done():
				got <- ctx.Err()
				return
			}
		}
		got <- nil
	}()
	body := make([]byte, 512)
	start := time.Now()
	var r *stomp.Receipt
	for i := range n {
		binary.BigEndian.PutUint64(body, uint64(i))
		var opts []stomp.SendOption
		if i == n-1 {
			opts = append(opts, stomp.WithReceipt(&r))
		}
		if err := pc.Send(ctx, "/topic/feed", body, opts...); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := r.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	sent := time.Since(start)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	smp.end()

	// The stuck session's socket holds what was written to it, then the
	// ERROR.
	frames, slowErr := 0, ""
	for slowErr == "" {
		f := stuck.next()
		switch f.Command {
		case "MESSAGE":
			frames++
		case "ERROR":
			slowErr = f.Header.Get("message") + ": " + string(f.Body)
			if f.Header.Get("message") != "slow consumer" {
				t.Fatalf("got %v %q", f, f.Body)
			}
		}
	}
	stuck.c.Close()
	var st broker.Stats
	for deadline := time.Now().Add(10 * time.Second); ; {
		st = b.Stats()
		if st.Sessions == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	q, _ := b.Queue("/queue/stuck")
	heap1 := heapNow()
	t.Logf("%d messages of %d bytes in %v; the stuck subscriber got %d before it was cut off (%s)", n, len(body), sent.Round(time.Millisecond), frames, slowErr)
	t.Logf("broker memory: %d bytes at start, peak %d, %d at the end; peak %d SENDs deferred; heap %d -> peak %d -> %d bytes",
		base, smp.maxBytes, st.Bytes, smp.maxDeferred, heap0, smp.maxHeap, heap1)
	if st.SlowConsumers != 1 || st.Sessions != 2 || st.Bytes != base || st.DeferredSends != 0 || q.Depth != 3 || q.Consumers != 0 {
		t.Fatalf("stats %+v queue %+v", st, q)
	}
	if count.Load() != n || frames >= n {
		t.Fatalf("good got %d, stuck %d", count.Load(), frames)
	}
	if smp.maxDeferred == 0 {
		t.Fatal("the producer was never held back: the test shows nothing")
	}
	if grew := heap1 - heap0; grew > 4<<20 {
		t.Fatalf("heap grew by %d bytes", grew)
	}
}

// Two sessions in client-individual mode (prefetch 8), each application
// answering every seed it gets with a SEND to the other's topic, waiting
// for that SEND's RECEIPT, and only then acknowledging the seed; a third
// session floods both topics with seeds. Each one's backlog drains only as
// its application acks, which waits for a RECEIPT the broker may defer on
// the other's backlog: without the rule that a waiting session is never
// waited for, the two would wait for each other for ever. Everything
// completes and nobody is cut off.
func TestEchoClientsNoDeadlock(t *testing.T) {
	const n = 2000 // seeds per topic; each is answered once
	b, err := broker.Start("127.0.0.1:0", broker.WithBacklogLimit(4<<10),
		broker.WithServerOptions(server.WithHeartBeat(0, 0), server.WithSendWindow(4, 1<<20)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	body := make([]byte, 256)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	var counts [2]atomic.Int64
	echo := func(i int, mine, theirs string) {
		s := subscribeTCP(t, b.Addr(), 1024, "id", "0", "destination", mine, "ack", "client-individual", "prefetch-count", "8")
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.c.Close()
			fail := func(err error) {
				errs <- fmt.Errorf("%s after %d messages: %w", mine, counts[i].Load(), err)
			}
			receipts := 0
			for counts[i].Load() < 2*n {
				f, ok := <-s.frames
				if !ok {
					fail(<-s.done)
					return
				}
				if f.Command != "MESSAGE" {
					fail(fmt.Errorf("got %v %q", f, f.Body))
					return
				}
				counts[i].Add(1)
				if f.Body[0] == 0 { // a seed: answer it and wait for the RECEIPT
					receipts++
					id := fmt.Sprint("r", receipts)
					reply := frame.New(frame.CmdSend, "destination", theirs, "receipt", id)
					reply.Body = append([]byte{1}, f.Body[1:]...)
					if err := s.w.WriteFrame(reply); err != nil {
						fail(err)
						return
					}
					if err := s.w.Flush(); err != nil {
						fail(err)
						return
					}
					var held []*frame.Frame // messages that come before the RECEIPT
					for {
						g, ok := <-s.frames
						if !ok {
							fail(<-s.done)
							return
						}
						if g.Command == "RECEIPT" && g.Header.Get("receipt-id") == id {
							break
						}
						held = append(held, g)
					}
					// Back in front, in order (the buffer has room: the
					// prefetch bounds what the broker sends).
					rest := make([]*frame.Frame, 0, len(held)+len(s.frames))
					rest = append(rest, held...)
					for len(s.frames) > 0 {
						rest = append(rest, <-s.frames)
					}
					for _, g := range rest {
						s.frames <- g
					}
				}
				ack := frame.New(frame.CmdAck, "id", f.Header.Get("ack"))
				if err := s.w.WriteFrame(ack); err != nil {
					fail(err)
					return
				}
				if err := s.w.Flush(); err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	echo(0, "/topic/ping", "/topic/pong")
	echo(1, "/topic/pong", "/topic/ping")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pc, err := stomp.Dial(ctx, b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	start := time.Now()
	smp := sample(b)
	for range n {
		for _, d := range []string{"/topic/ping", "/topic/pong"} {
			if err := pc.Send(ctx, d, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
	smp.end()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := b.Stats()
	t.Logf("%d and %d of %d messages (seeds and answers) in %v; peak %d SENDs deferred, peak backlog %d messages",
		counts[0].Load(), counts[1].Load(), 2*n, time.Since(start).Round(time.Millisecond), smp.maxDeferred, smp.maxBacklog)
	if st.SlowConsumers != 0 || counts[0].Load() != 2*n || counts[1].Load() != 2*n {
		t.Fatalf("stats %+v, counts %d %d", st, counts[0].Load(), counts[1].Load())
	}
	if smp.maxDeferred == 0 {
		t.Fatal("no SEND was ever deferred: the test shows nothing")
	}
	if err := pc.Disconnect(ctx); err != nil && !errors.Is(err, stomp.ErrClosed) {
		t.Fatal(err)
	}
}
