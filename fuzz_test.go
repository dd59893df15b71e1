package stomp

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzServerBytes feeds arbitrary bytes from the server after CONNECTED.
// Whatever they are, the client must not panic, must deliver only what it
// parsed, and must end cleanly (no goroutine left, every channel closed)
// once the server goes away.
func FuzzServerBytes(f *testing.F) {
	f.Add("MESSAGE\nsubscription:sub-1\ndestination:/q\nmessage-id:1\n\nhi\x00\n")
	f.Add("RECEIPT\nreceipt-id:rcpt-1\n\n\x00")
	f.Add("ERROR\nmessage:boom\nreceipt-id:rcpt-1\n\nbody\x00")
	f.Add("MESSAGE\nsubscription:nobody\ncontent-length:3\n\na\x00b\x00\n\n\n")
	f.Add("\n\r\n\nMESSAGE\r\nsubscription:sub-1\r\nk:\\c\\n\\\\\r\n\r\n\x00")
	f.Add("MESSAGE\ncontent-length:99999999999999999999\n\n\x00")
	f.Add("FOO\n\n\x00")
	// Real brokers' bytes, as the frame package keeps them.
	captures, err := filepath.Glob("frame/testdata/captures/*.stomp")
	if err != nil || len(captures) == 0 {
		f.Fatalf("no broker captures in frame/testdata/captures: %v", err)
	}
	for _, name := range captures {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, p := connectPeer(t, V12, []Option{WithSubscriptionBuffer(4), WithUnroutedBuffer(4)})
		sub, err := c.Subscribe(ctxT(t), "/q", WithID("sub-1"))
		if err != nil {
			t.Fatal(err)
		}
		var r *Receipt
		c.Send(ctxT(t), "/q", nil, WithReceipt(&r))
		p.Conn.Write([]byte(in)) // may fail once the client has given up: fine
		p.Close()
		<-c.Done()
		for range sub.C() {
		}
		for range c.Unrouted() {
		}
		<-r.Done()
	})
}
