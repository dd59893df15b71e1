package broker_test

import (
	"net"
	"testing"
	"time"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// raw is a minimal raw-frame STOMP client for the broker tests.
type raw struct {
	t testing.TB
	c net.Conn
	r *frame.Reader
	w *frame.Writer
	// early holds MESSAGE frames that arrived while waiting for a RECEIPT.
	early []*frame.Frame
}

// open sends CONNECT for version v with extra header pairs and waits for
// CONNECTED.
func open(t testing.TB, c net.Conn, v string, kv ...string) *raw {
	t.Helper()
	cl := &raw{t: t, c: c, r: frame.NewReader(c), w: frame.NewWriter(c)}
	h := []string{"accept-version", v, "host", "/"}
	cl.send(frame.New(frame.CmdConnect, append(h, kv...)...))
	f := cl.recv()
	if f.Command != frame.CmdConnected {
		t.Fatalf("CONNECT: got %v", f)
	}
	cl.r.SetVersion(frame.Version(v))
	cl.w.SetVersion(frame.Version(v))
	return cl
}

func dialTCP(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *raw) send(f *frame.Frame) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.w.WriteFrame(f); err != nil {
		c.t.Fatalf("write %v: %v", f, err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatalf("flush %v: %v", f, err)
	}
}

// do sends a frame with command cmd and header pairs kv.
func (c *raw) do(cmd string, kv ...string) {
	c.t.Helper()
	c.send(frame.New(cmd, kv...))
}

// sendMsg sends a SEND to dest with body and extra headers.
func (c *raw) sendMsg(dest, body string, kv ...string) {
	c.t.Helper()
	f := frame.New(frame.CmdSend, append([]string{"destination", dest}, kv...)...)
	f.Body = []byte(body)
	c.send(f)
}

// recv returns the next frame (heart-beats skipped), cloned.
func (c *raw) recv() *frame.Frame {
	c.t.Helper()
	if len(c.early) > 0 {
		f := c.early[0]
		c.early = c.early[1:]
		return f
	}
	return c.next()
}

// next reads the next frame from the wire.
func (c *raw) next() *frame.Frame {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := c.r.ReadFrame()
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if !f.IsHeartBeat() {
			return f.Clone()
		}
	}
}

// recvCmd reads a frame and checks its command.
func (c *raw) recvCmd(cmd string) *frame.Frame {
	c.t.Helper()
	f := c.recv()
	if f.Command != cmd {
		c.t.Fatalf("got %v, want %s", f, cmd)
	}
	return f
}

// receipt sends cmd with a receipt header and waits for the RECEIPT.
func (c *raw) receipt(cmd string, kv ...string) {
	c.t.Helper()
	c.do(cmd, append(kv, "receipt", "r-"+cmd)...)
	c.awaitReceipt("r-" + cmd)
}

// awaitReceipt reads until the RECEIPT with receipt-id id, keeping the
// MESSAGE frames that come first (the engine may write a message the
// frame caused before its receipt).
func (c *raw) awaitReceipt(id string) {
	c.t.Helper()
	for {
		f := c.next()
		if f.Command == frame.CmdMessage {
			c.early = append(c.early, f)
			continue
		}
		if f.Command != frame.CmdReceipt || f.Header.Get("receipt-id") != id {
			c.t.Fatalf("got %v, want RECEIPT %s", f, id)
		}
		return
	}
}

// nothing checks that no frame arrives within d.
func (c *raw) nothing(d time.Duration) {
	c.t.Helper()
	if len(c.early) > 0 {
		c.t.Fatalf("unexpected %v", c.early[0])
	}
	c.c.SetReadDeadline(time.Now().Add(d))
	f, err := c.r.ReadFrame()
	if err == nil && !f.IsHeartBeat() {
		c.t.Fatalf("unexpected %v", f)
	}
	// A deadline error leaves the Reader out of step only if it hit inside
	// a frame, which an idle connection does not.
}

func (c *raw) close() {
	c.do(frame.CmdDisconnect, "receipt", "bye")
	c.awaitReceipt("bye")
	c.c.Close()
}

// mustNew is broker.New for options that must be valid.
func mustNew(t testing.TB, opts ...broker.Option) *broker.Broker {
	t.Helper()
	b, err := broker.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
