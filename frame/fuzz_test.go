package frame

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

var update = flag.Bool("update", false, "rewrite testdata/captures.golden")

var versions = [...]Version{V10, V11, V12}

// captures returns the raw bytes that RabbitMQ 3.10.8 and ActiveMQ 5.17.2
// sent, one file per capture (see testdata/captures/README.md), by name.
func captures(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "captures", "*.stomp"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no captures in testdata/captures: %v", err)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// captureVersion is the version a capture was made in, from its name.
func captureVersion(name string) Version {
	switch {
	case strings.Contains(name, "1-0"), strings.Contains(name, "vnone"):
		return V10
	case strings.Contains(name, "1-1"):
		return V11
	}
	return V12
}

// TestCaptures reads what real brokers sent and compares every frame with
// testdata/captures.golden (go test -run TestCaptures -update rewrites
// it). Every capture must read to a clean io.EOF, in every read mode, and
// write back to frames that read the same.
func TestCaptures(t *testing.T) {
	caps := captures(t)
	names := make([]string, 0, len(caps))
	for name := range caps {
		names = append(names, name)
	}
	slices.Sort(names)
	var golden strings.Builder
	for _, name := range names {
		v := captureVersion(name)
		golden.WriteString(name + " (" + string(v) + ")\n")
		for _, m := range readModes {
			r := m.make(string(caps[name]))
			r.SetVersion(v)
			fs, err := readAll(r)
			if err != io.EOF {
				t.Errorf("%s/%s: %v after %d frames", name, m.name, err, len(fs))
			}
			if m.name == "whole" {
				for _, f := range fs {
					golden.WriteString("\t" + render(f) + "\n")
					if !f.IsHeartBeat() {
						roundTrip(t, v, f)
					}
				}
			}
		}
	}
	path := filepath.Join("testdata", "captures.golden")
	if *update {
		if err := os.WriteFile(path, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if golden.String() != string(want) {
		t.Errorf("captures read differently from %s (rerun with -update to see the difference in git):\n%s", path, golden.String())
	}
}

// TestCapturesFacts spells out what the golden file says about a few
// frames, the ones the rest of the project relies on.
func TestCapturesFacts(t *testing.T) {
	caps := captures(t)
	read := func(name string, v Version) []*Frame {
		t.Helper()
		r := NewReader(bytes.NewReader(caps[name]))
		r.SetVersion(v)
		fs, err := readAll(r)
		if err != io.EOF {
			t.Fatalf("%s: %v", name, err)
		}
		return fs
	}
	// CONNECTED is never unescaped: ActiveMQ's session id keeps its colons.
	fs := read("activemq-frames-01-connect-v1-2-hb-none.stomp", V12)
	if len(fs) != 1 || fs[0].Command != CmdConnected || fs[0].Header.Get(HdrSession) != "ID:vm-33735-1795786894377-3:2" ||
		fs[0].Header.Get(HdrVersion) != "1.2" {
		t.Errorf("ActiveMQ CONNECTED: %v", fs)
	}
	// ActiveMQ escapes the colons of its MESSAGE headers in 1.1 and 1.2; the
	// RECEIPT came before the MESSAGE, which has no content-length.
	fs = read("activemq-frames-06-subscribe-send-receipt.stomp", V12)
	if len(fs) != 2 || fs[0].Command != CmdReceipt || fs[0].Header.Get(HdrReceiptID) != "r-1" ||
		fs[1].Command != CmdMessage || fs[1].Header.Get(HdrAck) != "ID:vm-33735-1795786894377-4:1" ||
		fs[1].Header.Has(HdrContentLength) || string(fs[1].Body) != "hello stomp" {
		t.Errorf("ActiveMQ RECEIPT+MESSAGE: %v", fs)
	}
	fs = read("activemq-frames-12-1-1-message.stomp", V11)
	if len(fs) != 1 || fs[0].Header.Get(HdrMessageID) != "ID:vm-33735-1795786894377-3:8:-1:1:1" {
		t.Errorf("ActiveMQ 1.1 MESSAGE: %v", fs)
	}
	// Read as 1.0, the same bytes keep their backslashes.
	fs = read("activemq-frames-12-1-1-message.stomp", V10)
	if len(fs) != 1 || fs[0].Header.Get(HdrMessageID) != `ID\cvm-33735-1795786894377-3\c8\c-1\c1\c1` {
		t.Errorf("ActiveMQ 1.1 MESSAGE read as 1.0: %v", fs)
	}
	// RabbitMQ: MESSAGE with content-length, then RECEIPT, both ending
	// "\x00\n"; the EOL is consumed with the frame.
	fs = read("rabbitmq-frames-06-subscribe-send-receipt.stomp", V12)
	if len(fs) != 2 || fs[0].Command != CmdMessage || fs[0].Header.Get(HdrContentLength) != "11" ||
		string(fs[0].Body) != "hello stomp" || fs[0].Header.Len() != 8 || fs[1].Command != CmdReceipt {
		t.Errorf("RabbitMQ MESSAGE+RECEIPT: %v", fs)
	}
	// Heart-beats.
	fs = read("rabbitmq-frames-07-idle-heart-beats.stomp", V12)
	if len(fs) != 1 || !fs[0].IsHeartBeat() {
		t.Errorf("RabbitMQ heart-beats: %v", fs)
	}
	// An ERROR body with a trailing EOL before the NUL, counted by
	// content-length.
	fs = read("rabbitmq-errors-03-connect-bad-version.stomp", V10)
	if len(fs) != 1 || fs[0].Command != CmdError || fs[0].Header.Get(HdrMessage) != "Version mismatch" ||
		string(fs[0].Body) != "Supported versions are 1.0,1.1,1.2\n" {
		t.Errorf("RabbitMQ ERROR: %v", fs)
	}
}

// roundTrip writes f with a Writer of version v in every content-length
// mode that can carry it, reads it back and checks that the frame is the
// same: command, header entries in order (content-length aside, which the
// Writer recomputes) and body.
func roundTrip(t *testing.T, v Version, f *Frame) {
	t.Helper()
	for _, mode := range []ContentLengthMode{ContentLengthAlways, ContentLengthAuto, ContentLengthNever} {
		var buf bytes.Buffer
		w := NewWriter(&buf)
		w.SetVersion(v)
		w.SetContentLength(mode)
		if err := w.WriteFrame(f); err != nil {
			// Only two things a Reader accepts cannot be written back: a
			// value ending in a raw CR where it cannot be escaped (the CR
			// would be read back as part of a CRLF), and a NUL in a body
			// when content-length is forbidden.
			if !errors.Is(err, ErrUnencodable) {
				t.Fatalf("%s: mode %d: %v", render(f), mode, err)
			}
			if !(mode == ContentLengthNever && bytes.IndexByte(f.Body, 0) >= 0) && !crEndsValue(v, f) {
				t.Fatalf("%s: mode %d: %v, but the frame was read from the wire", render(f), mode, err)
			}
			if buf.Len() != 0 || w.Buffered() != 0 {
				t.Fatalf("%s: an unencodable frame left %d bytes", render(f), w.Buffered())
			}
			continue
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		wire := buf.String()
		r := NewReader(&buf)
		r.SetVersion(v)
		r.SetLimits(Limits{MaxFrameSize: -1, MaxBodySize: -1, MaxHeaders: -1, MaxLineSize: -1})
		g, err := r.ReadFrame()
		if err != nil {
			t.Fatalf("%s: mode %d: wrote %q, which reads as %v", render(f), mode, wire, err)
		}
		if d := diffFrame(g, f, true); d != "" {
			t.Fatalf("mode %d: wrote %q, which reads back differently:\n%s", mode, wire, d)
		}
		if n, ok, err := g.ContentLength(); err != nil || ok && n != len(g.Body) {
			t.Fatalf("mode %d: wrote %q with content-length %d for %d bytes (%v)", mode, wire, n, len(g.Body), err)
		}
		if _, err := r.ReadFrame(); err != io.EOF {
			t.Fatalf("mode %d: wrote %q, more than one frame: %v", mode, wire, err)
		}
	}
}

// crEndsValue reports whether a header value of f ends in a CR that a
// Writer of version v cannot escape.
func crEndsValue(v Version, f *Frame) bool {
	if v == V12 && v.escapes(f.Command) {
		return false
	}
	for _, val := range f.Header.All() {
		if strings.HasSuffix(val, "\r") {
			return true
		}
	}
	return false
}

// FuzzReader feeds arbitrary bytes to Readers of every version. The first
// argument picks the version (its low bits) and the limits (bit 2: small
// ones, to reach every limit). It checks that a Reader never panics, that
// every error is io.EOF, io.ErrUnexpectedEOF or a sentinel in its wrapper,
// that a stream reads the same whole and one byte at a time through a tiny
// buffer, and that every frame read writes back to the same frame.
//
// The seed corpus is every capture from a real broker in each version and
// every input of the reader's table tests; it runs with go test.
func FuzzReader(f *testing.F) {
	for _, b := range captures(f) {
		for i := range versions {
			f.Add(byte(i), b)
		}
	}
	for _, tc := range readCases {
		for i, v := range versions {
			if v == tc.version {
				f.Add(byte(i), []byte(tc.in))
				f.Add(byte(i|4), []byte(tc.in))
			}
		}
	}
	for _, tc := range limitCases {
		if len(tc.in) < 1000 {
			f.Add(byte(2|4), []byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, sel byte, data []byte) {
		v := versions[int(sel&3)%len(versions)]
		var limits Limits
		if sel&4 != 0 {
			limits = Limits{MaxFrameSize: 64, MaxBodySize: 16, MaxHeaders: 3, MaxLineSize: 24}
		}
		read := func(r *Reader) ([]*Frame, error) {
			r.SetVersion(v)
			r.SetLimits(limits)
			fs, err := readAll(r)
			if problem, _ := sentinelOf(err); problem != "" {
				t.Fatal(problem)
			}
			return fs, err
		}
		whole, err1 := read(NewReader(bytes.NewReader(data)))
		split, err2 := read(NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 16))

		released, err3 := read(releasing(NewReader(iotest.HalfReader(bytes.NewReader(data)))))
		// Handed over (SetOwned): kept as they come, without Clone.
		var owned []*Frame
		r := owning(NewReaderSize(iotest.HalfReader(bytes.NewReader(data)), 16))
		r.SetVersion(v)
		r.SetLimits(limits)
		var err4 error
		for err4 == nil {
			var g *Frame
			if g, err4 = r.ReadFrame(); err4 == nil {
				k := *g
				owned = append(owned, &k)
			}
		}

		// Header strings as views (SetViews): copied as they come, as a
		// caller of SetViews must.
		var viewed []*Frame
		r = NewReaderSize(iotest.HalfReader(bytes.NewReader(data)), 16)
		r.SetViews(allCommands...)
		r.SetVersion(v)
		r.SetLimits(limits)
		var err5 error
		for err5 == nil {
			var g *Frame
			if g, err5 = r.ReadFrame(); err5 == nil {
				viewed = append(viewed, deepClone(g))
			}
		}

		_, s1 := sentinelOf(err1)
		_, s2 := sentinelOf(err2)
		_, s3 := sentinelOf(err3)
		if s1 != s2 {
			t.Fatalf("read whole: %v; one byte at a time: %v", err1, err2)
		}
		if s1 != s3 {
			t.Fatalf("read whole: %v; releasing the buffer: %v", err1, err3)
		}
		if _, s4 := sentinelOf(err4); s1 != s4 {
			t.Fatalf("read whole: %v; handed over: %v", err1, err4)
		}
		if owned = dropHeartBeats(owned); len(owned) != len(dropHeartBeats(whole)) {
			t.Fatalf("read whole: %d frames; handed over: %d", len(dropHeartBeats(whole)), len(owned))
		}
		for i, f := range dropHeartBeats(whole) {
			if d := diffFrame(owned[i], f, false); d != "" {
				t.Fatalf("frame %d handed over differs once all are read:\n%s", i, d)
			}
		}
		if _, s5 := sentinelOf(err5); s1 != s5 {
			t.Fatalf("read whole: %v; as views: %v", err1, err5)
		}
		if viewed = dropHeartBeats(viewed); len(viewed) != len(dropHeartBeats(whole)) {
			t.Fatalf("read whole: %d frames; as views: %d", len(dropHeartBeats(whole)), len(viewed))
		}
		for i, f := range dropHeartBeats(whole) {
			if d := diffFrame(viewed[i], f, false); d != "" {
				t.Fatalf("frame %d read as views differs:\n%s", i, d)
			}
		}
		if released = dropHeartBeats(released); len(released) != len(dropHeartBeats(whole)) {
			t.Fatalf("read whole: %d frames; releasing the buffer: %d", len(dropHeartBeats(whole)), len(released))
		}
		for i, f := range dropHeartBeats(whole) {
			if d := diffFrame(released[i], f, false); d != "" {
				t.Fatalf("frame %d read releasing the buffer differs:\n%s", i, d)
			}
		}
		whole, split = dropHeartBeats(whole), dropHeartBeats(split)
		if len(whole) != len(split) {
			t.Fatalf("read whole: %d frames; one byte at a time: %d", len(whole), len(split))
		}
		for i, f := range whole {
			if d := diffFrame(split[i], f, false); d != "" {
				t.Fatalf("frame %d read one byte at a time differs:\n%s", i, d)
			}
			if !IsCommand(f.Command) {
				t.Fatalf("frame with command %q", f.Command)
			}
			if len(f.Body) > 0 && !HasBody(f.Command) {
				t.Fatalf("%s frame with a body", f.Command)
			}
			if n, ok, err := f.ContentLength(); ok && (err != nil || n != len(f.Body)) {
				t.Fatalf("content-length %d (%v) for a %d-byte body", n, err, len(f.Body))
			}
			roundTrip(t, v, f)
		}
	})
}
