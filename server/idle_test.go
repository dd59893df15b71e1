package server

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// writers counts the goroutines running a session's writer, in the whole
// process.
func writers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "server.(*Session).writeLoop(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// expectIdle checks that s, with every goroutine of the bubble blocked,
// holds what an idle session holds: no writer goroutine, no outbound
// queue, no wait channel.
func expectIdle(t *testing.T, s *Session) {
	t.Helper()
	synctest.Wait()
	if n := writers(); n != 0 {
		t.Fatalf("%d writer goroutines in an idle session", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writing || s.out != nil || s.change != nil || s.hbDue {
		t.Fatalf("idle session: writing %v, out %d/%d, change %v, hbDue %v", s.writing, len(s.out), cap(s.out), s.change != nil, s.hbDue)
	}
}

// message is the MESSAGE frame Deliver writes for body on subscription 0
// of /q in session s1, the seq-th message without an ID.
func message(seq int, body string) string {
	return "MESSAGE\ndestination:/q\nmessage-id:s1-" + strconv.Itoa(seq) + "\nsubscription:0\ncontent-length:" + strconv.Itoa(len(body)) + "\n\n" + body + "\x00"
}

// TestIdleSessionHoldsNoWriter: the writer goroutine runs only while there
// is work. After CONNECTED and after every burst the session is back to
// its idle state, and frames still go out in order, each Written called
// once: one at a time (a writer run per message), from Written itself (the
// run that calls it writes what it queues), and a backlog many times the
// outbound queue while the client does not read.
func TestIdleSessionHoldsNoWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec, WithOutboundQueue(8)))
		c.connect("1.2", "s1")
		s := rec.sessions[0]
		expectIdle(t, s)
		c.send("SUBSCRIBE\nid:0\ndestination:/q\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		expectIdle(t, s)

		seq := 0
		deliver := func(body string, written func(error)) error {
			return s.Deliver(Delivery{Subscription: "0", Message: &Message{Body: []byte(body)}, Written: written})
		}
		// One at a time: a writer starts and ends for each.
		for i := range 20 {
			var calls atomic.Int32
			body := "one " + strconv.Itoa(i)
			if err := deliver(body, func(err error) {
				if err != nil {
					t.Errorf("Written(%v)", err)
				}
				calls.Add(1)
			}); err != nil {
				t.Fatal(err)
			}
			seq++
			c.expect(message(seq, body))
			expectIdle(t, s)
			if n := calls.Load(); n != 1 {
				t.Fatalf("message %d: Written called %d times", i, n)
			}
		}

		// A chain: each Written queues the next message.
		const chain = 50
		var chained [chain]atomic.Int32
		var next func(i int) func(error)
		next = func(i int) func(error) {
			return func(err error) {
				if err != nil {
					t.Errorf("chain %d: Written(%v)", i, err)
				}
				chained[i].Add(1)
				if i+1 < chain {
					if err := deliver("chain "+strconv.Itoa(i+1), next(i+1)); err != nil {
						t.Errorf("chain %d: %v", i+1, err)
					}
				}
			}
		}
		if err := deliver("chain 0", next(0)); err != nil {
			t.Fatal(err)
		}
		for i := range chain {
			seq++
			c.expect(message(seq, "chain "+strconv.Itoa(i)))
		}
		expectIdle(t, s)
		for i := range chain {
			if n := chained[i].Load(); n != 1 {
				t.Fatalf("chain %d: Written called %d times", i, n)
			}
		}

		// A backlog of 2,000 messages, 250 times the outbound queue,
		// while the client reads nothing for a while: the producer
		// retries on ErrSlowConsumer, nothing is lost or reordered.
		const backlog = 2000
		var written [backlog]atomic.Int32
		produced := make(chan error, 1)
		go func() {
			for i := range backlog {
				for {
					err := deliver("b"+strconv.Itoa(i), func(err error) {
						if err != nil {
							t.Errorf("backlog %d: Written(%v)", i, err)
						}
						written[i].Add(1)
					})
					if errors.Is(err, ErrSlowConsumer) {
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						produced <- err
						return
					}
					break
				}
			}
			produced <- nil
		}()
		time.Sleep(time.Second) // the client does not read: the queue fills
		synctest.Wait()
		s.mu.Lock()
		queued := s.outMsgs
		s.mu.Unlock()
		if queued != 8 {
			t.Fatalf("%d messages queued while the client reads nothing, want the bound 8", queued)
		}
		for i := range backlog {
			seq++
			c.expect(message(seq, "b"+strconv.Itoa(i)))
		}
		if err := <-produced; err != nil {
			t.Fatal(err)
		}
		expectIdle(t, s)
		for i := range backlog {
			if n := written[i].Load(); n != 1 {
				t.Fatalf("backlog %d: Written called %d times", i, n)
			}
		}

		c.send("DISCONNECT\nreceipt:bye\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
		c.expectClosed()
		if err := c.close(); err != nil {
			t.Fatalf("ServeConn = %v", err)
		}
		s.mu.Lock()
		finished := s.wfinished
		s.mu.Unlock()
		if !finished || writers() != 0 {
			t.Fatalf("after the session: finished %v, %d writers", finished, writers())
		}
	})
}

// TestIdleHeartBeatsWithoutWriter: heart-beats are paced by a timer that
// starts a writer for each one; between them the session has no writer
// goroutine, and a frame written postpones the next heart-beat by a full
// period.
func TestIdleHeartBeatsWithoutWriter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := mustNew(rec, WithName("test"), WithHeartBeat(time.Second, 0))
		c := dial(t, srv)
		// The client wants a heart-beat every second: paced at half.
		c.send("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,1000\n\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:1000,0\nsession:s1\nserver:test\n\n\x00")
		s := rec.sessions[0]
		const period = 500 * time.Millisecond
		last := time.Now()
		for i := range 4 {
			expectIdle(t, s)
			c.expect("\n")
			if d := time.Since(last); d != period {
				t.Fatalf("heart-beat %d after %v, want %v", i, d, period)
			}
			last = time.Now()
		}
		c.send("SUBSCRIBE\nid:0\ndestination:/q\n\n\x00")
		time.Sleep(period / 2)
		if err := s.Deliver(Delivery{Subscription: "0", Message: &Message{Body: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		c.expect(message(1, "x"))
		sent := time.Now()
		expectIdle(t, s)
		c.expect("\n")
		if d := time.Since(sent); d != period {
			t.Fatalf("heart-beat %v after a MESSAGE, want %v", d, period)
		}
		if err := c.close(); err == nil || !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("ServeConn = %v, want ErrConnectionLost", err)
		}
		s.mu.Lock()
		finished := s.wfinished
		s.mu.Unlock()
		if !finished {
			t.Fatal("writing not finished after the session")
		}
	})
}
