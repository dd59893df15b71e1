package server

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"testing/synctest"

	"github.com/stompout/stomp/frame"
)

// FuzzSession feeds arbitrary bytes to a session after a CONNECT: whatever
// comes, the session must end (ERROR and close, or EOF) without panicking
// or leaking goroutines, and never answer with anything but well-formed
// server frames, an ERROR only as the last.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"SEND\ndestination:/q\nreceipt:1\n\nhi\x00",
		"SUBSCRIBE\nid:0\ndestination:/q\nack:client\n\n\x00ACK\nid:1\n\n\x00",
		"BEGIN\ntransaction:t\n\n\x00COMMIT\ntransaction:t\n\n\x00",
		"SEND\ndestination:/q\ncontent-length:3\n\na\x00b\x00",
		"\n\r\n\nDISCONNECT\nreceipt:x\n\n\x00",
		"NACK\nid:\\t\n\n\x00",
		// Several frames in a row, in each version's dialect.
		"SUBSCRIBE\ndestination:/q\nack:client\nreceipt:s\n\n\x00ACK\nmessage-id:m2\nreceipt:a\n\n\x00UNSUBSCRIBE\ndestination:/q\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/q\nack:client-individual\n\n\x00BEGIN\ntransaction:t\n\n\x00ACK\nsubscription:0\nmessage-id:m1\ntransaction:t\n\n\x00NACK\nsubscription:0\nmessage-id:m2\n\n\x00ABORT\ntransaction:t\nreceipt:ab\n\n\x00ACK\nsubscription:0\nmessage-id:m1\n\n\x00",
		"SUBSCRIBE\nid:a\\cb\ndestination:/q\nack:client\n\n\x00BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\nx:\\n\\r\n\nbody\x00ACK\nid:2\ntransaction:t\n\n\x00COMMIT\ntransaction:t\nreceipt:c\n\n\x00UNSUBSCRIBE\nid:a\\cb\nreceipt:u\n\n\x00DISCONNECT\nreceipt:d\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/q\n\n\x00SUBSCRIBE\nid:0\ndestination:/q\n\n\x00",
		"SEND\r\ndestination:/q\r\nreceipt:r\r\n\r\nx\x00\r\nSEND\ndestination:/q\n\n\x00",
	} {
		f.Add("1.2", s)
		f.Add("1.1", s)
		f.Add("1.0", s)
	}
	f.Fuzz(func(t *testing.T, v, input string) {
		synctest.Test(t, func(t *testing.T) {
			rec := &recorder{}
			deliverOnSubscribe(rec, 2)
			// The engine logs a frame it could not encode and so never
			// wrote: a RECEIPT or ERROR the client would wait for in vain.
			var logs syncBuffer
			srv := testServer(rec, WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))))
			a, b := net.Pipe()
			done := make(chan error, 1)
			go func() { done <- srv.ServeConn(context.Background(), b) }()
			go func() {
				a.Write([]byte("CONNECT\naccept-version:" + v + "\nhost:/\n\n\x00" + input))
				a.Close() // then the connection is lost, if nothing ended it before
			}()
			r := frame.NewReader(a)
			var last string
			for {
				f, err := r.ReadFrame()
				if err != nil {
					if _, ok := err.(*frame.ProtocolError); ok {
						t.Fatalf("server wrote a malformed frame after %s: %v", last, err)
					}
					break
				}
				if f.IsHeartBeat() {
					continue
				}
				if last == frame.CmdError {
					t.Fatalf("%s after ERROR", f.Command)
				}
				switch f.Command {
				case frame.CmdConnected:
					if last != "" {
						t.Fatalf("CONNECTED after %s", last)
					}
					if ver := f.Header.Get(frame.HdrVersion); ver != "" {
						r.SetVersion(frame.Version(ver))
					}
				case frame.CmdMessage, frame.CmdReceipt, frame.CmdError:
					if last == "" && f.Command != frame.CmdError {
						t.Fatalf("%s before CONNECTED", f.Command)
					}
				default:
					t.Fatalf("server sent %s", f.Command)
				}
				last = f.Command
			}
			<-done
			if l := logs.String(); l != "" {
				t.Fatalf("engine logged:\n%s", l)
			}
		})
	})
}
