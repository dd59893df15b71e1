package stomp

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/stomptest"
)

var versions = []Version{V10, V11, V12}

func TestConnectFrameBytes(t *testing.T) {
	noLeaks(t)
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"defaults", nil, stomptest.Wire("CONNECT", "", "accept-version", "1.0,1.1,1.2", "host", "/",
			"heart-beat", "10000,10000")},
		{"everything", []Option{
			WithLogin("guest", "pass:word"), WithHost("vhost"), WithVersions(V11, V12),
			WithHeartBeat(1500*time.Millisecond, time.Second), WithConnectHeader("client-id", "a:b"),
		}, stomptest.Wire("CONNECT", "", "accept-version", "1.1,1.2", "host", "vhost",
			"login", "guest", "passcode", "pass:word", "heart-beat", "1500,1000", "client-id", "a:b")},
		{"no host", []Option{WithHost("")}, stomptest.Wire("CONNECT", "", "accept-version", "1.0,1.1,1.2",
			"heart-beat", "10000,10000")},
		{"no heart-beats", []Option{WithHeartBeat(0, 0)}, stomptest.Wire("CONNECT", "", "accept-version", "1.0,1.1,1.2",
			"host", "/")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, p := stomptest.Pipe(t)
			done := async(func() error {
				c, err := Connect(ctxT(t), client, tt.opts...)
				if err == nil {
					c.Close()
				}
				return err
			})
			p.ExpectBytes(tt.want)
			p.Send("CONNECTED", "", "version", "1.2")
			if err := waitErr(t, done); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConnectNegotiates(t *testing.T) {
	noLeaks(t)
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			c, _ := connectPeer(t, v, []Option{WithHeartBeat(time.Second, 3*time.Second)}, "heart-beat", "2000,2000")
			if c.Version() != v || c.Session() != "sess-1" || c.Server() != "peer/1.0" {
				t.Fatalf("got version %q session %q server %q", c.Version(), c.Session(), c.Server())
			}
			send, recv := c.HeartBeat()
			if v == V10 {
				if send != 0 || recv != 0 {
					t.Fatalf("1.0 heart-beats %v %v, want none", send, recv)
				}
				return
			}
			if send != 2*time.Second || recv != 3*time.Second {
				t.Fatalf("heart-beats %v %v, want 2s 3s", send, recv)
			}
		})
	}
}

func TestConnectNoVersionHeaderIs10(t *testing.T) {
	noLeaks(t)
	c, _ := connectPeer(t, "", nil)
	if c.Version() != V10 {
		t.Fatalf("version %q, want 1.0", c.Version())
	}
}

func TestConnectRefused(t *testing.T) {
	noLeaks(t)
	client, p := stomptest.Pipe(t)
	done := async(func() error {
		_, err := Connect(ctxT(t), client, WithLogin("guest", "wrong"))
		return err
	})
	p.ReadFrame()
	p.Write("ERROR\nmessage:Bad CONNECT\ncontent-type:text/plain\ncontent-length:32\n\nAccess refused for user 'guest'\n\x00\n")
	err := waitErr(t, done)
	var ce *ConnectError
	var se *ServerError
	if !errors.As(err, &ce) || !errors.As(err, &se) {
		t.Fatalf("got %T %v, want *ConnectError with a *ServerError", err, err)
	}
	if se.Message != "Bad CONNECT" || string(se.Body) != "Access refused for user 'guest'\n" {
		t.Fatalf("server error %+v", se)
	}
	if got := err.Error(); got != "stomp: connect refused: Bad CONNECT: Access refused for user 'guest'" {
		t.Fatalf("Error() = %q", got)
	}
	p.ExpectClosed()
}

func TestConnectBadAnswers(t *testing.T) {
	noLeaks(t)
	tests := []struct {
		name   string
		opts   []Option
		answer string
	}{
		{"version not offered", []Option{WithVersions(V12)}, "CONNECTED\nversion:1.1\n\n\x00"},
		{"no version means 1.0", []Option{WithVersions(V11, V12)}, "CONNECTED\n\n\x00"},
		{"bad heart-beat", nil, "CONNECTED\nversion:1.2\nheart-beat:x\n\n\x00"},
		{"not CONNECTED", nil, "RECEIPT\nreceipt-id:1\n\n\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, p := stomptest.Pipe(t)
			done := async(func() error {
				_, err := Connect(ctxT(t), client, tt.opts...)
				return err
			})
			p.ReadFrame()
			p.Write(tt.answer)
			var ce *ConnectError
			if err := waitErr(t, done); !errors.As(err, &ce) {
				t.Fatalf("got %v, want *ConnectError", err)
			}
		})
	}
}

func TestConnectContextEnds(t *testing.T) {
	noLeaks(t)
	client, p := stomptest.Pipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := async(func() error {
		_, err := Connect(ctx, client)
		return err
	})
	p.ReadFrame() // and never answer
	cancel()
	if err := waitErr(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	p.ExpectClosed()
}

func TestConnectHeartBeatsBeforeConnected(t *testing.T) {
	noLeaks(t)
	client, p := stomptest.Pipe(t)
	done := async(func() error {
		c, err := Connect(ctxT(t), client)
		if err == nil {
			c.Close()
		}
		return err
	})
	p.ReadFrame()
	p.Write("\n\r\n\nCONNECTED\r\nversion:1.2\r\n\r\n\x00\n")
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidOptions(t *testing.T) {
	noLeaks(t)
	for _, o := range []Option{WithVersions(), WithVersions("2.0"), WithHeartBeat(-1, 0),
		WithHeartBeatTolerance(0.5), WithSubscriptionBuffer(0), WithWriteTimeout(-1), WithUnroutedBuffer(0)} {
		client, _ := stomptest.Pipe(t)
		if _, err := Connect(ctxT(t), client, o); err == nil {
			t.Fatal("invalid option accepted")
		}
	}
}

func TestDisconnect(t *testing.T) {
	noLeaks(t)
	for _, v := range versions {
		t.Run(string(v), func(t *testing.T) {
			c, p := connectPeer(t, v, nil)
			done := async(func() error { return c.Disconnect(ctxT(t)) })
			p.ExpectBytes(stomptest.Wire("DISCONNECT", "", "receipt", "rcpt-1"))
			p.Send("RECEIPT", "", "receipt-id", "rcpt-1")
			if err := waitErr(t, done); err != nil {
				t.Fatalf("Disconnect: %v", err)
			}
			p.ExpectClosed()
			<-c.Done()
			if c.Err() != nil {
				t.Fatalf("Err after Disconnect = %v", c.Err())
			}
			if err := c.Disconnect(ctxT(t)); err != nil {
				t.Fatalf("second Disconnect: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.Send(ctxT(t), "/q", nil); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after Disconnect: %v", err)
			}
		})
	}
}

func TestDisconnectServerClosesWithoutReceipt(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	done := async(func() error { return c.Disconnect(ctxT(t)) })
	p.Expect("DISCONNECT")
	p.Close() // RabbitMQ Web-STOMP: no RECEIPT, just close
	if err := waitErr(t, done); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if c.Err() != nil {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestDisconnectServerNeverAnswers(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := async(func() error { return c.Disconnect(ctx) })
	p.Expect("DISCONNECT")
	if err := waitErr(t, done); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Disconnect: %v, want DeadlineExceeded", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("connection not ended after Disconnect")
	}
	p.ExpectClosed()
}

func TestCloseIdempotentAndConcurrent(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	var errs []<-chan error
	for range 4 {
		errs = append(errs, async(c.Close), async(func() error { return c.Disconnect(ctxT(t)) }))
	}
	go p.ExpectClosed()
	for _, e := range errs {
		waitErr(t, e)
	}
	<-c.Done()
}

func TestServerClosesConnection(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	sub, err := c.Subscribe(ctxT(t), "/queue/a")
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	p.Close()
	<-c.Done()
	if !errors.Is(c.Err(), io.EOF) {
		t.Fatalf("Err = %v, want EOF", c.Err())
	}
	if _, ok := <-sub.C(); ok {
		t.Fatal("subscription channel open")
	}
	if !errors.Is(sub.Err(), io.EOF) {
		t.Fatalf("sub.Err = %v", sub.Err())
	}
	if err := c.Send(ctxT(t), "/q", nil); !errors.Is(err, ErrClosed) || !errors.Is(err, io.EOF) {
		t.Fatalf("Send = %v, want ErrClosed wrapping EOF", err)
	}
	if _, ok := <-c.Unrouted(); ok {
		t.Fatal("Unrouted open")
	}
}

var _ = frame.V12

// pipeRWC is a transport that is not a net.Conn: two io.Pipes.
type pipeRWC struct {
	*io.PipeReader
	*io.PipeWriter
}

func (p pipeRWC) Close() error {
	p.PipeReader.Close()
	return p.PipeWriter.Close()
}

func TestConnectOverAnyReadWriteCloser(t *testing.T) {
	noLeaks(t)
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	client := pipeRWC{cr, cw}
	server := pipeRWC{sr, sw}
	defer server.Close()
	go func() { // the server: CONNECTED, then a RECEIPT for the DISCONNECT
		buf := make([]byte, 4096)
		server.Read(buf)
		io.WriteString(server, "CONNECTED\nversion:1.1\n\n\x00")
		server.Read(buf)
		io.WriteString(server, "RECEIPT\nreceipt-id:rcpt-1\n\n\x00")
		io.Copy(io.Discard, server)
	}()
	c, err := Connect(ctxT(t), client, WithWriteTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Version() != V11 {
		t.Fatalf("version %q", c.Version())
	}
	if err := c.Disconnect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestNothingWrittenAfterDisconnect: a call that races with Disconnect
// must not put a frame on the wire after DISCONNECT (the specification
// forbids it; brokers ignore such frames, so a Send used to report
// success for a message that was dropped). It fails with ErrClosed.
func TestNothingWrittenAfterDisconnect(t *testing.T) {
	noLeaks(t)
	c, p := connectPeer(t, V12, nil)
	ctx := ctxT(t)
	sub, err := c.Subscribe(ctx, "/q")
	if err != nil {
		t.Fatal(err)
	}
	p.Expect("SUBSCRIBE")
	done := async(func() error { return c.Disconnect(ctx) })
	f := p.Expect("DISCONNECT")
	var r *Receipt
	if err := c.Send(ctx, "/q", []byte("late"), WithReceipt(&r)); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after DISCONNECT: %v, want ErrClosed", err)
	}
	if !errors.Is(r.Err(), ErrClosed) {
		t.Errorf("its receipt: %v", r.Err())
	}
	if err := sub.Unsubscribe(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Unsubscribe after DISCONNECT: %v, want ErrClosed", err)
	}
	if _, err := c.Begin(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after DISCONNECT: %v, want ErrClosed", err)
	}
	if n := len(c.Transactions()); n != 0 {
		t.Errorf("%d transactions", n)
	}
	p.Send("RECEIPT", "", "receipt-id", f.Header.Get("receipt"))
	if err := waitErr(t, done); err != nil {
		t.Fatal(err)
	}
	if fs := p.ExpectClosed(); len(fs) != 0 {
		t.Fatalf("written after DISCONNECT: %v", fs)
	}
}
