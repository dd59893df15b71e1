package broker_test

import (
	"testing"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// BenchmarkQueue measures one producer and one auto-ack consumer through a
// queue over in-process pipes: SEND parsed, queued, MESSAGE written, read.
func BenchmarkQueue(b *testing.B) { benchDest(b, "/queue/bench") }

// BenchmarkTopic is BenchmarkQueue through a topic with one subscriber.
func BenchmarkTopic(b *testing.B) { benchDest(b, "/topic/bench") }

func benchDest(b *testing.B, dest string) {
	br := mustNew(b, broker.WithServerOptions(server.WithHeartBeat(0, 0)))
	defer br.Close()
	c := open(b, br.Pipe(), "1.2")
	c.receipt("SUBSCRIBE", "id", "0", "destination", dest)
	p := open(b, br.Pipe(), "1.2")
	f := frame.New(frame.CmdSend, "destination", dest, "content-type", "text/plain")
	f.Body = make([]byte, 128)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range b.N {
			if g, err := c.r.ReadFrame(); err != nil || g.Command != frame.CmdMessage {
				b.Errorf("read %v %v", g, err)
				return
			}
		}
	}()
	b.SetBytes(int64(len(f.Body)))
	b.ResetTimer()
	for range b.N {
		if err := p.w.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
		if p.w.Buffered() > 16<<10 {
			p.w.Flush()
		}
	}
	p.w.Flush()
	<-done
	b.StopTimer()
	p.c.Close()
	c.c.Close()
}
