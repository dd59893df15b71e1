package stomp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/stomptest"
	"github.com/stompout/stomp/internal/wire"
	"github.com/stompout/stomp/reconnect"
)

func TestDialBadAddress(t *testing.T) {
	noLeaks(t)
	if _, err := Dial(ctxT(t), "udp://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "unknown scheme") {
		t.Fatalf("Dial udp: %v", err)
	}
	if _, err := Dial(ctxT(t), "tcp://127.0.0.1:1"); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	if _, err := Dial(ctxT(t), "127.0.0.1:1", WithVersions()); err == nil {
		t.Fatal("invalid option accepted")
	}
}

// serveOne accepts one connection on l and scripts it with a Peer that
// answers CONNECT with 1.2.
func serveOne(t *testing.T, l net.Listener) <-chan *stomptest.Peer {
	ch := make(chan *stomptest.Peer, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			t.Error(err)
			close(ch)
			return
		}
		t.Cleanup(func() { conn.Close() })
		ch <- stomptest.New(t, conn)
	}()
	return ch
}

// roundTrip runs a SEND, a MESSAGE and a DISCONNECT through a dialled
// connection, with a binary body that is not UTF-8.
func roundTrip(t *testing.T, c *Conn, p *stomptest.Peer) {
	t.Helper()
	ctx := ctxT(t)
	body := []byte{0xff, 0, 0xfe, '\n'}
	sub, err := c.Subscribe(ctx, "/queue/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(ctx, "/queue/a", body); err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	if f := p.Expect("SEND"); string(f.Body) != string(body) {
		t.Fatalf("server got %q", f.Body)
	}
	p.Send("MESSAGE", string(body), "subscription", sub.ID(), "destination", "/queue/a", "content-length", "4")
	if m := recv(t, sub.C()); string(m.Body) != string(body) {
		t.Fatalf("client got %q", m.Body)
	}
	done := async(func() error { return c.Disconnect(ctx) })
	f := p.Expect("DISCONNECT")
	p.Send("RECEIPT", "", "receipt-id", f.Header.Get("receipt"))
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestDialTCP(t *testing.T) {
	noLeaks(t)
	for _, scheme := range []string{"", "tcp://"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		peer := serveOne(t, l)
		done := make(chan *Conn, 1)
		go func() {
			c, err := Dial(ctxT(t), scheme+l.Addr().String(), WithLogin("u", "p"))
			if err != nil {
				t.Error(err)
			}
			done <- c
		}()
		p := <-peer
		if f := p.Accept(V12); f.Header.Get("login") != "u" {
			t.Fatalf("CONNECT %v", f)
		}
		c := <-done
		if c == nil {
			t.FailNow()
		}
		roundTrip(t, c, p)
	}
}

func TestDialTLS(t *testing.T) {
	noLeaks(t)
	cert, pool := selfSigned(t)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, scheme := range []string{"tls://", "ssl://"} {
		peer := serveOne(t, l)
		done := make(chan *Conn, 1)
		go func() {
			c, err := Dial(ctxT(t), scheme+l.Addr().String(), WithTLSConfig(&tls.Config{RootCAs: pool}))
			if err != nil {
				t.Error(err)
			}
			done <- c
		}()
		p := <-peer
		p.Accept(V12)
		c := <-done
		if c == nil {
			t.FailNow()
		}
		roundTrip(t, c, p)
	}
	// Without the CA, the certificate is refused.
	go func() {
		if conn, err := l.Accept(); err == nil {
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	if _, err := Dial(ctxT(t), "tls://"+l.Addr().String()); err == nil {
		t.Fatal("untrusted certificate accepted")
	}
}

// wsServerConn is the server end of a WebSocket as a net.Conn for a Peer.
type wsServerConn struct {
	*wire.WS
	net.Conn // from websocket.NetConn: addresses and deadlines
}

func (c wsServerConn) Read(p []byte) (int, error) { return c.WS.Read(p) }

// Write sends p as one message: the Peer writes a frame at a time.
func (c wsServerConn) Write(p []byte) (int, error) {
	c.WS.Write(p)
	return len(p), c.WS.EndMessage()
}
func (c wsServerConn) Close() error         { return c.WS.Close() }
func (c wsServerConn) RemoteAddr() net.Addr { return c.Conn.RemoteAddr() }
func (c wsServerConn) SetWriteDeadline(time.Time) error {
	return nil
}

func wsServer(t *testing.T, tlsServer bool) (*httptest.Server, <-chan *stomptest.Peer) {
	peers := make(chan *stomptest.Peer, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"v12.stomp"}})
		if err != nil {
			t.Error(err)
			return
		}
		if ws.Subprotocol() != "v12.stomp" {
			t.Errorf("subprotocol %q", ws.Subprotocol())
		}
		nc := websocket.NetConn(context.Background(), ws, websocket.MessageText)
		peers <- stomptest.New(t, wsServerConn{wire.NewWS(ws, nil), nc})
	})
	var srv *httptest.Server
	if tlsServer {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, peers
}

func TestDialWebSocket(t *testing.T) {
	noLeaks(t)
	for _, secure := range []bool{false, true} {
		srv, peers := wsServer(t, secure)
		url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
		var opts []Option
		if secure {
			opts = append(opts, WithTLSConfig(srv.Client().Transport.(*http.Transport).TLSClientConfig))
		}
		done := make(chan *Conn, 1)
		go func() {
			// The dial context ends right after Dial: the connection lives on.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c, err := Dial(ctx, url, opts...)
			if err != nil {
				t.Error(err)
			}
			done <- c
		}()
		p := <-peers
		p.Accept(V12)
		c := <-done
		if c == nil {
			t.FailNow()
		}
		roundTrip(t, c, p)
		p.Close()
	}
}

func TestWebSocketServerCloses(t *testing.T) {
	noLeaks(t)
	srv, peers := wsServer(t, false)
	done := make(chan *Conn, 1)
	go func() {
		c, err := Dial(ctxT(t), "ws"+strings.TrimPrefix(srv.URL, "http"), WithReconnect(reconnect.Never()))
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	p := <-peers
	p.Accept(V12)
	c := <-done
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	p.Conn.(wsServerConn).WS.Close()
	<-c.Done()
	if c.Err() == nil || !strings.Contains(c.Err().Error(), "closed by the server") {
		t.Fatalf("Err = %v", c.Err())
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "stompout test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestWebSocketOneFramePerMessage: over a WebSocket every frame the client
// writes is one message, a large SEND included, and frames written in one
// batch are not merged.
func TestWebSocketOneFramePerMessage(t *testing.T) {
	noLeaks(t)
	msgs := make(chan []byte, 64)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"v12.stomp"}})
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.CloseNow()
		ws.SetReadLimit(-1)
		ctx := context.Background()
		for first := true; ; first = false {
			_, b, err := ws.Read(ctx)
			if err != nil {
				close(msgs)
				return
			}
			if first {
				ws.Write(ctx, websocket.MessageText, []byte("CONNECTED\nversion:1.2\n\n\x00"))
				continue
			}
			msgs <- b
		}
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx := ctxT(t)
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), WithHeartBeat(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 64<<10)
	if err := c.Send(ctx, "/queue/big", big); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { c.Send(ctx, "/queue/small", []byte(fmt.Sprint(i))) })
	}
	wg.Wait()
	c.Close()
	var n int
	for b := range msgs {
		fr := frame.NewReader(bytes.NewReader(b))
		fr.SetVersion(V12)
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("message %d: %v", n, err)
		}
		if n == 0 && len(f.Body) != len(big) {
			t.Fatalf("first message: %s with %d bytes of body, want %d", f.Command, len(f.Body), len(big))
		}
		cmd := f.Command
		if _, err := fr.ReadFrame(); err != io.EOF {
			t.Fatalf("message %d (%s) holds more than one frame: %v", n, cmd, err)
		}
		n++
	}
	if n != 11 {
		t.Fatalf("%d messages, want 11 (one per SEND)", n)
	}
}
