package frame

import (
	"io"
	"strings"
	"testing"
)

// benchRead reads the frame f, written in 1.2 with content-length, over and
// over from an endless in-memory stream, and touches its destination and
// body as a consumer would.
func benchRead(b *testing.B, f *Frame, owned ...string) {
	wire := encode(b, V12, ContentLengthAlways, f)
	r := NewReader(&repeatReader{b: wire})
	r.SetVersion(V12)
	r.SetOwned(owned...)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		g, err := r.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if g.Header.Get(HdrDestination) == "" || len(g.Body) != len(f.Body) {
			b.Fatalf("read %s", g)
		}
	}
}

// benchWrite writes f in 1.2 with content-length to io.Discard, flushing
// after every frame.
func benchWrite(b *testing.B, f *Frame) {
	w := NewWriter(io.Discard)
	w.SetVersion(V12)
	w.SetContentLength(ContentLengthAlways)
	b.SetBytes(int64(len(encode(b, V12, ContentLengthAlways, f))))
	b.ReportAllocs()
	for b.Loop() {
		if err := w.WriteFrame(f); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

// bigMessage is a MESSAGE with a 64 KiB body, larger than the Reader's
// buffer.
func bigMessage() *Frame {
	f := typicalMessage()
	f.Body = []byte(strings.Repeat("0123456789abcdef", 4<<10))
	return f
}

// BenchmarkFrameRead reads a typical MESSAGE: six headers, a 32-byte body.
func BenchmarkFrameRead(b *testing.B) { benchRead(b, typicalMessage()) }

// BenchmarkFrameReadOwned reads a typical MESSAGE handed over (SetOwned):
// what a client that keeps every message pays.
func BenchmarkFrameReadOwned(b *testing.B) { benchRead(b, typicalMessage(), CmdMessage) }

// BenchmarkFrameRead64K reads a MESSAGE with a 64 KiB body.
func BenchmarkFrameRead64K(b *testing.B) { benchRead(b, bigMessage()) }

// BenchmarkFrameWrite writes a typical MESSAGE.
func BenchmarkFrameWrite(b *testing.B) { benchWrite(b, typicalMessage()) }

// BenchmarkFrameWrite64K writes a MESSAGE with a 64 KiB body.
func BenchmarkFrameWrite64K(b *testing.B) { benchWrite(b, bigMessage()) }
