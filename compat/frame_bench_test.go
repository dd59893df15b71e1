package compat

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"

	gostomp "github.com/go-stomp/stomp/v3/frame"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/internal/stomptest"
)

// The frames both libraries read and write: a typical MESSAGE (six
// headers, one of them with a colon to escape, and a 32-byte body) and the
// same MESSAGE with a 64 KiB body.
var (
	headers = []string{
		"destination", "/queue/orders",
		"message-id", "T_sub-0@@session-J0I65IpDAfsVwk0ELExaxA@@1",
		"subscription", "sub-0",
		"ack", "ID:vm-33735-1795786894377-4:1",
		"content-type", "text/plain",
	}
	typicalBody = []byte("0123456789abcdef0123456789abcdef")
	bigBody     = []byte(strings.Repeat("0123456789abcdef", 4<<10))
)

// stompoutFrame and gostompFrame are the same MESSAGE in each library's
// type, content-length last.
func stompoutFrame(body []byte) *frame.Frame {
	f := frame.New(frame.CmdMessage, headers...)
	f.Header.Add(frame.HdrContentLength, strconv.Itoa(len(body)))
	f.Body = body
	return f
}

func gostompFrame(body []byte) *gostomp.Frame {
	f := gostomp.New(gostomp.MESSAGE, headers...)
	f.Header.Add(gostomp.ContentLength, strconv.Itoa(len(body)))
	f.Body = body
	return f
}

// wire is the frame as STOMP 1.2 puts it on the wire.
func wire(tb testing.TB, body []byte) []byte {
	var buf bytes.Buffer
	w := frame.NewWriter(&buf)
	w.SetVersion(frame.V12)
	w.SetContentLength(frame.ContentLengthAlways)
	if err := w.WriteFrame(stompoutFrame(body)); err != nil {
		tb.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// TestSameWork checks that the benchmarks compare like with like: both
// libraries write the same bytes for the frame, and read those bytes back
// as the same frame.
func TestSameWork(t *testing.T) {
	for _, body := range [][]byte{typicalBody, bigBody} {
		want := wire(t, body)

		var buf bytes.Buffer
		if err := gostomp.NewWriter(&buf).Write(gostompFrame(body)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("go-stomp writes\n%q\nstompout writes\n%q", buf.Bytes(), want)
		}

		r := frame.NewReader(bytes.NewReader(want))
		r.SetVersion(frame.V12)
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		g, err := gostomp.NewReader(bytes.NewReader(want)).Read()
		if err != nil {
			t.Fatal(err)
		}
		if f.Command != g.Command || !bytes.Equal(f.Body, g.Body) || f.Header.Len() != g.Header.Len() {
			t.Fatalf("stompout read %s; go-stomp read %s %d headers", f, g.Command, g.Header.Len())
		}
		for i := range f.Header.Len() {
			fk, fv := f.Header.At(i)
			gk, gv := g.Header.GetAt(i)
			if fk != gk || fv != gv {
				t.Errorf("header %d: stompout %q:%q, go-stomp %q:%q", i, fk, fv, gk, gv)
			}
		}
		if f.Header.Get("ack") != "ID:vm-33735-1795786894377-4:1" {
			t.Errorf("ack header %q not unescaped", f.Header.Get("ack"))
		}
	}
}

// benchRead reads the frame over and over from an endless in-memory
// stream, with each library's own reader at its default size, and touches
// the destination header and the body of every frame.
func benchRead(b *testing.B, body []byte) {
	in := wire(b, body)
	b.Run("stompout", func(b *testing.B) {
		r := frame.NewReader(stomptest.Repeat(in))
		r.SetVersion(frame.V12)
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			f, err := r.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			if f.Header.Get("destination") == "" || len(f.Body) != len(body) {
				b.Fatalf("read %s", f)
			}
		}
	})
	b.Run("gostomp", func(b *testing.B) {
		r := gostomp.NewReader(stomptest.Repeat(in))
		b.SetBytes(int64(len(in)))
		b.ReportAllocs()
		for b.Loop() {
			f, err := r.Read()
			if err != nil {
				b.Fatal(err)
			}
			if f.Header.Get("destination") == "" || len(f.Body) != len(body) {
				b.Fatalf("read %v", f)
			}
		}
	})
}

// benchWrite writes the frame with each library's own writer to
// io.Discard, one flush per frame (go-stomp flushes in every Write).
func benchWrite(b *testing.B, body []byte) {
	n := int64(len(wire(b, body)))
	b.Run("stompout", func(b *testing.B) {
		f := stompoutFrame(body)
		w := frame.NewWriter(io.Discard)
		w.SetVersion(frame.V12)
		w.SetContentLength(frame.ContentLengthAlways)
		b.SetBytes(n)
		b.ReportAllocs()
		for b.Loop() {
			if err := w.WriteFrame(f); err != nil {
				b.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gostomp", func(b *testing.B) {
		f := gostompFrame(body)
		w := gostomp.NewWriter(io.Discard)
		b.SetBytes(n)
		b.ReportAllocs()
		for b.Loop() {
			if err := w.Write(f); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFrameRead: a typical MESSAGE, six headers and a 32-byte body.
func BenchmarkFrameRead(b *testing.B) { benchRead(b, typicalBody) }

// BenchmarkFrameRead64K: the same MESSAGE with a 64 KiB body.
func BenchmarkFrameRead64K(b *testing.B) { benchRead(b, bigBody) }

// BenchmarkFrameWrite: a typical MESSAGE.
func BenchmarkFrameWrite(b *testing.B) { benchWrite(b, typicalBody) }

// BenchmarkFrameWrite64K: a MESSAGE with a 64 KiB body.
func BenchmarkFrameWrite64K(b *testing.B) { benchWrite(b, bigBody) }
