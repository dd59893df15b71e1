package broker_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The broker's server mounted in an HTTP server: a WebSocket client and a
// TCP-less pipe client share a queue.
func TestBrokerOverWebSocket(t *testing.T) {
	b := newBroker(t)
	hs := httptest.NewServer(b.Server().WebSocketHandler())
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, hs.URL, &websocket.DialOptions{Subprotocols: []string{"v12.stomp"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func() []byte {
		t.Helper()
		_, msg, err := ws.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	ws.Write(ctx, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00"))
	if msg := read(); !bytes.HasPrefix(msg, []byte("CONNECTED\nversion:1.2\n")) {
		t.Fatalf("got %q", msg)
	}
	ws.Write(ctx, websocket.MessageText, []byte("SUBSCRIBE\nid:0\ndestination:/queue/ws\nreceipt:s\n\n\x00"))
	if msg := read(); string(msg) != "RECEIPT\nreceipt-id:s\n\n\x00" {
		t.Fatalf("got %q", msg)
	}
	p := open(t, b.Pipe(), "1.2")
	p.sendMsg("/queue/ws", "over the web")
	msg := read()
	if !bytes.HasPrefix(msg, []byte("MESSAGE\ndestination:/queue/ws\nmessage-id:")) || !bytes.HasSuffix(msg, []byte("\n\nover the web\x00")) {
		t.Fatalf("got %q", msg)
	}
	p.close()
	ws.Write(ctx, websocket.MessageText, []byte("DISCONNECT\nreceipt:bye\n\n\x00"))
	if msg := read(); string(msg) != "RECEIPT\nreceipt-id:bye\n\n\x00" {
		t.Fatalf("got %q", msg)
	}
}
