package frame

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// A writeCase is a frame, the version and content-length mode it is written
// in, and the exact bytes that must come out (or the error, with nothing
// written).
type writeCase struct {
	name    string
	version Version
	mode    ContentLengthMode
	f       *Frame
	want    string
	err     error
}

var writeCases = []writeCase{
	// Escaping, version by version.
	{"1.0/no-escaping", V10, ContentLengthAuto, fr("SEND", "", "k", `a\b:c`, `x\y`, "\\"), "SEND\nk:a\\b:c\nx\\y:\\\n\n\x00", nil},
	{"1.0/cr-inside-value", V10, ContentLengthAuto, fr("SEND", "", "k", "a\rb"), "SEND\nk:a\rb\n\n\x00", nil},
	{"1.0/cr-ending-name", V10, ContentLengthAuto, fr("SEND", "", "k\r", "v"), "SEND\nk\r:v\n\n\x00", nil},
	{"1.0/newline-in-value", V10, ContentLengthAuto, fr("SEND", "", "k", "a\nb"), "", ErrUnencodable},
	{"1.0/newline-in-name", V10, ContentLengthAuto, fr("SEND", "", "a\nb", "v"), "", ErrUnencodable},
	{"1.0/colon-in-name", V10, ContentLengthAuto, fr("SEND", "", "a:b", "v"), "", ErrUnencodable},
	{"1.0/cr-ending-value", V10, ContentLengthAuto, fr("SEND", "", "k", "v\r"), "", ErrUnencodable},

	{"1.1/escapes", V11, ContentLengthAuto, fr("SEND", "", "k", "a:b\nc\\d"), "SEND\nk:a\\cb\\nc\\\\d\n\n\x00", nil},
	{"1.1/escapes-in-name", V11, ContentLengthAuto, fr("SEND", "", "a:b\nc\\d", "v"), "SEND\na\\cb\\nc\\\\d:v\n\n\x00", nil},
	{"1.1/cr-not-escaped", V11, ContentLengthAuto, fr("SEND", "", "k", "a\rb"), "SEND\nk:a\rb\n\n\x00", nil},
	{"1.1/cr-ending-value", V11, ContentLengthAuto, fr("SEND", "", "k", "v\r"), "", ErrUnencodable},
	{"1.1/cr-ending-name", V11, ContentLengthAuto, fr("SEND", "", "k\r", "v"), "SEND\nk\r:v\n\n\x00", nil},

	{"1.2/escapes", V12, ContentLengthAuto, fr("SEND", "", "k", "a:b\nc\\d\re"), "SEND\nk:a\\cb\\nc\\\\d\\re\n\n\x00", nil},
	{"1.2/escapes-in-name", V12, ContentLengthAuto, fr("SEND", "", "\r\n:\\", "v"), "SEND\n\\r\\n\\c\\\\:v\n\n\x00", nil},
	{"1.2/cr-ending-value", V12, ContentLengthAuto, fr("SEND", "", "k", "v\r"), "SEND\nk:v\\r\n\n\x00", nil},
	{"1.2/only-escapes", V12, ContentLengthAuto, fr("MESSAGE", "", ":", "\\\\"), "MESSAGE\n\\c:\\\\\\\\\n\n\x00", nil},
	{"1.2/plain", V12, ContentLengthAuto, fr("SUBSCRIBE", "", "id", "0", "destination", "/queue/a", "ack", "client"),
		"SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client\n\n\x00", nil},

	// CONNECT, STOMP and CONNECTED are never escaped, in any version.
	{"1.2/CONNECT-not-escaped", V12, ContentLengthAuto, fr("CONNECT", "", "login", `a\b:c`), "CONNECT\nlogin:a\\b:c\n\n\x00", nil},
	{"1.1/STOMP-not-escaped", V11, ContentLengthAuto, fr("STOMP", "", "passcode", `p:\`), "STOMP\npasscode:p:\\\n\n\x00", nil},
	{"1.2/CONNECTED-not-escaped", V12, ContentLengthAuto, fr("CONNECTED", "", "session", "ID:vm:1"), "CONNECTED\nsession:ID:vm:1\n\n\x00", nil},
	{"1.2/CONNECTED-cr-inside-value", V12, ContentLengthAuto, fr("CONNECTED", "", "server", "a\rb"), "CONNECTED\nserver:a\rb\n\n\x00", nil},
	{"1.2/CONNECT-newline", V12, ContentLengthAuto, fr("CONNECT", "", "login", "a\nb"), "", ErrUnencodable},
	{"1.2/CONNECT-colon-in-name", V12, ContentLengthAuto, fr("CONNECT", "", "a:b", "v"), "", ErrUnencodable},
	{"1.2/CONNECTED-cr-ending-value", V12, ContentLengthAuto, fr("CONNECTED", "", "k", "v\r"), "", ErrUnencodable},

	// Headers: order and repeats kept, nothing trimmed.
	{"repeats-in-order", V12, ContentLengthAuto, fr("MESSAGE", "", "b", "1", "a", "2", "b", "3"), "MESSAGE\nb:1\na:2\nb:3\n\n\x00", nil},
	{"spaces-kept", V12, ContentLengthAuto, fr("SEND", "", " k ", " v "), "SEND\n k : v \n\n\x00", nil},
	{"empty-value", V12, ContentLengthAuto, fr("SEND", "", "k", ""), "SEND\nk:\n\n\x00", nil},
	{"empty-name", V12, ContentLengthAuto, fr("SEND", "", "", "v"), "", ErrMalformedHeader},
	{"empty-name-1.0", V10, ContentLengthAuto, fr("SEND", "", "", ""), "", ErrMalformedHeader},

	// Commands and bodies.
	{"unknown-command", V12, ContentLengthAuto, fr("FOO", ""), "", ErrUnknownCommand},
	{"empty-command", V12, ContentLengthAuto, fr("", ""), "", ErrUnknownCommand},
	{"lower-case-command", V12, ContentLengthAuto, fr("send", ""), "", ErrUnknownCommand},
	{"body-on-SUBSCRIBE", V12, ContentLengthAuto, fr("SUBSCRIBE", "x", "id", "1"), "", ErrBodyNotAllowed},
	{"body-on-CONNECT", V10, ContentLengthAlways, fr("CONNECT", "x"), "", ErrBodyNotAllowed},
	{"body-on-ACK-never", V12, ContentLengthNever, fr("ACK", "\x00"), "", ErrBodyNotAllowed},
	{"empty-body-on-SUBSCRIBE", V12, ContentLengthAuto, &Frame{Command: "SUBSCRIBE", Body: []byte{}}, "SUBSCRIBE\n\n\x00", nil},
	{"body-on-ERROR", V12, ContentLengthAuto, fr("ERROR", "oops\n", "message", "m"), "ERROR\nmessage:m\n\noops\n\x00", nil},

	// content-length, mode by mode: Auto adds it when the body holds a NUL or
	// the header asks for it, always with the body's real length.
	{"auto/none", V12, ContentLengthAuto, fr("SEND", "hello", "destination", "/q"), "SEND\ndestination:/q\n\nhello\x00", nil},
	{"auto/nul-in-body", V12, ContentLengthAuto, fr("SEND", "a\x00b", "destination", "/q"), "SEND\ndestination:/q\ncontent-length:3\n\na\x00b\x00", nil},
	{"auto/asked", V12, ContentLengthAuto, fr("SEND", "hello", "content-length", "5", "destination", "/q"), "SEND\ndestination:/q\ncontent-length:5\n\nhello\x00", nil},
	{"auto/stale", V12, ContentLengthAuto, fr("SEND", "hello", "content-length", "999", "destination", "/q"), "SEND\ndestination:/q\ncontent-length:5\n\nhello\x00", nil},
	{"auto/bad-value-replaced", V12, ContentLengthAuto, fr("MESSAGE", "hi", "content-length", "-x"), "MESSAGE\ncontent-length:2\n\nhi\x00", nil},
	{"auto/repeated-replaced-once", V12, ContentLengthAuto, fr("SEND", "hi", "content-length", "1", "content-length", "2"), "SEND\ncontent-length:2\n\nhi\x00", nil},
	{"auto/asked-empty-body", V12, ContentLengthAuto, fr("SEND", "", "content-length", "7"), "SEND\ncontent-length:0\n\n\x00", nil},
	{"auto/on-bodyless-dropped", V12, ContentLengthAuto, fr("SUBSCRIBE", "", "content-length", "0", "id", "1"), "SUBSCRIBE\nid:1\n\n\x00", nil},
	{"always/empty-body", V12, ContentLengthAlways, fr("SEND", "", "destination", "/q"), "SEND\ndestination:/q\ncontent-length:0\n\n\x00", nil},
	{"always/body", V10, ContentLengthAlways, fr("MESSAGE", "hello"), "MESSAGE\ncontent-length:5\n\nhello\x00", nil},
	{"always/stale", V11, ContentLengthAlways, fr("ERROR", "abc", "content-length", "1"), "ERROR\ncontent-length:3\n\nabc\x00", nil},
	{"always/bodyless", V12, ContentLengthAlways, fr("RECEIPT", "", "receipt-id", "7", "content-length", "0"), "RECEIPT\nreceipt-id:7\n\n\x00", nil},
	{"always/CONNECT", V12, ContentLengthAlways, fr("CONNECT", "", "accept-version", "1.2"), "CONNECT\naccept-version:1.2\n\n\x00", nil},
	{"never/plain", V12, ContentLengthNever, fr("SEND", "hello", "content-length", "5"), "SEND\n\nhello\x00", nil},
	{"never/nul-in-body", V12, ContentLengthNever, fr("SEND", "a\x00b"), "", ErrUnencodable},
}

// TestWriteFrame checks the exact bytes of every case, and that a frame
// the Writer refuses leaves nothing in the buffer, not even after a good
// frame.
func TestWriteFrame(t *testing.T) {
	for _, tc := range writeCases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			w.SetVersion(tc.version)
			w.SetContentLength(tc.mode)
			err := w.WriteFrame(tc.f)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				if problem, _ := sentinelOf(err); problem != "" {
					t.Fatal(problem)
				}
				if w.Buffered() != 0 {
					t.Fatalf("refused frame left %d bytes in the buffer", w.Buffered())
				}
				// After a good frame, a refused one adds nothing either.
				good := fr("SEND", "x")
				if err := w.WriteFrame(good); err != nil {
					t.Fatal(err)
				}
				n := w.Buffered()
				if err := w.WriteFrame(tc.f); err == nil {
					t.Fatal("refused once, accepted the second time")
				}
				if w.Buffered() != n {
					t.Fatalf("refused frame changed the buffer from %d to %d bytes", n, w.Buffered())
				}
				if err := w.Flush(); err != nil || buf.String() != string(encode(t, tc.version, tc.mode, good)) {
					t.Fatalf("flushed %q (%v)", buf.String(), err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if buf.Len() != 0 {
				t.Fatal("WriteFrame wrote through before Flush")
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tc.want {
				t.Fatalf("wrote\n%q\nwant\n%q", got, tc.want)
			}
			// What was written reads back as the same frame.
			r := NewReader(strings.NewReader(tc.want))
			r.SetVersion(tc.version)
			g, err := r.ReadFrame()
			if err != nil {
				t.Fatalf("reading it back: %v", err)
			}
			if d := diffFrame(g, tc.f, true); d != "" {
				t.Fatalf("reads back differently:\n%s", d)
			}
		})
	}
}

func TestWriteFrameErrorDetails(t *testing.T) {
	w := NewWriter(io.Discard)
	err := w.WriteFrame(fr("SEND", "", "k", "a\nb"))
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("err %v (%T), want a *ProtocolError", err, err)
	}
	want := ProtocolError{Err: ErrUnencodable, Command: "SEND", Detail: `"k:a\nb"`}
	if *pe != want {
		t.Errorf("got %#v, want %#v", *pe, want)
	}
	if got, want := err.Error(), `frame: cannot be encoded in this version "k:a\nb" in SEND frame at byte 0`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = w.WriteFrame(fr("BOGUS", ""))
	if !errors.As(err, &pe) || pe.Err != ErrUnknownCommand || pe.Detail != `"BOGUS"` {
		t.Errorf("unknown command: %v", err)
	}
}

// TestWriterBatching: frames stay in the buffer until Flush, which writes
// them all with one Write on the underlying writer.
func TestWriterBatching(t *testing.T) {
	var cw countWriter
	w := NewWriter(&cw)
	w.SetVersion(V12)
	f := typicalMessage()
	if err := w.WriteHeartBeat(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := w.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if cw.writes != 0 {
		t.Fatalf("%d writes before Flush", cw.writes)
	}
	buffered := w.Buffered()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if cw.writes != 1 {
		t.Fatalf("Flush of 100 frames made %d writes, want 1", cw.writes)
	}
	if cw.Len() != buffered || w.Buffered() != 0 {
		t.Fatalf("flushed %d of %d buffered bytes; %d left", cw.Len(), buffered, w.Buffered())
	}
	// They read back as a heart-beat and 100 frames.
	r := NewReader(&cw)
	r.SetVersion(V12)
	fs, err := readAll(r)
	if err != io.EOF || len(fs) != 101 || !fs[0].IsHeartBeat() {
		t.Fatalf("read back %d frames, %v", len(fs), err)
	}
	for _, g := range fs[1:] {
		if d := diffFrame(g, f, false); d != "" {
			t.Fatal(d)
		}
	}
	// An empty Flush writes nothing.
	if err := w.Flush(); err != nil || cw.writes != 1 {
		t.Fatalf("empty Flush: %d writes, %v", cw.writes, err)
	}
}

// TestWriterBufferFull: a frame larger than the buffer is written through
// as the buffer fills, and whole.
func TestWriterBufferFull(t *testing.T) {
	var cw countWriter
	w := NewWriterSize(&cw, 64)
	body := strings.Repeat("b", 1000)
	if err := w.WriteFrame(fr("SEND", body, "destination", "/q")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := cw.String(), "SEND\ndestination:/q\n\n"+body+"\x00"; got != want {
		t.Fatalf("wrote %d bytes, want %d", len(got), len(want))
	}
}

// TestWriterError: an error of the underlying writer comes back from Flush
// (or from WriteFrame once the buffer fills).
func TestWriterError(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriterSize(errWriter{boom}, 16)
	err := w.WriteFrame(fr("SEND", strings.Repeat("x", 100)))
	if err != boom {
		t.Errorf("WriteFrame over a failing writer: %v, want %v", err, boom)
	}
	w = NewWriter(errWriter{boom})
	if err := w.WriteFrame(fr("SEND", "x")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != boom {
		t.Errorf("Flush: %v, want %v", err, boom)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }

func TestWriterSettings(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	if w.Version() != V10 {
		t.Errorf("default version %q, want 1.0", w.Version())
	}
	// The default mode is Auto: no content-length without a NUL.
	if err := w.WriteFrame(fr("SEND", "x")); err != nil {
		t.Fatal(err)
	}
	w.SetVersion(V11)
	if w.Version() != V11 {
		t.Errorf("version %q after SetVersion(1.1)", w.Version())
	}
	if err := w.WriteHeartBeat(); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if got, want := buf.String(), "SEND\n\nx\x00\n"; got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

// TestWriteFrameAllocs: writing costs no allocation, whatever the version,
// escaping and content-length.
func TestWriteFrameAllocs(t *testing.T) {
	cases := []struct {
		name string
		v    Version
		mode ContentLengthMode
		f    *Frame
	}{
		{"typical-message", V12, ContentLengthAuto, typicalMessage()},
		{"typical-message-always", V12, ContentLengthAlways, typicalMessage()},
		{"escaping-1.2", V12, ContentLengthAuto, fr("MESSAGE", "a\x00b", "k:\n", "a:b\\c\rd")},
		{"escaping-1.1", V11, ContentLengthNever, fr("SEND", "body", "k:\n", "a:b\\c\rd")},
		{"connect", V12, ContentLengthAuto, fr("CONNECT", "", "accept-version", "1.0,1.1,1.2", "host", "/", "login", "guest", "passcode", "guest")},
		{"64k", V12, ContentLengthAlways, fr("MESSAGE", strings.Repeat("x", 64<<10), "destination", "/q")},
		{"a-long-command-name", V12, ContentLengthAlways, fr("UNSUBSCRIBE", "", "id", "1")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := NewWriter(io.Discard)
			w.SetVersion(tc.v)
			w.SetContentLength(tc.mode)
			allocs := testing.AllocsPerRun(1000, func() {
				if err := w.WriteFrame(tc.f); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per frame, want 0", allocs)
			}
		})
	}
	// WriteHeartBeat and Flush do not allocate either.
	w := NewWriter(io.Discard)
	if a := testing.AllocsPerRun(100, func() { w.WriteHeartBeat(); w.Flush() }); a != 0 {
		t.Errorf("heart-beat and Flush: %v allocations", a)
	}
}

// TestRoundTrip writes frames in every version and mode and reads them
// back: the Reader and the Writer agree.
func TestRoundTrip(t *testing.T) {
	frames := []*Frame{
		typicalMessage(),
		fr("SEND", "a\x00b\x00", "destination", "/q", "x", "\\:"),
		fr("MESSAGE", strings.Repeat("z", 70000), "destination", "/q"),
		fr("ERROR", "", "message", " spaced "),
		fr("CONNECTED", "", "version", "1.2", "session", "ID:a:b", "heart-beat", "0,0"),
		fr("CONNECT", "", "accept-version", "1.0,1.1,1.2", "passcode", `p\w:d`),
		fr("SUBSCRIBE", "", "id", "0", "destination", "/q", "id", "1"),
		fr("ACK", "", "id", "a\\cb"),
		fr("DISCONNECT", "", "receipt", "77"),
		fr("RECEIPT", "", "receipt-id", "77"),
		fr("SEND", "", "k", "x\ry"),
		fr("SEND", "", "k\r", "v"),
		fr("SEND", "", "k", "v\r"),
	}
	for _, v := range versions {
		for _, f := range frames {
			roundTrip(t, v, f)
		}
	}
	// Newlines and colons anywhere, from 1.1 on.
	for _, v := range []Version{V11, V12} {
		roundTrip(t, v, fr("MESSAGE", "", "a:b\nc", "\n:\\"))
	}
}

// TestWriterScratch: the scratch for the header block is reused, and not
// kept once a frame has made it huge.
func TestWriterScratch(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.WriteFrame(fr("SEND", "", "k", strings.Repeat("v", 2*maxScratch))); err != nil {
		t.Fatal(err)
	}
	if cap(w.head) > maxScratch {
		t.Errorf("kept a %d-byte scratch, more than %d", cap(w.head), maxScratch)
	}
	if err := w.WriteFrame(typicalMessage()); err != nil {
		t.Fatal(err)
	}
	if cap(w.head) == 0 {
		t.Error("scratch not kept after a small frame")
	}
}

// TestWriterBigBodyStraightThrough: a body larger than the buffer goes to
// the underlying writer in one piece, after what was buffered.
func TestWriterBigBodyStraightThrough(t *testing.T) {
	var cw countWriter
	w := NewWriterSize(&cw, 64)
	body := strings.Repeat("b", 1000)
	w.WriteFrame(fr("SEND", "", "destination", "/small"))
	w.WriteFrame(fr("SEND", body, "destination", "/big"))
	w.Flush()
	// buffered frame and headers; the body; the NUL.
	if cw.writes != 3 {
		t.Errorf("%d writes, want 3", cw.writes)
	}
	if got, want := cw.String(), "SEND\ndestination:/small\n\n\x00SEND\ndestination:/big\n\n"+body+"\x00"; got != want {
		t.Errorf("wrote %q", got)
	}
}

// TestCheckHeader: CheckHeader agrees with what WriteFrame refuses.
func TestCheckHeader(t *testing.T) {
	cases := []struct {
		key, value string
		bad        map[Version]error // nil entry: fine in that version
	}{
		{"k", "v", nil},
		{"", "v", map[Version]error{V10: ErrMalformedHeader, V11: ErrMalformedHeader, V12: ErrMalformedHeader}},
		{"k", "a\nb", map[Version]error{V10: ErrUnencodable}},
		{"k:1", "v", map[Version]error{V10: ErrUnencodable}},
		{"k\n", "v", map[Version]error{V10: ErrUnencodable}},
		{"k", "v\r", map[Version]error{V10: ErrUnencodable, V11: ErrUnencodable}},
		{"k\r", "v", nil},
		{"k", "a\rb:c\\d", nil},
	}
	for _, c := range cases {
		for _, v := range []Version{V10, V11, V12} {
			err := CheckHeader(v, c.key, c.value)
			want := c.bad[v]
			if want == nil && err != nil || want != nil && !errors.Is(err, want) {
				t.Errorf("CheckHeader(%s, %q, %q) = %v, want %v", v, c.key, c.value, err, want)
			}
			w := NewWriter(io.Discard)
			w.SetVersion(v)
			werr := w.WriteFrame(New(CmdMessage, c.key, c.value))
			if (werr == nil) != (err == nil) {
				t.Errorf("%s %q:%q: CheckHeader %v but WriteFrame %v", v, c.key, c.value, err, werr)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = CheckHeader(V12, "key", "value") }); n != 0 {
		t.Errorf("CheckHeader allocates %v times", n)
	}
}

// TestEncoderAppend checks that Encoder.Append produces exactly the bytes
// of every write case, after what dst already holds, and leaves dst as it
// was when it refuses a frame; and that WriteEncoded passes them through.
func TestEncoderAppend(t *testing.T) {
	const prefix = "SEND\n\nbefore\x00"
	for _, tc := range writeCases {
		t.Run(tc.name, func(t *testing.T) {
			dst := append(make([]byte, 0, 4), prefix...)
			got, err := Encoder{Version: tc.version, ContentLength: tc.mode}.Append(dst, tc.f)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				if string(got) != prefix {
					t.Fatalf("refused frame changed dst to %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != prefix+tc.want {
				t.Fatalf("appended\n%q\nwant\n%q", got[len(prefix):], tc.want)
			}
			var buf bytes.Buffer
			w := NewWriter(&buf)
			if err := w.WriteFrame(fr("SEND", "x")); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteEncoded(got); err != nil {
				t.Fatal(err)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if want := "SEND\n\nx\x00" + prefix + tc.want; buf.String() != want {
				t.Fatalf("WriteEncoded wrote\n%q\nwant\n%q", buf.String(), want)
			}
		})
	}
}

func TestEncoderAppendAllocs(t *testing.T) {
	f := fr("SEND", "hello", "destination", "/queue/a")
	dst := make([]byte, 0, 256)
	e := Encoder{Version: V12, ContentLength: ContentLengthAlways}
	if n := testing.AllocsPerRun(100, func() {
		var err error
		if dst, err = e.Append(dst[:0], f); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per Append into a slice with room, want 0", n)
	}
}

// TestNeedsEscape checks the word-at-a-time scan against the byte table
// for every special byte at every position of strings up to 40 bytes, and
// bytes next to the special ones.
func TestNeedsEscape(t *testing.T) {
	slow := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if escapeOf[s[i]] != 0 {
				return true
			}
		}
		return false
	}
	for n := 0; n <= 40; n++ {
		clean := strings.Repeat("a", n)
		if needsEscape(clean) {
			t.Fatalf("needsEscape(%q) = true", clean)
		}
		for i := range n {
			for _, c := range []byte{'\\', '\n', ':', '\r', 0, 0x09, 0x0b, 0x0c, 0x0e, 0x39, 0x3b, 0x5b, 0x5d, 0x80, 0xdc, 0xba, 0xff} {
				b := []byte(clean)
				b[i] = c
				if got, want := needsEscape(string(b)), slow(string(b)); got != want {
					t.Fatalf("needsEscape(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}
