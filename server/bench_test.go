package server

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"testing"
)

// BenchmarkSessionSend measures the engine reading SEND frames (128-byte
// bodies, a receipt on every 100th) for a handler that discards them, over
// TCP loopback, with the client writing one frame per write (the case where
// an idle-releasing reader gives its buffer back most often) or 32 KiB
// batches.
func BenchmarkSessionSend(b *testing.B) {
	body := string(make([]byte, 128))
	for _, batched := range []bool{false, true} {
		name := "frame-per-write"
		if batched {
			name = "batched"
		}
		b.Run(name, func(b *testing.B) {
			srv := mustNew(NopHandler{}, WithHeartBeat(0, 0))
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(l)
			defer srv.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			io.WriteString(c, "CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
			if _, err := br.ReadString(0); err != nil {
				b.Fatal(err)
			}
			receipts := make(chan error, 1)
			n := b.N
			go func() {
				for i := 99; i < n; i += 100 {
					if _, err := br.ReadString(0); err != nil {
						receipts <- err
						return
					}
				}
				receipts <- nil
			}()
			bw := bufio.NewWriterSize(c, 32<<10)
			b.SetBytes(128)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range n {
				r := ""
				if i%100 == 99 {
					r = "receipt:" + strconv.Itoa(i) + "\n"
				}
				bw.WriteString("SEND\ndestination:/q\n" + r + "\n" + body + "\x00")
				if !batched {
					bw.Flush()
				}
			}
			bw.Flush()
			if err := <-receipts; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
