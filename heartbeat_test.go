package stomp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/heartbeat"
)

// TestHeartBeatSending: the writer sends an EOL once it has been idle for
// half the negotiated send interval, and not while frames go out.
func TestHeartBeatSending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Client can send every 1s, server wants one every 1s: send = 1s.
		c, p := connectPeer(t, V12, []Option{WithHeartBeat(time.Second, 0)}, "heart-beat", "0,1000")
		if send, recv := c.HeartBeat(); send != time.Second || recv != 0 {
			t.Fatalf("negotiated %v,%v", send, recv)
		}
		start := time.Now()
		beat := func(want time.Duration) {
			t.Helper()
			f, err := p.ReadAny()
			if err != nil {
				t.Fatal(err)
			}
			if !f.IsHeartBeat() {
				t.Fatalf("got %v, want a heart-beat", f)
			}
			if got := time.Since(start); got != want {
				t.Fatalf("heart-beat at %v, want %v", got, want)
			}
		}
		beat(500 * time.Millisecond)
		beat(time.Second)
		time.Sleep(200 * time.Millisecond)
		if err := c.Send(ctxT(t), "/q", nil); err != nil { // at 1.2s
			t.Fatal(err)
		}
		p.Expect("SEND")
		beat(1700 * time.Millisecond) // half an interval after the SEND
		beat(2200 * time.Millisecond)
	})
}

// TestHeartBeatTimeout: silence past interval x tolerance ends the
// connection with a HeartBeatError; any data, heart-beats included,
// keeps it alive.
func TestHeartBeatTimeout(t *testing.T) {
	for _, tc := range []struct {
		tolerance float64
		opts      []Option
	}{
		{DefaultHeartBeatTolerance, nil},
		{4, []Option{WithHeartBeatTolerance(4)}},
	} {
		t.Run(fmt.Sprint(tc.tolerance), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := append([]Option{WithHeartBeat(0, time.Second)}, tc.opts...)
				c, p := connectPeer(t, V12, opts, "heart-beat", "1000,0")
				for range 10 { // 10 s of heart-beats every second
					time.Sleep(time.Second)
					p.Write("\n")
				}
				last := time.Now()
				<-c.Done()
				silence := time.Since(last)
				if want := time.Duration(tc.tolerance * float64(time.Second)); silence != want {
					t.Fatalf("died after %v of silence, want %v", silence, want)
				}
				var he *HeartBeatError
				err := c.Err()
				if !errors.As(err, &he) || !errors.Is(err, ErrHeartBeatTimeout) || !errors.Is(err, heartbeat.ErrTimeout) {
					t.Fatalf("Err = %v", err)
				}
				if he.Interval != time.Second {
					t.Fatalf("HeartBeatError %+v", he)
				}
				p.ExpectClosed()
			})
		})
	}
}

// TestHeartBeatsWithAStuckSubscription: a subscription nobody reads does
// not hold up heart-beats in either direction.
func TestHeartBeatsWithAStuckSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p := connectPeer(t, V12, []Option{WithHeartBeat(time.Second, time.Second)}, "heart-beat", "1000,1000")
		stuck, err := c.Subscribe(ctxT(t), "/queue/a", WithBuffer(1))
		if err != nil {
			t.Fatal(err)
		}
		p.Expect("SUBSCRIBE")
		for i := range 10 {
			p.Send("MESSAGE", "x", "subscription", stuck.ID(), "destination", "/queue/a", "message-id", fmt.Sprint(i))
		}
		beats := 0
		for time.Sleep(0); beats < 8; {
			f, err := p.ReadAny()
			if err != nil {
				t.Fatal(err)
			}
			if f.IsHeartBeat() {
				beats++
				p.Write("\n")
			}
		}
		if c.Err() != nil {
			t.Fatalf("connection ended: %v", c.Err())
		}
		// Nothing lost: one message in the channel, the rest waiting.
		if stuck.Err() != nil || len(stuck.C()) != 1 || stuck.Backlog() != 9 {
			t.Fatalf("stuck: Err %v, %d in the channel, %d waiting", stuck.Err(), len(stuck.C()), stuck.Backlog())
		}
	})
}

// TestHeartBeatsWhileTheReceiveBudgetIsFull: while the reader waits for
// the application (the receive budget is full), the server's bytes wait
// unread, so its silence is not counted, however long; once the reader
// is back, silence counts from then, and a silent server is still found.
func TestHeartBeatsWhileTheReceiveBudgetIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p := connectPeer(t, V12, []Option{WithHeartBeat(0, time.Second), WithReceiveBuffer(1)}, "heart-beat", "1000,0")
		sub, err := c.Subscribe(ctxT(t), "/queue/a", WithBuffer(1))
		if err != nil {
			t.Fatal(err)
		}
		p.Expect("SUBSCRIBE")
		// One for the channel, one for the backlog: past the budget, the
		// reader waits.
		for i := range 2 {
			p.Send("MESSAGE", "x", "subscription", sub.ID(), "destination", "/queue/a", "message-id", fmt.Sprint(i))
		}
		time.Sleep(10 * time.Second) // ten intervals: the server sends nothing, the reader reads nothing
		if c.Err() != nil {
			t.Fatalf("connection ended while the reader waited for the application: %v", c.Err())
		}
		for range 2 {
			recv(t, sub.C())
		}
		back := time.Now()
		<-c.Done()
		want := time.Duration(DefaultHeartBeatTolerance * float64(time.Second))
		if silence := time.Since(back); silence != want {
			t.Fatalf("died after %v of silence once the reader was back, want %v", silence, want)
		}
		if !errors.Is(c.Err(), ErrHeartBeatTimeout) {
			t.Fatalf("Err = %v", c.Err())
		}
	})
}

// TestHeartBeatAnyDataCounts: a frame that arrives slowly, a piece a
// second, keeps the connection alive although no frame completes for
// longer than the timeout.
func TestHeartBeatAnyDataCounts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p := connectPeer(t, V12, []Option{WithHeartBeat(0, time.Second)}, "heart-beat", "1000,0")
		sub, err := c.Subscribe(ctxT(t), "/queue/a")
		if err != nil {
			t.Fatal(err)
		}
		p.Expect("SUBSCRIBE")
		p.Write("MESSAGE\nsubscription:" + sub.ID() + "\n\n")
		for range 10 {
			time.Sleep(time.Second)
			p.Write("x")
		}
		p.Write("\x00")
		if m := recv(t, sub.C()); string(m.Body) != "xxxxxxxxxx" {
			t.Fatalf("got %q", m.Body)
		}
		if c.Err() != nil {
			t.Fatal(c.Err())
		}
	})
}

// TestHeartBeatTimeoutWhileWriterStuck: over a transport without write
// deadlines, a server that neither reads nor sends. The writer is stuck
// in a write and used to be the only one watching the heart-beats, so the
// connection never ended.
func TestHeartBeatTimeoutWhileWriterStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cr, sw := io.Pipe()
		sr, cw := io.Pipe()
		server := pipeRWC{sr, sw}
		defer server.Close()
		go func() {
			buf := make([]byte, 4096)
			server.Read(buf) // CONNECT; then it reads nothing more
			io.WriteString(server, "CONNECTED\nversion:1.2\nheart-beat:1000,0\n\n\x00")
		}()
		c, err := Connect(context.Background(), pipeRWC{cr, cw}, WithHeartBeat(0, time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		// SUBSCRIBE returns once flushed (a SEND as soon as it is buffered):
		// its wait ends with its ctx, the writer stays stuck.
		if _, err := c.Subscribe(ctx, "/q"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Subscribe: %v", err)
		}
		<-c.Done()
		if !errors.Is(c.Err(), ErrHeartBeatTimeout) {
			t.Fatalf("Err = %v", c.Err())
		}
		if d := time.Since(start); d < 2500*time.Millisecond || d > 3200*time.Millisecond {
			t.Fatalf("ended after %v of silence, want about 2.5s", d)
		}
	})
}

// TestHeartBeatNotPostponedByNothing: a batch whose requests were all
// given up on by their callers writes nothing, yet it used to count as a
// write for the heart-beat pacing: a steady trickle of them kept the
// client from ever sending a heart-beat, and the server dropped it.
func TestHeartBeatNotPostponedByNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, p := connectPeer(t, V12, []Option{WithHeartBeat(time.Second, 0)}, "heart-beat", "0,1000")
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(400 * time.Millisecond):
				}
				req := c.newRequest("SEND")
				req.state.Store(reqAbandoned) // as a Send whose ctx ended while queued leaves it
				c.writeq <- req
			}
		}()
		f, err := p.ReadAny()
		if err != nil {
			t.Fatal(err)
		}
		if !f.IsHeartBeat() || time.Since(start) > time.Second {
			t.Fatalf("got %v after %v, want a heart-beat within the interval", f, time.Since(start))
		}
	})
}
