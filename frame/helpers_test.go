package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// fr builds an expected frame: command, body ("" for none) and header
// entries as alternating keys and values.
func fr(cmd, body string, kv ...string) *Frame {
	f := New(cmd, kv...)
	if body != "" {
		f.Body = []byte(body)
	}
	return f
}

// hb is an expected heart-beat.
func hb() *Frame { return &Frame{} }

// render shows a frame exactly: command, every header entry in order and
// the body, all quoted.
func render(f *Frame) string {
	if f == nil {
		return "<nil>"
	}
	if f.IsHeartBeat() {
		return "<heart-beat>"
	}
	var b strings.Builder
	b.WriteString(f.Command)
	for k, v := range f.Header.All() {
		fmt.Fprintf(&b, " %q:%q", k, v)
	}
	fmt.Fprintf(&b, " body=%q", f.Body)
	return b.String()
}

// diffFrame says how got differs from want, or "" when they are the same
// frame: command, header entries in order, body. With noLength the
// content-length entries are left out of the comparison (a Writer
// recomputes them).
func diffFrame(got, want *Frame, noLength bool) string {
	entries := func(f *Frame) []field {
		var out []field
		for k, v := range f.Header.All() {
			if noLength && k == HdrContentLength {
				continue
			}
			out = append(out, field{k, v})
		}
		return out
	}
	if got.Command != want.Command || !bytes.Equal(got.Body, want.Body) ||
		fmt.Sprint(entries(got)) != fmt.Sprint(entries(want)) {
		return fmt.Sprintf("got  %s\nwant %s", render(got), render(want))
	}
	return ""
}

// A readMode is one way of feeding bytes to a Reader: all at once, or cut
// into pieces, with a large or a tiny bufio buffer.
type readMode struct {
	name  string
	split bool // EOLs after a NUL may arrive alone and be seen as heart-beats
	make  func(in string) *Reader
}

var readModes = []readMode{
	{"whole", false, func(in string) *Reader { return NewReader(strings.NewReader(in)) }},
	{"onebyte", true, func(in string) *Reader { return NewReader(iotest.OneByteReader(strings.NewReader(in))) }},
	{"half", true, func(in string) *Reader { return NewReader(iotest.HalfReader(strings.NewReader(in))) }},
	{"dataerr", false, func(in string) *Reader { return NewReader(iotest.DataErrReader(strings.NewReader(in))) }},
	{"buf16", true, func(in string) *Reader { return NewReaderSize(strings.NewReader(in), 16) }},
	{"buf16-onebyte", true, func(in string) *Reader {
		return NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16)
	}},
	// SetRelease: the buffer goes back to the pool between frames, and the
	// wait for the next one reads up to 256 bytes on the side.
	{"release", true, func(in string) *Reader { return releasing(NewReader(strings.NewReader(in))) }},
	{"release-half", true, func(in string) *Reader { return releasing(NewReader(iotest.HalfReader(strings.NewReader(in)))) }},
	{"release-dataerr", true, func(in string) *Reader {
		return releasing(NewReader(iotest.DataErrReader(strings.NewReader(in))))
	}},
	{"release-buf16", true, func(in string) *Reader { return releasing(NewReaderSize(strings.NewReader(in), 16)) }},
	// SetOwned: every frame is handed over, header block and body copied
	// out of the read buffer.
	{"owned", false, func(in string) *Reader { return owning(NewReader(strings.NewReader(in))) }},
	{"owned-half", true, func(in string) *Reader { return owning(NewReader(iotest.HalfReader(strings.NewReader(in)))) }},
	{"owned-buf16-onebyte", true, func(in string) *Reader {
		return owning(NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16))
	}},
}

// allCommands are the commands of every frame kind.
var allCommands = []string{CmdConnect, CmdStomp, CmdConnected, CmdSend, CmdSubscribe, CmdUnsubscribe,
	CmdAck, CmdNack, CmdBegin, CmdCommit, CmdAbort, CmdDisconnect, CmdMessage, CmdReceipt, CmdError}

func owning(r *Reader) *Reader {
	r.SetOwned(allCommands...)
	return r
}

func releasing(r *Reader) *Reader {
	r.SetRelease(true)
	return r
}

// readAll reads frames until the first error and returns them (cloned)
// with that error.
func readAll(r *Reader) ([]*Frame, error) {
	var out []*Frame
	for {
		f, err := r.ReadFrame()
		if err != nil {
			return out, err
		}
		out = append(out, f.Clone())
	}
}

// deepClone returns a copy of f that shares nothing with it, strings
// included (for frames read with SetViews).
func deepClone(f *Frame) *Frame {
	g := &Frame{Command: f.Command, Body: bytes.Clone(f.Body)}
	for k, v := range f.Header.All() {
		g.Header.Add(strings.Clone(k), strings.Clone(v))
	}
	return g
}

// dropHeartBeats returns fs without heart-beats.
func dropHeartBeats(fs []*Frame) []*Frame {
	var out []*Frame
	for _, f := range fs {
		if !f.IsHeartBeat() {
			out = append(out, f)
		}
	}
	return out
}

// sentinels are every error the codec may wrap, by kind.
var (
	protocolSentinels = []error{ErrUnknownCommand, ErrMalformedHeader, ErrBadEscape,
		ErrBadContentLength, ErrMissingNUL, ErrBodyNotAllowed, ErrUnencodable}
	limitSentinels = []error{ErrFrameTooLarge, ErrBodyTooLarge, ErrTooManyHeaders, ErrLineTooLong}
)

// sentinelOf returns the sentinel err wraps, after checking that it comes
// in the right wrapper: io.EOF and io.ErrUnexpectedEOF bare, the protocol
// sentinels in a *ProtocolError, the size ones in a *LimitError. It
// returns a description of the problem instead when err is none of these.
func sentinelOf(err error) (problem string, sentinel error) {
	switch err {
	case nil, io.EOF, io.ErrUnexpectedEOF:
		return "", err
	}
	for _, s := range protocolSentinels {
		if errors.Is(err, s) {
			var pe *ProtocolError
			if !errors.As(err, &pe) || pe.Err != s {
				return fmt.Sprintf("%v (%T) wraps %v but is not a *ProtocolError with Err set to it", err, err, s), nil
			}
			return "", s
		}
	}
	for _, s := range limitSentinels {
		if errors.Is(err, s) {
			var le *LimitError
			if !errors.As(err, &le) || le.Err != s {
				return fmt.Sprintf("%v (%T) wraps %v but is not a *LimitError with Err set to it", err, err, s), nil
			}
			if le.Size <= le.Limit {
				return fmt.Sprintf("%v: Size %d not over Limit %d", err, le.Size, le.Limit), nil
			}
			return "", s
		}
	}
	return fmt.Sprintf("unexpected error %v (%T)", err, err), nil
}

// repeatReader returns its bytes over and over, never io.EOF, so a
// benchmark or an allocation test reads the same frames in steady state.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}

// countWriter counts the Write calls made on it.
type countWriter struct {
	writes int
	bytes.Buffer
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// typicalMessage is the frame the allocation guards and benchmarks read
// and write: a 1.2 MESSAGE with six headers (one escaped colon) and a
// 32-byte body.
func typicalMessage() *Frame {
	return fr(CmdMessage, "0123456789abcdef0123456789abcdef",
		HdrDestination, "/queue/orders",
		HdrMessageID, "T_sub-0@@session-J0I65IpDAfsVwk0ELExaxA@@1",
		HdrSubscription, "sub-0",
		HdrAck, "ID:vm-33735-1795786894377-4:1",
		HdrContentType, "text/plain",
		HdrContentLength, "32",
	)
}

// encode writes f with a Writer of version v and content-length mode m.
func encode(t testing.TB, v Version, m ContentLengthMode, f *Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.SetVersion(v)
	w.SetContentLength(m)
	if err := w.WriteFrame(f); err != nil {
		t.Fatalf("WriteFrame(%s): %v", render(f), err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
