package heartbeat_test

import (
	"fmt"
	"io"
	"time"

	"github.com/stompout/stomp/heartbeat"
)

// A client that can send every second and wants data every 5 seconds talks
// to a server that sends every 3 seconds and wants data every 2 seconds.
func ExampleNegotiate() {
	client := heartbeat.Settings{Send: time.Second, Recv: 5 * time.Second}
	server, err := heartbeat.Parse("3000,2000") // from CONNECTED
	if err != nil {
		panic(err)
	}
	fmt.Println("CONNECT heart-beat:" + client.String())

	send, recv := heartbeat.Negotiate(client, server)
	fmt.Println("client sends every", send, "and expects data every", recv)
	send, recv = heartbeat.Negotiate(server, client)
	fmt.Println("server sends every", send, "and expects data every", recv)

	_, err = heartbeat.Parse("1000, 1000")
	fmt.Println(err)
	// Output:
	// CONNECT heart-beat:1000,5000
	// client sends every 2s and expects data every 5s
	// server sends every 5s and expects data every 2s
	// heartbeat: invalid heart-beat header "1000, 1000": " 1000" is not a non-negative integer
}

// A writer goroutine sends frames as they come and an EOL whenever the
// connection has been idle for half the negotiated send interval.
func ExamplePacer() {
	var w io.Writer          // the connection
	var frames <-chan []byte // encoded frames to send
	var send time.Duration   // from Negotiate
	pace := heartbeat.NewPacer(send, 0)
	defer pace.Stop()
	for {
		select {
		case f := <-frames:
			if _, err := w.Write(f); err != nil {
				return
			}
			pace.Wrote()
		case <-pace.C():
			if pace.Due() {
				if _, err := w.Write([]byte("\n")); err != nil {
					return
				}
				pace.Wrote()
			}
		}
	}
}

// The reader goroutine touches the Monitor on every read; whoever owns the
// connection closes it when the peer goes silent.
func ExampleMonitor() {
	var r io.ReadCloser    // the connection
	var recv time.Duration // from Negotiate
	mon := heartbeat.NewMonitor(recv, 0)
	defer mon.Stop()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-mon.Dead():
			fmt.Println(mon.Err()) // heartbeat: no data from peer for ...
			r.Close()              // unblocks the reader below
		case <-done:
		}
	}()
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			mon.Touch()
			// ... decode buf[:n]
		}
		if err != nil {
			return
		}
	}
}
