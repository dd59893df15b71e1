package stomp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/stomptest"
)

// benchPair returns the client and server ends of a transport: net.Pipe
// or loopback TCP.
func benchPair(b *testing.B, transport string) (client, server net.Conn) {
	b.Helper()
	if transport == "pipe" {
		client, server = net.Pipe()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			accepted <- c
		}()
		if client, err = net.Dial("tcp", l.Addr().String()); err != nil {
			b.Fatal(err)
		}
		server = <-accepted
	}
	b.Cleanup(func() { server.Close() })
	return client, server
}

// BenchmarkSend measures Send of 100-byte bodies to a server that reads
// and discards: serially (each Send waits for its own flush) and from
// many goroutines (whose frames the writer batches).
func BenchmarkSend(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 100)
	for _, transport := range []string{"pipe", "tcp"} {
		for _, parallel := range []bool{false, true} {
			name := fmt.Sprintf("%s/serial", transport)
			if parallel {
				name = fmt.Sprintf("%s/parallel", transport)
			}
			b.Run(name, func(b *testing.B) {
				client, server := benchPair(b, transport)
				c := rawConnect(b, client, server)
				go io.Copy(io.Discard, server)
				ctx := context.Background()
				b.ReportAllocs()
				b.SetBytes(int64(len(body)))
				b.ResetTimer()
				if parallel {
					b.SetParallelism(16)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := c.Send(ctx, "/queue/bench", body); err != nil {
								b.Error(err)
								return
							}
						}
					})
				} else {
					for range b.N {
						if err := c.Send(ctx, "/queue/bench", body); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				b.StopTimer()
				c.Close()
			})
		}
	}
}

// BenchmarkReceive measures MESSAGE frames of 100-byte bodies (with the
// headers RabbitMQ sends) going from the transport to a goroutine ranging
// over a subscription. One op is one
// message, so allocs/op is allocations per message. cpu-ns/msg is the
// process's CPU time per message (every goroutine: reader, pump, consumer,
// the benchmark's feeder, the runtime), steadier than ns/op on a busy
// machine; waits/msg counts the times the consumer found the channel
// empty, and so had to sleep until the reader (or the pump) woke it.
func BenchmarkReceive(b *testing.B) {
	var chunk bytes.Buffer
	fw := frame.NewWriter(&chunk)
	fw.SetVersion(V12)
	const perChunk = 1000
	body := bytes.Repeat([]byte("x"), 100)
	for i := range perChunk {
		f := frame.New(frame.CmdMessage, "subscription", "bench", "destination", "/queue/bench",
			"message-id", fmt.Sprint("m-", i), "ack", fmt.Sprint("a-", i), "content-type", "text/plain",
			"redelivered", "false")
		f.Body = body
		fw.WriteFrame(f)
	}
	fw.Flush()
	frames := chunk.Bytes()

	// tcp-backlog: a channel of 64, smaller than a chunk, so that most
	// messages go through the subscription's backlog and its pump.
	for _, name := range []string{"pipe", "tcp", "tcp-backlog"} {
		transport, buffer := name, 4096
		if name == "tcp-backlog" {
			transport, buffer = "tcp", 64
		}
		b.Run(name, func(b *testing.B) {
			client, server := benchPair(b, transport)
			c := rawConnect(b, client, server)
			go io.Copy(io.Discard, server)
			sub, err := c.Subscribe(context.Background(), "/queue/bench", WithID("bench"), WithBuffer(buffer))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			cpu0 := processCPU()
			waits := 0
			// Like a broker with a prefetch of 2*perChunk: at most two
			// chunks are unconsumed, so the buffer cannot overflow.
			credit := make(chan struct{}, 2)
			credit <- struct{}{}
			credit <- struct{}{}
			go func() {
				for n := 0; n < b.N; n += perChunk {
					<-credit
					if _, err := server.Write(frames); err != nil {
						return
					}
				}
			}()
			for i := range b.N {
				if len(sub.C()) == 0 {
					waits++
				}
				if _, ok := <-sub.C(); !ok {
					b.Fatal(sub.Err())
				}
				if (i+1)%perChunk == 0 {
					credit <- struct{}{}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			if cpu0 >= 0 {
				b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/msg")
			}
			b.ReportMetric(float64(waits)/float64(b.N), "waits/msg")
			b.StopTimer()
			c.Close()
		})
	}
}

// BenchmarkDispatch is the receive path of BenchmarkReceive without its
// goroutines: one goroutine reads a MESSAGE (from memory), dispatches it
// to its subscription and takes it from the channel. Without hand-offs
// between goroutines its ns/op is steadier: what the reader and the
// consumer spend per message, scheduling aside.
func BenchmarkDispatch(b *testing.B) {
	var chunk bytes.Buffer
	fw := frame.NewWriter(&chunk)
	fw.SetVersion(V12)
	f := frame.New(frame.CmdMessage, "subscription", "bench", "destination", "/queue/bench",
		"message-id", "m-1", "ack", "a-1", "content-type", "text/plain", "redelivered", "false")
	f.Body = bytes.Repeat([]byte("x"), 100)
	fw.WriteFrame(f)
	fw.Flush()
	client, server := net.Pipe()
	c := rawConnect(b, client, server)
	go io.Copy(io.Discard, server)
	sub, err := c.Subscribe(context.Background(), "/queue/bench", WithID("bench"), WithBuffer(1))
	if err != nil {
		b.Fatal(err)
	}
	s := c.current()
	r := frame.NewReader(stomptest.Repeat(chunk.Bytes()))
	r.SetVersion(V12)
	r.SetOwned(frame.CmdMessage)
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		c.dispatch(s, f)
		if m := <-sub.C(); len(m.Body) != 100 {
			b.Fatalf("body of %d bytes", len(m.Body))
		}
	}
	b.StopTimer()
	c.Close()
}
