package server

import (
	"context"
	"io"
	"net"
	"testing"
	"testing/synctest"
)

// FuzzSession feeds arbitrary bytes to a session after a CONNECT: whatever
// comes, the session must end (ERROR and close, or EOF) without panicking
// or leaking goroutines, and never answer with anything but frames.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"SEND\ndestination:/q\nreceipt:1\n\nhi\x00",
		"SUBSCRIBE\nid:0\ndestination:/q\nack:client\n\n\x00ACK\nid:1\n\n\x00",
		"BEGIN\ntransaction:t\n\n\x00COMMIT\ntransaction:t\n\n\x00",
		"SEND\ndestination:/q\ncontent-length:3\n\na\x00b\x00",
		"\n\r\n\nDISCONNECT\nreceipt:x\n\n\x00",
		"NACK\nid:\\t\n\n\x00",
	} {
		f.Add("1.2", s)
		f.Add("1.0", s)
	}
	f.Fuzz(func(t *testing.T, v, input string) {
		synctest.Test(t, func(t *testing.T) {
			rec := &recorder{}
			deliverOnSubscribe(rec, 2)
			srv := testServer(rec)
			a, b := net.Pipe()
			done := make(chan error, 1)
			go func() { done <- srv.ServeConn(context.Background(), b) }()
			go func() {
				io.WriteString(a, "CONNECT\naccept-version:"+v+"\nhost:/\n\n\x00"+input)
				a.Close() // then the connection is lost, if nothing ended it before
			}()
			io.Copy(io.Discard, a)
			<-done
		})
	})
}
