package frame

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

// A readCase is a byte stream, the version it is read in, the frames it
// holds (heart-beats included, as a Reader that gets the whole stream at
// once reports them) and the error that ends it (nil: a clean io.EOF).
type readCase struct {
	name    string
	version Version
	in      string
	want    []*Frame
	err     error
}

// bigValue and bigBody are longer than the 16-byte buffer of the small
// read modes, so that lines and bodies cross many buffer refills.
var (
	bigValue = strings.Repeat("v", 1000)
	bigBody  = strings.Repeat("0123456789", 100) + "\n" + strings.Repeat("x", 999)
)

var readCases = []readCase{
	// Escaping, version by version.
	{"1.0/backslash-n-literal", V10, "SEND\nk:a\\nb\n\n\x00", []*Frame{fr("SEND", "", "k", `a\nb`)}, nil},
	{"1.0/backslash-c-literal", V10, "SEND\nk:a\\cb\n\n\x00", []*Frame{fr("SEND", "", "k", `a\cb`)}, nil},
	{"1.0/backslash-r-literal", V10, "SEND\nk:a\\rb\n\n\x00", []*Frame{fr("SEND", "", "k", `a\rb`)}, nil},
	{"1.0/undefined-escape-literal", V10, "SEND\nk:a\\tb\n\n\x00", []*Frame{fr("SEND", "", "k", `a\tb`)}, nil},
	{"1.0/trailing-backslash-literal", V10, "SEND\nk\\:v\\\n\n\x00", []*Frame{fr("SEND", "", `k\`, `v\`)}, nil},
	{"1.0/colon-in-value", V10, "SEND\nk:a:b\n\n\x00", []*Frame{fr("SEND", "", "k", "a:b")}, nil},

	{"1.1/backslash-n", V11, "SEND\nk:a\\nb\n\n\x00", []*Frame{fr("SEND", "", "k", "a\nb")}, nil},
	{"1.1/backslash-c", V11, "SEND\nk:a\\cb\n\n\x00", []*Frame{fr("SEND", "", "k", "a:b")}, nil},
	{"1.1/backslash-backslash", V11, "SEND\nk:a\\\\b\n\n\x00", []*Frame{fr("SEND", "", "k", `a\b`)}, nil},
	{"1.1/escaped-backslash-then-n", V11, "SEND\nk:\\\\n\n\n\x00", []*Frame{fr("SEND", "", "k", `\n`)}, nil},
	{"1.1/escapes-in-name", V11, "SEND\na\\cb\\nc\\\\d:v\n\n\x00", []*Frame{fr("SEND", "", "a:b\nc\\d", "v")}, nil},
	{"1.1/all-escapes", V11, "SEND\n\\c\\n\\\\:\\\\\\n\\c\n\n\x00", []*Frame{fr("SEND", "", ":\n\\", "\\\n:")}, nil},
	{"1.1/backslash-r-undefined", V11, "SEND\nk:a\\rb\n\n\x00", nil, ErrBadEscape},
	{"1.1/backslash-t-undefined", V11, "SEND\nk:a\\tb\n\n\x00", nil, ErrBadEscape},
	{"1.1/trailing-backslash-value", V11, "SEND\nk:a\\\n\n\x00", nil, ErrBadEscape},
	{"1.1/trailing-backslash-name", V11, "SEND\nk\\:v\n\n\x00", nil, ErrBadEscape},
	{"1.1/undefined-escape-name", V11, "SEND\n\\x:v\n\n\x00", nil, ErrBadEscape},

	{"1.2/backslash-r", V12, "SEND\nk:a\\rb\n\n\x00", []*Frame{fr("SEND", "", "k", "a\rb")}, nil},
	{"1.2/backslash-n", V12, "SEND\nk:a\\nb\n\n\x00", []*Frame{fr("SEND", "", "k", "a\nb")}, nil},
	{"1.2/backslash-c", V12, "SEND\nk:a\\cb\n\n\x00", []*Frame{fr("SEND", "", "k", "a:b")}, nil},
	{"1.2/backslash-backslash", V12, "SEND\nk:a\\\\b\n\n\x00", []*Frame{fr("SEND", "", "k", `a\b`)}, nil},
	{"1.2/escapes-in-name", V12, "SEND\n\\r\\n\\c\\\\:v\n\n\x00", []*Frame{fr("SEND", "", "\r\n:\\", "v")}, nil},
	{"1.2/escaped-cr-at-end", V12, "SEND\nk:v\\r\r\n\r\n\x00", []*Frame{fr("SEND", "", "k", "v\r")}, nil},
	{"1.2/backslash-t-undefined", V12, "SEND\nk:a\\tb\n\n\x00", nil, ErrBadEscape},
	{"1.2/backslash-C-undefined", V12, "SEND\nk:a\\Cb\n\n\x00", nil, ErrBadEscape},
	{"1.2/trailing-backslash", V12, "SEND\nk:ab\\\n\n\x00", nil, ErrBadEscape},
	{"1.2/lone-backslash", V12, "SEND\nk:\\\n\n\x00", nil, ErrBadEscape},
	{"1.2/bad-escape-in-later-frame", V12, "SEND\nk:\\c\n\n\x00SEND\nk:\\t\n\n\x00", []*Frame{fr("SEND", "", "k", ":")}, ErrBadEscape},
	// Lenient where the grammar is not: a raw colon in a value is kept.
	{"1.2/raw-colon-in-value", V12, "SEND\nk:a:b\n\n\x00", []*Frame{fr("SEND", "", "k", "a:b")}, nil},
	{"1.2/raw-cr-in-value", V12, "SEND\nk:a\rb\n\n\x00", []*Frame{fr("SEND", "", "k", "a\rb")}, nil},

	// CONNECT, STOMP and CONNECTED are never unescaped.
	{"1.1/CONNECT-not-unescaped", V11, "CONNECT\nlogin:a\\cb\\n\\t\\\n\n\x00", []*Frame{fr("CONNECT", "", "login", `a\cb\n\t\`)}, nil},
	{"1.2/CONNECT-not-unescaped", V12, "CONNECT\nlogin:a\\cb\\r\\t\\\n\n\x00", []*Frame{fr("CONNECT", "", "login", `a\cb\r\t\`)}, nil},
	{"1.2/STOMP-not-unescaped", V12, "STOMP\npasscode:p\\q\\\n\n\x00", []*Frame{fr("STOMP", "", "passcode", `p\q\`)}, nil},
	{"1.1/CONNECTED-not-unescaped", V11, "CONNECTED\nsession:ID:vm:1\\c2\n\n\x00", []*Frame{fr("CONNECTED", "", "session", `ID:vm:1\c2`)}, nil},
	{"1.2/CONNECTED-not-unescaped", V12, "CONNECTED\nsession:ID:vm:1\\r\\x\n\n\x00", []*Frame{fr("CONNECTED", "", "session", `ID:vm:1\r\x`)}, nil},
	{"1.2/CONNECTED-then-MESSAGE", V12, "CONNECTED\nk:\\c\n\n\x00MESSAGE\nk:\\c\n\n\x00",
		[]*Frame{fr("CONNECTED", "", "k", `\c`), fr("MESSAGE", "", "k", ":")}, nil},

	// Line endings.
	{"crlf", V12, "SEND\r\nk:v\r\ncontent-length:1\r\n\r\nb\x00\r\n",
		[]*Frame{fr("SEND", "b", "k", "v", "content-length", "1")}, nil},
	{"mixed-eol", V12, "SEND\r\nk:v\n\r\nb\x00", []*Frame{fr("SEND", "b", "k", "v")}, nil},
	{"crlf-1.0", V10, "MESSAGE\r\nk:v\r\n\r\n\x00", []*Frame{fr("MESSAGE", "", "k", "v")}, nil},
	{"cr-kept-before-crlf", V10, "SEND\nk:v\r\r\n\n\x00", []*Frame{fr("SEND", "", "k", "v\r")}, nil},
	{"cr-in-body-kept", V12, "SEND\n\r\nline\r\n\x00", []*Frame{fr("SEND", "line\r\n")}, nil},
	{"lone-cr-before-command", V12, "\rSEND\n\n\x00", nil, ErrUnknownCommand},
	{"lone-cr-after-frame", V12, "SEND\n\n\x00\rSEND\n\n\x00", []*Frame{fr("SEND", "")}, ErrUnknownCommand},
	{"cr-cr-lf", V12, "\r\r\n", nil, ErrUnknownCommand},
	{"lone-cr-eof", V12, "\r", nil, io.ErrUnexpectedEOF},

	// Heart-beats: one or more EOLs between frames is one heart-beat; EOLs
	// buffered right after a NUL are part of that frame.
	{"heart-beat/lf", V12, "\n", []*Frame{hb()}, nil},
	{"heart-beat/crlf", V12, "\r\n", []*Frame{hb()}, nil},
	{"heart-beat/many", V12, "\n\n\r\n\n\r\n", []*Frame{hb()}, nil},
	{"heart-beat/before-frame", V12, "\n\r\nSEND\n\n\x00", []*Frame{hb(), fr("SEND", "")}, nil},
	{"heart-beat/eols-after-nul", V12, "SEND\n\n\x00\n\n\r\nSEND\n\n\x00\n", []*Frame{fr("SEND", ""), fr("SEND", "")}, nil},
	{"heart-beat/before-eof-inside-frame", V12, "\nSEND\n", []*Frame{hb()}, io.ErrUnexpectedEOF},

	// Headers: repeats kept in order, nothing trimmed.
	{"repeated-headers", V12, "MESSAGE\nfoo:1\nbar:x\nfoo:2\nfoo:3\n\n\x00",
		[]*Frame{fr("MESSAGE", "", "foo", "1", "bar", "x", "foo", "2", "foo", "3")}, nil},
	{"spaces-kept", V12, "SEND\n k : v \nk2:\t\n\n\x00", []*Frame{fr("SEND", "", " k ", " v ", "k2", "\t")}, nil},
	{"spaces-kept-1.0", V10, "SEND\n k : v \n\n\x00", []*Frame{fr("SEND", "", " k ", " v ")}, nil},
	{"empty-value", V12, "SEND\nk:\n\n\x00", []*Frame{fr("SEND", "", "k", "")}, nil},
	{"case-sensitive-names", V12, "SEND\nK:1\nk:2\n\n\x00", []*Frame{fr("SEND", "", "K", "1", "k", "2")}, nil},
	{"no-headers", V12, "DISCONNECT\n\n\x00", []*Frame{fr("DISCONNECT", "")}, nil},
	{"utf8", V12, "SEND\nnom:café ☕\n\nkaffee ☕\x00", []*Frame{fr("SEND", "kaffee ☕", "nom", "café ☕")}, nil},
	{"nul-in-header", V12, "SEND\nk:a\x00b\n\n\x00", []*Frame{fr("SEND", "", "k", "a\x00b")}, nil},
	{"header-without-colon", V12, "SEND\nfoo\n\n\x00", nil, ErrMalformedHeader},
	{"header-without-colon-1.0", V10, "SEND\nfoo\n\n\x00", nil, ErrMalformedHeader},
	{"header-empty-name", V12, "SEND\n:v\n\n\x00", nil, ErrMalformedHeader},
	{"header-empty-name-1.0", V10, "SEND\n:v\n\n\x00", nil, ErrMalformedHeader},
	{"header-only-colon", V12, "SEND\n:\n\n\x00", nil, ErrMalformedHeader},
	{"header-space-line", V12, "SEND\n \n\n\x00", nil, ErrMalformedHeader},
	{"big-value", V12, "SEND\nk:" + bigValue + "\n\n\x00", []*Frame{fr("SEND", "", "k", bigValue)}, nil},
	{"big-escaped-value", V12, "SEND\nk:" + strings.Repeat(`\c`, 500) + "\n\n\x00", []*Frame{fr("SEND", "", "k", strings.Repeat(":", 500))}, nil},

	// Bodies.
	{"body-to-nul", V12, "SEND\n\nhello\x00", []*Frame{fr("SEND", "hello")}, nil},
	{"body-with-eols", V12, "SEND\n\n\nhello\n\n\x00", []*Frame{fr("SEND", "\nhello\n\n")}, nil},
	{"content-length", V12, "SEND\ncontent-length:5\n\nhello\x00", []*Frame{fr("SEND", "hello", "content-length", "5")}, nil},
	{"content-length-nuls", V12, "SEND\ncontent-length:5\n\na\x00b\x00c\x00", []*Frame{fr("SEND", "a\x00b\x00c", "content-length", "5")}, nil},
	{"content-length-all-nul", V12, "MESSAGE\ncontent-length:3\n\n\x00\x00\x00\x00\n", []*Frame{fr("MESSAGE", "\x00\x00\x00", "content-length", "3")}, nil},
	{"content-length-zero", V12, "SEND\ncontent-length:0\n\n\x00", []*Frame{fr("SEND", "", "content-length", "0")}, nil},
	{"content-length-leading-zeros", V12, "SEND\ncontent-length:007\n\n1234567\x00", []*Frame{fr("SEND", "1234567", "content-length", "007")}, nil},
	{"content-length-first-wins", V12, "SEND\ncontent-length:3\ncontent-length:5\n\nabc\x00",
		[]*Frame{fr("SEND", "abc", "content-length", "3", "content-length", "5")}, nil},
	{"content-length-escaped-name", V12, "SEND\ncontent\\c:1\n\nab\x00", []*Frame{fr("SEND", "ab", "content:", "1")}, nil},
	{"content-length-1.0", V10, "ERROR\ncontent-length:2\n\n\x00\x00\x00", []*Frame{fr("ERROR", "\x00\x00", "content-length", "2")}, nil},
	{"content-length-missing-nul", V12, "SEND\ncontent-length:3\n\nabcd\x00", nil, ErrMissingNUL},
	{"content-length-too-short-in-stream", V12, "SEND\ncontent-length:10\n\nabc", nil, io.ErrUnexpectedEOF},
	{"content-length-nul-missing-at-eof", V12, "SEND\ncontent-length:3\n\nabc", nil, io.ErrUnexpectedEOF},
	{"content-length-negative", V12, "SEND\ncontent-length:-1\n\n\x00", nil, ErrBadContentLength},
	{"content-length-plus", V12, "SEND\ncontent-length:+1\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-empty", V12, "SEND\ncontent-length:\n\n\x00", nil, ErrBadContentLength},
	{"content-length-letters", V12, "SEND\ncontent-length:abc\n\n\x00", nil, ErrBadContentLength},
	{"content-length-hex", V12, "SEND\ncontent-length:0x1\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-trailing-junk", V12, "SEND\ncontent-length:1a\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-decimal-point", V12, "SEND\ncontent-length:1.0\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-leading-space", V12, "SEND\ncontent-length: 1\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-trailing-space", V12, "SEND\ncontent-length:1 \n\nx\x00", nil, ErrBadContentLength},
	{"content-length-overflow", V12, "SEND\ncontent-length:99999999999999999999\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-max-int64", V12, "SEND\ncontent-length:9223372036854775807\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-over-int64", V12, "SEND\ncontent-length:9223372036854775808\n\nx\x00", nil, ErrBadContentLength},
	{"content-length-bad-on-later-repeat-ignored", V12, "SEND\ncontent-length:1\ncontent-length:x\n\na\x00",
		[]*Frame{fr("SEND", "a", "content-length", "1", "content-length", "x")}, nil},
	{"big-body", V12, "SEND\n\n" + bigBody + "\x00", []*Frame{fr("SEND", bigBody)}, nil},
	{"big-body-content-length", V12, "SEND\ncontent-length:" + strconv.Itoa(len(bigBody)+2) + "\n\n" + bigBody + "\x00\x00\x00",
		[]*Frame{fr("SEND", bigBody+"\x00\x00", "content-length", strconv.Itoa(len(bigBody)+2))}, nil},
	{"big-body-eof-before-nul", V12, "SEND\ncontent-length:" + strconv.Itoa(len(bigBody)) + "\n\n" + bigBody, nil, io.ErrUnexpectedEOF},
	{"big-body-missing-nul", V12, "SEND\ncontent-length:" + strconv.Itoa(len(bigBody)) + "\n\n" + bigBody + "!\x00", nil, ErrMissingNUL},

	// Bodies only on SEND, MESSAGE and ERROR.
	{"body-on-ERROR", V12, "ERROR\nmessage:x\n\nwhat\x00", []*Frame{fr("ERROR", "what", "message", "x")}, nil},
	{"body-on-MESSAGE", V12, "MESSAGE\n\nm\x00", []*Frame{fr("MESSAGE", "m")}, nil},
	{"body-on-SUBSCRIBE", V12, "SUBSCRIBE\nid:1\n\nx\x00", nil, ErrBodyNotAllowed},
	{"body-on-SUBSCRIBE-content-length", V12, "SUBSCRIBE\ncontent-length:1\n\nx\x00", nil, ErrBodyNotAllowed},
	{"body-on-CONNECT", V10, "CONNECT\n\nx\x00", nil, ErrBodyNotAllowed},
	{"body-on-RECEIPT-content-length-nul", V12, "RECEIPT\ncontent-length:1\n\n\x00\x00", nil, ErrBodyNotAllowed},
	{"eol-body-on-ACK", V12, "ACK\nid:1\n\n\n\x00", nil, ErrBodyNotAllowed},
	{"content-length-zero-on-SUBSCRIBE", V12, "SUBSCRIBE\ncontent-length:0\n\n\x00", []*Frame{fr("SUBSCRIBE", "", "content-length", "0")}, nil},
	{"content-length-zero-on-SUBSCRIBE-missing-nul", V12, "SUBSCRIBE\ncontent-length:0\n\nx\x00", nil, ErrMissingNUL},

	// Commands.
	{"unknown-command", V12, "FOO\n\n\x00", nil, ErrUnknownCommand},
	{"lower-case-command", V12, "send\n\n\x00", nil, ErrUnknownCommand},
	{"command-trailing-space", V12, "SEND \n\n\x00", nil, ErrUnknownCommand},
	{"command-leading-space", V12, " SEND\n\n\x00", nil, ErrUnknownCommand},
	{"command-prefix", V12, "SEN\n\n\x00", nil, ErrUnknownCommand},
	// Stray NULs between frames are skipped like heart-beat EOLs
	// (RabbitMQ and ActiveMQ do the same).
	{"nul-alone", V12, "\x00", []*Frame{hb()}, nil},
	{"nul-and-eols", V12, "\x00\n\n\x00", []*Frame{hb()}, nil},
	{"nul-before-frame", V12, "\x00SEND\n\n\x00", []*Frame{hb(), fr("SEND", "")}, nil},
	{"nuls-after-frame", V12, "SEND\n\nb\x00\x00\x00\nSEND\n\n\x00", []*Frame{fr("SEND", "b"), fr("SEND", "")}, nil},
	{"nul-after-content-length-frame", V12, "SEND\ncontent-length:1\n\n\x00\x00\x00\r\n\x00SEND\n\n\x00", []*Frame{fr("SEND", "\x00", "content-length", "1"), fr("SEND", "")}, nil},
	{"nul-then-eof-inside-frame", V12, "\x00SEND\n", []*Frame{hb()}, io.ErrUnexpectedEOF},
	{"nul-inside-command", V12, "SE\x00ND\n\n\x00", nil, ErrUnknownCommand},
	{"unknown-after-good", V12, "RECEIPT\nreceipt-id:1\n\n\x00\nBOGUS\n\n\x00",
		[]*Frame{fr("RECEIPT", "", "receipt-id", "1")}, ErrUnknownCommand},

	// End of stream.
	{"empty", V12, "", nil, nil},
	{"eof-in-command", V12, "SEND", nil, io.ErrUnexpectedEOF},
	{"eof-after-command", V12, "SEND\n", nil, io.ErrUnexpectedEOF},
	{"eof-in-header", V12, "SEND\nk:v", nil, io.ErrUnexpectedEOF},
	{"eof-before-blank-line", V12, "SEND\nk:v\n", nil, io.ErrUnexpectedEOF},
	{"eof-in-body", V12, "SEND\nk:v\n\nbody", nil, io.ErrUnexpectedEOF},
	{"eof-after-frame", V12, "SEND\nk:v\n\nbody\x00", []*Frame{fr("SEND", "body", "k", "v")}, nil},
	{"eof-in-second-frame", V12, "SEND\n\n\x00SEND\n", []*Frame{fr("SEND", "")}, io.ErrUnexpectedEOF},
}

// TestReadFrame reads every case in every read mode: all at once, one byte
// per Read, half of what was asked, data with io.EOF, and with a 16-byte
// buffer, so that every line, header and body also crosses buffer
// boundaries. Where the pieces are small, EOLs after a NUL arrive alone and
// become heart-beats; those are left out of the comparison.
func TestReadFrame(t *testing.T) {
	for _, tc := range readCases {
		for _, m := range readModes {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				r := m.make(tc.in)
				r.SetVersion(tc.version)
				got, err := readAll(r)
				want := tc.want
				if m.split {
					got, want = dropHeartBeats(got), dropHeartBeats(want)
				}
				if len(got) != len(want) {
					t.Errorf("got %d frames, want %d", len(got), len(want))
				}
				for i := range min(len(got), len(want)) {
					if d := diffFrame(got[i], want[i], false); d != "" {
						t.Errorf("frame %d:\n%s", i, d)
					}
				}
				wantErr := tc.err
				if wantErr == nil {
					wantErr = io.EOF
				}
				problem, s := sentinelOf(err)
				if problem != "" {
					t.Fatal(problem)
				}
				if s != wantErr {
					t.Fatalf("error %v, want %v", err, wantErr)
				}
			})
		}
	}
}

// TestReadFrameHeartBeatTiming: EOLs after a NUL that arrive with the
// frame are consumed with it; EOLs that arrive later are a heart-beat.
func TestReadFrameHeartBeatTiming(t *testing.T) {
	chunks := []string{"SEND\n\nx\x00\n\n", "\n", "\r\n\n", "SEND\n\ny\x00", "\r\n"}
	r := NewReader(&chunkReader{chunks: chunks})
	got, err := readAll(r)
	if err != io.EOF {
		t.Fatalf("err %v, want io.EOF", err)
	}
	want := []*Frame{fr("SEND", "x"), hb(), hb(), fr("SEND", "y"), hb()}
	if len(got) != len(want) {
		t.Fatalf("got %d frames %v, want %d", len(got), got, len(want))
	}
	for i := range got {
		if d := diffFrame(got[i], want[i], false); d != "" {
			t.Errorf("frame %d:\n%s", i, d)
		}
	}
}

// chunkReader returns its chunks one per Read.
type chunkReader struct{ chunks []string }

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if c.chunks[0] == "" {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

// TestReaderBuffered: Buffered counts what was read and not yet returned,
// in both buffer modes, and is 0 once a read's frames are all returned.
func TestReaderBuffered(t *testing.T) {
	for _, release := range []bool{false, true} {
		r := NewReader(&chunkReader{chunks: []string{"SEND\n\nx\x00SEND\n\nyz\x00", "SEND\n\nw\x00"}})
		r.SetRelease(release)
		if n := r.Buffered(); n != 0 {
			t.Fatalf("release %v: %d buffered before the first read", release, n)
		}
		for i, want := range []int{len("SEND\n\nyz\x00"), 0, 0} {
			if _, err := r.ReadFrame(); err != nil {
				t.Fatal(err)
			}
			if n := r.Buffered(); n != want {
				t.Fatalf("release %v: %d buffered after frame %d, want %d", release, n, i, want)
			}
		}
	}
}

// TestReadFrameHeartBeatFrame: a heart-beat is a Frame with no command, no
// header and no body, and it does not block for more input.
func TestReadFrameHeartBeatFrame(t *testing.T) {
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		pw.Write([]byte("\n"))
		// Nothing more until the test has seen the heart-beat.
	}()
	r := NewReader(pr)
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if !f.IsHeartBeat() || f.Command != "" || f.Header.Len() != 0 || f.Body != nil || f.String() != "heart-beat" {
		t.Fatalf("heart-beat frame: %s / %s", render(f), f)
	}
	pw.Close()
	if _, err := r.ReadFrame(); err != io.EOF {
		t.Fatalf("after close: %v, want io.EOF", err)
	}
}

// TestReadFrameReadError: an error of the underlying reader comes back as
// it is, not as an io.EOF.
func TestReadFrameReadError(t *testing.T) {
	boom := errors.New("boom")
	for _, in := range []string{"", "SEND", "SEND\n", "SEND\nk:v\n\nbody", "SEND\ncontent-length:4\n\nbo", "SEND\n\n\x00\r"} {
		r := NewReaderSize(io.MultiReader(strings.NewReader(in), iotest.ErrReader(boom)), 16)
		var err error
		for err == nil {
			_, err = r.ReadFrame()
		}
		if err != boom {
			t.Errorf("%q: err %v, want %v", in, err, boom)
		}
	}
	// A timeout in the middle of a frame.
	r := NewReaderSize(iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader("SEND\n\nx\x00"))), 16)
	if _, err := r.ReadFrame(); err != iotest.ErrTimeout {
		t.Errorf("timeout: %v, want %v", err, iotest.ErrTimeout)
	}
}

// TestReadFrameErrorDetails checks what a ProtocolError says: the sentinel,
// the command, the offset in the stream and the offending text.
func TestReadFrameErrorDetails(t *testing.T) {
	cases := []struct {
		name, in string
		version  Version
		want     ProtocolError
		text     string
	}{
		{"unknown-command", "SEND\n\n\x00\nFOO\n\n\x00", V12,
			ProtocolError{Err: ErrUnknownCommand, Offset: 8, Detail: `"FOO"`},
			`frame: unknown command "FOO" at byte 8`},
		{"unknown-command-long", strings.Repeat("X", 100) + "\n\n\x00", V12,
			ProtocolError{Err: ErrUnknownCommand, Offset: 0, Detail: strconv.Quote(strings.Repeat("X", 64)) + "..."}, ""},
		{"malformed", "SEND\nk:v\nnocolon\n\n\x00", V12,
			ProtocolError{Err: ErrMalformedHeader, Command: "SEND", Offset: 9, Detail: `"nocolon"`},
			`frame: malformed header line "nocolon" in SEND frame at byte 9`},
		{"bad-escape", "MESSAGE\nk:\\t\n\n\x00", V11,
			ProtocolError{Err: ErrBadEscape, Command: "MESSAGE", Offset: 8, Detail: `"k:\\t"`}, ""},
		{"bad-escape-after-good-one", "SEND\nk\\c:\\c\\n\\x\n\n\x00", V12,
			ProtocolError{Err: ErrBadEscape, Command: "SEND", Offset: 5, Detail: `"k\\c:\\c\\n\\x"`},
			`frame: undefined escape sequence "k\\c:\\c\\n\\x" in SEND frame at byte 5`},
		{"bad-content-length", "SEND\ncontent-length:x\n\n\x00", V12,
			ProtocolError{Err: ErrBadContentLength, Command: "SEND", Offset: 23, Detail: `"x"`}, ""},
		{"missing-nul", "SEND\ncontent-length:1\n\nab\x00", V12,
			ProtocolError{Err: ErrMissingNUL, Command: "SEND", Offset: 24}, ""},
		{"missing-nul-big", "SEND\ncontent-length:20\n\n" + strings.Repeat("a", 21), V12,
			ProtocolError{Err: ErrMissingNUL, Command: "SEND", Offset: 44}, ""},
		{"body-not-allowed", "ACK\nid:1\n\nx\x00", V12,
			ProtocolError{Err: ErrBodyNotAllowed, Command: "ACK", Offset: 10},
			`frame: body not allowed for this command in ACK frame at byte 10`},
		{"body-not-allowed-content-length", "ACK\ncontent-length:1\n\nx\x00", V12,
			ProtocolError{Err: ErrBodyNotAllowed, Command: "ACK", Offset: 22}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{16, DefaultBufferSize} {
				r := NewReaderSize(strings.NewReader(tc.in), size)
				r.SetVersion(tc.version)
				var err error
				for err == nil {
					_, err = r.ReadFrame()
				}
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("err %v (%T), want a *ProtocolError", err, err)
				}
				if *pe != tc.want {
					t.Errorf("buffer %d: got  %#v\nwant %#v", size, *pe, tc.want)
				}
				if tc.text != "" && pe.Error() != tc.text {
					t.Errorf("Error() = %q, want %q", pe.Error(), tc.text)
				}
				if !errors.Is(err, tc.want.Err) {
					t.Errorf("errors.Is(%v, %v) is false", err, tc.want.Err)
				}
			}
		})
	}
}

// A limitCase is a stream read with limits, and the LimitError it must give
// (or none).
type limitCase struct {
	name   string
	limits Limits
	in     string
	err    error // nil: the stream is read whole
	limit  int   // LimitError.Limit
	size   int   // LimitError.Size, exactly when read at once; at least Limit+1 otherwise
	cmd    string
}

var limitCases = []limitCase{
	// MaxLineSize counts a line without its EOL, before unescaping.
	{"line/at-limit", Limits{MaxLineSize: 10}, "SEND\nk:01234567\n\n\x00", nil, 0, 0, ""},
	{"line/at-limit-crlf", Limits{MaxLineSize: 10}, "SEND\r\nk:01234567\r\n\r\n\x00", nil, 0, 0, ""},
	{"line/over", Limits{MaxLineSize: 10}, "SEND\nk:012345678\n\n\x00", ErrLineTooLong, 10, 11, "SEND"},
	{"line/over-crlf", Limits{MaxLineSize: 10}, "SEND\nk:012345678\r\n\n\x00", ErrLineTooLong, 10, 11, "SEND"},
	{"line/escaped-counts-before-unescaping", Limits{MaxLineSize: 10}, "SEND\nk:\\c\\c\\c\\cx\n\n\x00", ErrLineTooLong, 10, 11, "SEND"},
	{"line/command", Limits{MaxLineSize: 4}, "MESSAGE\n\n\x00", ErrLineTooLong, 4, 7, ""},
	{"line/huge-no-eol", Limits{MaxLineSize: 100}, "SEND\nk:" + strings.Repeat("x", 5000), ErrLineTooLong, 100, 5002, "SEND"},
	{"line/huge-command-no-eol", Limits{MaxLineSize: 100}, strings.Repeat("X", 5000), ErrLineTooLong, 100, 5000, ""},
	{"line/default", Limits{}, "SEND\nk:" + strings.Repeat("x", DefaultMaxLineSize) + "\n\n\x00", ErrLineTooLong, DefaultMaxLineSize, DefaultMaxLineSize + 2, "SEND"},
	{"line/default-at-limit", Limits{}, "SEND\nk:" + strings.Repeat("x", DefaultMaxLineSize-2) + "\n\n\x00", nil, 0, 0, ""},
	{"line/unlimited", Limits{MaxLineSize: -1}, "SEND\nk:" + strings.Repeat("x", 3*DefaultMaxLineSize) + "\n\n\x00", nil, 0, 0, ""},

	// MaxHeaders counts entries, repeats included.
	{"headers/at-limit", Limits{MaxHeaders: 2}, "SEND\na:1\na:2\n\n\x00", nil, 0, 0, ""},
	{"headers/over", Limits{MaxHeaders: 2}, "SEND\na:1\na:2\na:3\n\n\x00", ErrTooManyHeaders, 2, 3, "SEND"},
	{"headers/default", Limits{}, "SEND\n" + strings.Repeat("a:1\n", DefaultMaxHeaders+1) + "\n\x00", ErrTooManyHeaders, DefaultMaxHeaders, DefaultMaxHeaders + 1, "SEND"},
	{"headers/default-at-limit", Limits{}, "SEND\n" + strings.Repeat("a:1\n", DefaultMaxHeaders) + "\n\x00", nil, 0, 0, ""},
	{"headers/unlimited", Limits{MaxHeaders: -1}, "SEND\n" + strings.Repeat("a:1\n", 10*DefaultMaxHeaders) + "\n\x00", nil, 0, 0, ""},

	// MaxBodySize, with and without content-length.
	{"body/at-limit", Limits{MaxBodySize: 5}, "SEND\n\n12345\x00", nil, 0, 0, ""},
	{"body/at-limit-content-length", Limits{MaxBodySize: 5}, "SEND\ncontent-length:5\n\n12345\x00", nil, 0, 0, ""},
	{"body/over", Limits{MaxBodySize: 5}, "SEND\n\n123456\x00", ErrBodyTooLarge, 5, 6, "SEND"},
	{"body/over-content-length", Limits{MaxBodySize: 5}, "SEND\ncontent-length:6\n\n123456\x00", ErrBodyTooLarge, 5, 6, "SEND"},
	{"body/over-no-nul", Limits{MaxBodySize: 5}, "SEND\n\n" + strings.Repeat("x", 100), ErrBodyTooLarge, 5, 100, "SEND"},
	{"body/hostile-content-length", Limits{}, "SEND\ncontent-length:2147483647\n\n", ErrBodyTooLarge, DefaultMaxBodySize, 2147483647, "SEND"},
	{"body/content-length-checked-before-reading", Limits{MaxBodySize: 5}, "MESSAGE\ncontent-length:6\n\n", ErrBodyTooLarge, 5, 6, "MESSAGE"},
	{"body/unlimited", Limits{MaxBodySize: -1, MaxFrameSize: -1}, "SEND\n\n" + strings.Repeat("x", 100000) + "\x00", nil, 0, 0, ""},

	// MaxFrameSize counts every byte of the frame, EOLs and NUL included.
	// "SEND\n\nabc\x00" is 10 bytes, "SEND\nk:v\n\nabc\x00" 14.
	{"frame/at-limit", Limits{MaxFrameSize: 10}, "SEND\n\nabc\x00", nil, 0, 0, ""},
	{"frame/over", Limits{MaxFrameSize: 9}, "SEND\n\nabc\x00", ErrFrameTooLarge, 9, 10, "SEND"},
	{"frame/over-content-length", Limits{MaxFrameSize: 9}, "SEND\ncontent-length:3\n\nabc\x00", ErrFrameTooLarge, 9, 22, "SEND"},
	{"frame/at-limit-headers", Limits{MaxFrameSize: 14}, "SEND\nk:v\n\nabc\x00", nil, 0, 0, ""},
	{"frame/over-headers", Limits{MaxFrameSize: 13}, "SEND\nk:v\n\nabc\x00", ErrFrameTooLarge, 13, 14, "SEND"},
	{"frame/over-in-headers", Limits{MaxFrameSize: 8}, "SEND\nk:v\nk:v\n\n\x00", ErrFrameTooLarge, 8, 9, "SEND"},
	{"frame/crlf-counts", Limits{MaxFrameSize: 13}, "SEND\r\nk:v\r\n\r\n\x00", ErrFrameTooLarge, 13, 14, "SEND"},
	{"frame/eols-after-nul-do-not-count", Limits{MaxFrameSize: 6}, "ACK\n\n\x00\n\n\n\nACK\n\n\x00\r\n", nil, 0, 0, ""},
	{"frame/over-at-blank-line", Limits{MaxFrameSize: 5}, "SEND\n\n\x00", ErrFrameTooLarge, 5, 6, "SEND"},
	{"frame/over-at-blank-line-headers", Limits{MaxFrameSize: 9}, "SEND\nk:v\n\n\x00", ErrFrameTooLarge, 9, 10, "SEND"},
	{"frame/over-no-nul", Limits{MaxFrameSize: 50}, "SEND\n\n" + strings.Repeat("x", 100), ErrFrameTooLarge, 50, 107, "SEND"},
	{"frame/unlimited-body-limited", Limits{MaxFrameSize: -1, MaxBodySize: 3}, "SEND\n\nabcd\x00", ErrBodyTooLarge, 3, 4, "SEND"},
}

// TestReadFrameLimits checks every limit at its edge, in every read mode,
// through errors.Is with the sentinel and errors.As with *LimitError.
func TestReadFrameLimits(t *testing.T) {
	for _, tc := range limitCases {
		for _, m := range readModes {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				r := m.make(tc.in)
				r.SetVersion(V12)
				r.SetLimits(tc.limits)
				var err error
				for err == nil {
					_, err = r.ReadFrame()
				}
				if tc.err == nil {
					if err != io.EOF {
						t.Fatalf("err %v, want io.EOF", err)
					}
					return
				}
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want one that is %v", err, tc.err)
				}
				var le *LimitError
				if !errors.As(err, &le) {
					t.Fatalf("err %v (%T) is not a *LimitError", err, err)
				}
				if le.Err != tc.err || le.Limit != tc.limit || le.Command != tc.cmd {
					t.Errorf("got %#v, want Err %v, Limit %d, Command %q", *le, tc.err, tc.limit, tc.cmd)
				}
				if m.name == "whole" && le.Size != tc.size {
					t.Errorf("Size %d, want %d", le.Size, tc.size)
				}
				if le.Size <= le.Limit {
					t.Errorf("Size %d not over Limit %d", le.Size, le.Limit)
				}
			})
		}
	}
}

func TestLimitError(t *testing.T) {
	err := error(&LimitError{Err: ErrBodyTooLarge, Command: "SEND", Limit: 5, Size: 7})
	if got, want := err.Error(), "frame: body too large in SEND frame: 7 exceeds the limit of 5 by 2"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrBodyTooLarge) || errors.Is(err, ErrFrameTooLarge) {
		t.Error("errors.Is does not follow Err")
	}
	err = &LimitError{Err: ErrLineTooLong, Limit: 4, Size: 7}
	if got, want := err.Error(), "frame: line too long: 7 exceeds the limit of 4 by 3"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestLimits(t *testing.T) {
	r := NewReader(strings.NewReader(""))
	if got := r.Limits(); got != DefaultLimits() {
		t.Errorf("new reader limits %+v, want %+v", got, DefaultLimits())
	}
	want := Limits{DefaultMaxFrameSize, DefaultMaxBodySize, DefaultMaxHeaders, DefaultMaxLineSize}
	if DefaultLimits() != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", DefaultLimits(), want)
	}
	if DefaultMaxFrameSize <= DefaultMaxBodySize {
		t.Error("a body of the largest size would not fit a frame of the largest size")
	}
	const unlimited = int(^uint(0) >> 1)
	r.SetLimits(Limits{MaxFrameSize: 100, MaxBodySize: -1, MaxLineSize: 7})
	if got, want := r.Limits(), (Limits{100, unlimited, DefaultMaxHeaders, 7}); got != want {
		t.Errorf("limits %+v, want %+v", got, want)
	}
	r.SetLimits(Limits{})
	if got := r.Limits(); got != DefaultLimits() {
		t.Errorf("zero limits give %+v, want the defaults", got)
	}
}

// TestReadFrameHostileContentLength: a peer that announces a huge body must
// not make the Reader allocate it. With the default limits the length is
// refused before any body is read; with no limits at all (trusted peers
// only) the Reader allocates as the bytes arrive, not as announced.
func TestReadFrameHostileContentLength(t *testing.T) {
	measure := func(l Limits, in string) (uint64, error) {
		r := NewReader(strings.NewReader(in))
		r.SetLimits(l)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := r.ReadFrame()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	const small = 1 << 20
	hostile := []string{"8388609", "2147483647"}
	if is64 := ^uint(0)>>32 != 0; is64 {
		hostile = append(hostile, "999999999999", "999999999999999999")
	}
	for _, cl := range hostile {
		alloc, err := measure(Limits{}, "SEND\ncontent-length:"+cl+"\n\n"+strings.Repeat("x", 100))
		if !errors.Is(err, ErrBodyTooLarge) {
			t.Errorf("content-length %s: err %v, want ErrBodyTooLarge", cl, err)
		}
		if alloc > small {
			t.Errorf("content-length %s: allocated %d bytes", cl, alloc)
		}
	}
	unlimited := Limits{MaxFrameSize: -1, MaxBodySize: -1, MaxHeaders: -1, MaxLineSize: -1}
	for _, cl := range hostile[1:] {
		alloc, err := measure(unlimited, "SEND\ncontent-length:"+cl+"\n\n"+strings.Repeat("x", 100000))
		if err != io.ErrUnexpectedEOF {
			t.Errorf("unlimited, content-length %s: err %v, want io.ErrUnexpectedEOF", cl, err)
		}
		if alloc > small {
			t.Errorf("unlimited, content-length %s: allocated %d bytes for 100000 sent", cl, alloc)
		}
	}
	// The same in allocation count: refusing a hostile length costs only the
	// error.
	in := []byte("SEND\ncontent-length:2147483647\n\n")
	br := bytes.NewReader(in)
	r := NewReader(br)
	r.wake() // the read buffer, which the loop resets
	allocs := testing.AllocsPerRun(100, func() {
		br.Reset(in)
		r.br.Reset(br)
		if _, err := r.ReadFrame(); !errors.Is(err, ErrBodyTooLarge) {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("refusing a hostile content-length: %v allocations, want at most 2 (header block, error)", allocs)
	}
}

// TestReadFrameReuse: the Reader reuses its Frame, but header keys and
// values are strings that stay valid, and a Clone keeps the whole frame.
func TestReadFrameReuse(t *testing.T) {
	in := "MESSAGE\nk:first\\c1\ncontent-length:3\n\nab1\x00MESSAGE\nk:second\\c2\ncontent-length:3\n\nab2\x00"
	for _, m := range readModes {
		r := m.make(in)
		r.SetVersion(V12)
		f1, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		k, v := f1.Header.At(0)
		c := f1.Clone()
		f2, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if k != "k" || v != "first:1" {
			t.Errorf("%s: kept header %q:%q changed after the next ReadFrame", m.name, k, v)
		}
		if d := diffFrame(c, fr("MESSAGE", "ab1", "k", "first:1", "content-length", "3"), false); d != "" {
			t.Errorf("%s: clone changed after the next ReadFrame:\n%s", m.name, d)
		}
		if d := diffFrame(f2, fr("MESSAGE", "ab2", "k", "second:2", "content-length", "3"), false); d != "" {
			t.Errorf("%s: second frame:\n%s", m.name, d)
		}
	}
}

func TestReaderVersion(t *testing.T) {
	r := NewReader(strings.NewReader(""))
	if r.Version() != V10 {
		t.Errorf("default version %q, want 1.0", r.Version())
	}
	r.SetVersion(V12)
	if r.Version() != V12 {
		t.Errorf("version %q after SetVersion(1.2)", r.Version())
	}
}

// TestReadFrameAllocs guards the Reader's cost in steady state: a typical
// 1.2 MESSAGE costs one allocation, the string that holds its header
// block; a frame without headers and a heart-beat cost none.
func TestReadFrameAllocs(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		max  float64
	}{
		{"typical-message", encode(t, V12, ContentLengthAlways, typicalMessage()), 1},
		{"message-64k-body", encode(t, V12, ContentLengthAlways, fr(CmdMessage, strings.Repeat("x", 64<<10), HdrDestination, "/queue/a")), 1},
		{"message-no-content-length", encode(t, V12, ContentLengthNever, typicalMessage()), 1},
		{"no-headers", []byte("DISCONNECT\n\n\x00"), 0},
		{"heart-beat", []byte("\n"), 0},
		{"crlf-heart-beat", []byte("\r\n"), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(&repeatReader{b: tc.in})
			r.SetVersion(V12)
			read := func() {
				if _, err := r.ReadFrame(); err != nil {
					t.Fatal(err)
				}
			}
			for range 10 { // warm up: grow the scratch buffers
				read()
			}
			if got := testing.AllocsPerRun(1000, read); got > tc.max {
				t.Errorf("%v allocations per frame, want at most %v", got, tc.max)
			}
		})
	}
}

// TestReadFrameNoStaleHeaders: the Reader reuses its Frame's header
// entries, but entries of an earlier, longer frame do not linger in the
// backing array (they would keep old header strings alive).
func TestReadFrameNoStaleHeaders(t *testing.T) {
	in := "SEND\na:1\nb:2\nc:3\nd:4\n\n\x00SEND\ne:5\n\n\x00\nSEND\nf:6\ng:7\n\n\x00ACK\n\n\x00"
	r := NewReaderSize(iotest.OneByteReader(strings.NewReader(in)), 16)
	check := func(wantLen int) {
		t.Helper()
		f, err := r.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.Len() != wantLen {
			t.Fatalf("%d headers, want %d", f.Header.Len(), wantLen)
		}
		for _, e := range f.Header.fields[wantLen:cap(f.Header.fields)] {
			if e != (field{}) {
				t.Fatalf("stale entry %v after %s", e, render(f))
			}
		}
	}
	check(4)
	f, _ := r.ReadFrame()
	f.Header.Add("user", "added") // callers may change the frame they were given
	f.Header.Add("user", "again")
	check(0) // the heart-beat
	check(2)
	check(0)
}

// TestReaderGivesBackLargeBuffers: after a large frame the Reader does not
// keep its scratch (issue 9: up to 8 MiB for the life of a connection).
func TestReaderGivesBackLargeBuffers(t *testing.T) {
	big := strings.Repeat("x", 4<<20)
	for _, tc := range []struct{ name, frame string }{
		{"body-to-nul", "SEND\n\n" + big + "\x00"},
		{"body-content-length", "SEND\ncontent-length:" + strconv.Itoa(len(big)) + "\n\n" + big + "\x00"},
		{"long-header", "SEND\nk:" + big[:1<<20] + "\n\n\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.frame + "SEND\n\nsmall\x00"))
			r.SetLimits(Limits{MaxLineSize: 2 << 20})
			f, err := r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Body) != len(big) && tc.name != "long-header" {
				t.Fatalf("body of %d bytes", len(f.Body))
			}
			if f, err = r.ReadFrame(); err != nil || string(f.Body) != "small" {
				t.Fatalf("second frame %v %v", f, err)
			}
			if c := cap(r.body) + cap(r.line) + cap(r.hdr) + 8*cap(r.spans); c > maxKeep*4 {
				t.Fatalf("the Reader keeps %d bytes of scratch after the large frame", c)
			}
		})
	}
}

// TestReaderReleaseWhileIdle: a releasing Reader holds no read buffer while
// it waits for the next frame, and reads the stream exactly.
func TestReaderReleaseWhileIdle(t *testing.T) {
	pr, pw := io.Pipe()
	var r *Reader
	idle := 0 // reads from the source made without a read buffer
	r = NewReader(readerFunc(func(p []byte) (int, error) {
		if r.br == nil {
			idle++
		}
		return pr.Read(p)
	}))
	r.SetRelease(true)
	got := make(chan string, 8)
	go func() {
		for {
			f, err := r.ReadFrame()
			if err != nil {
				close(got)
				return
			}
			got <- f.Command + ":" + string(f.Body)
		}
	}()
	big := strings.Repeat("b", 1000) // past the 256 bytes of the wait
	for _, in := range []string{"SEND\n\nsmall\x00", "SEND\n\n" + big + "\x00", "\n"} {
		io.WriteString(pw, in)
		want := "SEND:" + strings.TrimSuffix(strings.TrimPrefix(in, "SEND\n\n"), "\x00")
		if in == "\n" {
			want = ":"
		}
		if g := <-got; g != want {
			t.Fatalf("got %.40q, want %.40q", g, want)
		}
	}
	pw.Close()
	if _, ok := <-got; ok {
		t.Fatal("a frame after the end")
	}
	if idle < 4 { // before each frame, and before the end
		t.Fatalf("%d waits without a read buffer, want 4", idle)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestWriterRelease: a releasing Writer holds no buffer after a Flush and
// writes the same bytes.
func TestWriterRelease(t *testing.T) {
	var plain, rel bytes.Buffer
	w1, w2 := NewWriter(&plain), NewWriter(&rel)
	w2.SetRelease(true)
	for i := range 3 {
		for _, w := range []*Writer{w1, w2} {
			w.WriteFrame(New(CmdMessage, "k", strings.Repeat("v", i*300)))
			w.WriteHeartBeat()
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		if w2.bw != nil || w2.Buffered() != 0 || cap(w2.head) > 512 {
			t.Fatal("the Writer kept its buffer after Flush")
		}
	}
	if plain.String() != rel.String() {
		t.Fatalf("released Writer wrote %q, want %q", rel.String(), plain.String())
	}
}

// TestReadFrameOwned: with SetOwned, the header entries and body of the
// chosen frames stay intact after later frames, whatever the Reader reads
// next (owned or reused frames, heart-beats, bodies that do not fit its
// buffer), and changing a kept frame changes nothing else.
func TestReadFrameOwned(t *testing.T) {
	big := strings.Repeat("b", 40<<10) // larger than maxShared and than the buffer
	want := []*Frame{
		fr(CmdMessage, "one", "subscription", "s", "k", "a:b\nc", HdrContentLength, "3"),
		fr(CmdReceipt, "", HdrReceiptID, "r-1", "x", "1", "y", "2", "z", "3"),
		fr(CmdMessage, "two, no content-length", "subscription", "s"),
		hb(),
		fr(CmdMessage, big, "subscription", "s", HdrContentLength, strconv.Itoa(len(big))),
		fr(CmdMessage, big, "subscription", "s"),
		fr(CmdMessage, ""),
		fr(CmdReceipt, "", HdrReceiptID, "r-2"),
		fr(CmdMessage, "last", "subscription", "s", HdrContentLength, "4"),
	}
	var in strings.Builder
	for _, f := range want {
		if f.IsHeartBeat() {
			in.WriteString("\n")
			continue
		}
		m := ContentLengthAlways
		if !f.Header.Has(HdrContentLength) {
			m = ContentLengthNever
		}
		g := fr(f.Command, string(f.Body))
		for k, v := range f.Header.All() {
			if k != HdrContentLength {
				g.Header.Add(k, v)
			}
		}
		in.Write(encode(t, V12, m, g))
	}
	for _, mode := range []string{"whole", "half", "buf16-onebyte"} {
		t.Run(mode, func(t *testing.T) {
			var src io.Reader = strings.NewReader(in.String())
			size := DefaultBufferSize
			switch mode {
			case "half":
				src = iotest.HalfReader(src)
			case "buf16-onebyte":
				src, size = iotest.OneByteReader(src), 16
			}
			r := NewReaderSize(src, size)
			r.SetVersion(V12)
			r.SetOwned(CmdMessage)
			var kept []Frame // by value: the *Frame is reused
			for {
				f, err := r.ReadFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if f.Command == CmdMessage {
					kept = append(kept, *f)
				}
			}
			var msgs []*Frame
			for _, f := range want {
				if f.Command == CmdMessage {
					msgs = append(msgs, f)
				}
			}
			if len(kept) != len(msgs) {
				t.Fatalf("%d messages, want %d", len(kept), len(msgs))
			}
			for i := range kept {
				if d := diffFrame(&kept[i], msgs[i], false); d != "" {
					t.Errorf("message %d changed after the frames that followed it:\n%s", i, d)
				}
			}
			// The body shares its allocation with the header text: writing
			// it, or appending to it, leaves the header alone.
			k := &kept[0]
			k.Body[0] = 'X'
			k.Body = append(k.Body, "more"...)
			k.Header.Add("added", "1")
			if got := k.Header.Get("k"); got != "a:b\nc" || string(k.Body) != "Xnemore" {
				t.Errorf("after changing the body: header k %q, body %q", got, k.Body)
			}
			// A frame without headers has none of the Reader's array: an
			// Add to it reaches nothing else.
			kept[4].Header.Add("mine", "1")
			if d := diffFrame(&kept[5], msgs[5], false); d != "" {
				t.Errorf("the last message after an Add to the one before:\n%s", d)
			}
		})
	}
}

// TestReadFrameOwnedErrors: a frame to hand over is checked as any other
// (its content-length is read before its header strings are made).
func TestReadFrameOwnedErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"MESSAGE\ncontent-length:x\n\n\x00", ErrBadContentLength},
		{"MESSAGE\ncontent-length:\n\n\x00", ErrBadContentLength},
		{"MESSAGE\ncontent-length:2\n\nabc\x00", ErrMissingNUL},
		{"RECEIPT\ncontent-length:1\n\na\x00", ErrBodyNotAllowed},
	} {
		r := NewReader(strings.NewReader(tc.in))
		r.SetOwned(CmdMessage, CmdReceipt)
		if _, err := r.ReadFrame(); !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, err, tc.want)
		}
	}
	r := NewReader(strings.NewReader("MESSAGE\ncontent-length:x\n\n\x00"))
	r.SetOwned(CmdMessage)
	_, err := r.ReadFrame()
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Detail != `"x"` || pe.Command != CmdMessage {
		t.Errorf("bad content-length: %#v, want the value quoted as the detail", err)
	}
}

// TestReadFrameOwnedAllocs pins what a handed-over frame costs: two
// allocations (its entries; its header text and body together), three
// with a body past maxShared; frames not handed over cost what they did.
func TestReadFrameOwnedAllocs(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		max  float64
	}{
		{"typical-message", encode(t, V12, ContentLengthAlways, typicalMessage()), 2},
		{"message-1k-body", encode(t, V12, ContentLengthAlways, fr(CmdMessage, strings.Repeat("x", 1<<10), HdrDestination, "/queue/a")), 2},
		{"message-no-content-length", encode(t, V12, ContentLengthNever, typicalMessage()), 2},
		{"message-64k-body", encode(t, V12, ContentLengthAlways, fr(CmdMessage, strings.Repeat("x", 64<<10), HdrDestination, "/queue/a")), 3},
		{"message-no-headers", []byte("MESSAGE\n\nbody\x00"), 1},
		{"receipt-not-owned", []byte("RECEIPT\nreceipt-id:7\n\n\x00"), 1},
		{"heart-beat", []byte("\n"), 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(&repeatReader{b: tc.in})
			r.SetVersion(V12)
			r.SetOwned(CmdMessage)
			read := func() {
				if _, err := r.ReadFrame(); err != nil {
					t.Fatal(err)
				}
			}
			for range 10 {
				read()
			}
			if got := testing.AllocsPerRun(1000, read); got > tc.max {
				t.Errorf("%v allocations per frame, want at most %v", got, tc.max)
			}
		})
	}
}

// TestReaderViews reads SENDs with SetViews(SEND): their header strings
// are views of the Reader's buffer (no allocation, the next frame's bytes
// once it is read), while a MESSAGE's are strings of their own that stay
// as they were; a frame SetOwned hands over is no view.
func TestReaderViews(t *testing.T) {
	send := "SEND\ndestination:/queue/a\nx:1\n\nbody\x00"
	other := "SEND\ndestination:/queue/b\nx:2\n\nbody\x00"
	msg := "MESSAGE\ndestination:/queue/m\nmessage-id:7\nsubscription:0\n\nm\x00"
	r := NewReader(&repeatReader{b: []byte(send + other + msg + send)})
	r.SetVersion(V12)
	r.SetViews(CmdSend)
	f, err := r.ReadFrame()
	if err != nil || f.Header.Get("destination") != "/queue/a" || f.Header.Get("x") != "1" || string(f.Body) != "body" {
		t.Fatalf("first SEND: %v %v", f, err)
	}
	dest := f.Header.Get("destination")
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if dest != "/queue/b" {
		t.Fatalf("a SEND's header string after the next ReadFrame: %q, want the next frame's bytes, /queue/b (a view)", dest)
	}
	m, err := r.ReadFrame()
	if err != nil || m.Command != CmdMessage {
		t.Fatalf("MESSAGE: %v %v", m, err)
	}
	id := m.Header.Get("message-id")
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if id != "7" {
		t.Fatalf("a MESSAGE's header string after the next ReadFrame: %q, want 7 (its own)", id)
	}
	if n := testing.AllocsPerRun(100, func() {
		if _, err := r.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	}); n > 0.3 { // a MESSAGE in four frames allocates one
		t.Fatalf("%.2f allocations per frame, want none for the SENDs", n)
	}

	r = NewReader(&repeatReader{b: []byte(send + other)})
	r.SetVersion(V12)
	r.SetViews(CmdSend)
	r.SetOwned(CmdSend)
	f, err = r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	dest = f.Header.Get("destination")
	if _, err := r.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	if dest != "/queue/a" {
		t.Fatalf("an owned SEND's header string after the next ReadFrame: %q, want /queue/a", dest)
	}
}
