package frame

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// entries lists h as "k=v" strings, in order.
func entries(h *Header) []string {
	var out []string
	for i := range h.Len() {
		k, v := h.At(i)
		out = append(out, k+"="+v)
	}
	return out
}

func TestHeaderZero(t *testing.T) {
	var h Header
	if h.Len() != 0 || h.Get("a") != "" || h.Has("a") || h.Values("a") != nil {
		t.Fatal("zero Header is not empty")
	}
	if v, ok := h.Lookup("a"); ok || v != "" {
		t.Fatal("Lookup on the zero Header found something")
	}
	h.Del("a")
	h.Reset()
	for range h.All() {
		t.Fatal("All on the zero Header yielded")
	}
	if c := h.Clone(); c.Len() != 0 {
		t.Fatal("Clone of the zero Header is not empty")
	}
	h.Set("a", "1")
	if got := entries(&h); !slices.Equal(got, []string{"a=1"}) {
		t.Fatalf("Set on the zero Header: %v", got)
	}
}

// TestHeaderRepeats: the first entry wins on lookup; all are kept in order.
func TestHeaderRepeats(t *testing.T) {
	h := New("", "foo", "1", "bar", "x", "foo", "2", "Foo", "F", "foo", "3").Header
	if h.Len() != 5 {
		t.Fatalf("Len %d, want 5", h.Len())
	}
	if h.Get("foo") != "1" {
		t.Errorf("Get(foo) = %q, want the first, 1", h.Get("foo"))
	}
	if v, ok := h.Lookup("foo"); !ok || v != "1" {
		t.Errorf("Lookup(foo) = %q, %v", v, ok)
	}
	if !slices.Equal(h.Values("foo"), []string{"1", "2", "3"}) {
		t.Errorf("Values(foo) = %q", h.Values("foo"))
	}
	if h.Get("Foo") != "F" || h.Get("FOO") != "" {
		t.Error("keys are not case-sensitive")
	}
	if !h.Has("bar") || h.Has("baz") {
		t.Error("Has is wrong")
	}
	if k, v := h.At(3); k != "Foo" || v != "F" {
		t.Errorf("At(3) = %q, %q", k, v)
	}
}

func TestHeaderEmptyValue(t *testing.T) {
	h := New("", "k", "").Header
	if v, ok := h.Lookup("k"); !ok || v != "" || !h.Has("k") {
		t.Errorf("an empty value is not found: %q %v", v, ok)
	}
}

func TestHeaderAddSetDel(t *testing.T) {
	cases := []struct {
		name string
		op   func(h *Header)
		want []string
	}{
		{"add", func(h *Header) { h.Add("a", "9") }, []string{"a=1", "b=2", "a=3", "c=4", "a=5", "a=9"}},
		{"set-first-drops-later", func(h *Header) { h.Set("a", "x") }, []string{"a=x", "b=2", "c=4"}},
		{"set-single", func(h *Header) { h.Set("b", "x") }, []string{"a=1", "b=x", "a=3", "c=4", "a=5"}},
		{"set-new-appends", func(h *Header) { h.Set("d", "x") }, []string{"a=1", "b=2", "a=3", "c=4", "a=5", "d=x"}},
		{"del-all", func(h *Header) { h.Del("a") }, []string{"b=2", "c=4"}},
		{"del-missing", func(h *Header) { h.Del("z") }, []string{"a=1", "b=2", "a=3", "c=4", "a=5"}},
		{"del-then-add", func(h *Header) { h.Del("a"); h.Add("a", "6") }, []string{"b=2", "c=4", "a=6"}},
		{"reset", func(h *Header) { h.Reset() }, nil},
		{"reset-then-add", func(h *Header) { h.Reset(); h.Add("n", "1") }, []string{"n=1"}},
		{"del-everything", func(h *Header) { h.Del("a"); h.Del("b"); h.Del("c") }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := New("", "a", "1", "b", "2", "a", "3", "c", "4", "a", "5").Header
			tc.op(&h)
			if got := entries(&h); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHeaderDelClears: entries removed by Del do not linger in the backing
// array (they would keep their strings alive).
func TestHeaderDelClears(t *testing.T) {
	h := New("", "a", "1", "b", "2", "a", "3").Header
	h.Del("a")
	full := h.fields[:cap(h.fields)]
	for _, f := range full[h.Len():] {
		if f != (field{}) {
			t.Fatalf("removed entry %v left in the backing array", f)
		}
	}
	h.Reset()
	for _, f := range h.fields[:cap(h.fields)] {
		if f != (field{}) {
			t.Fatalf("Reset left %v in the backing array", f)
		}
	}
	if cap(h.fields) == 0 {
		t.Error("Reset dropped the allocated space")
	}
}

func TestHeaderAll(t *testing.T) {
	h := New("", "a", "1", "b", "2", "a", "3").Header
	var got []string
	for k, v := range h.All() {
		got = append(got, k+"="+v)
	}
	if !slices.Equal(got, []string{"a=1", "b=2", "a=3"}) {
		t.Errorf("All yielded %v", got)
	}
	// Stopping early is allowed.
	got = nil
	for k := range h.All() {
		got = append(got, k)
		break
	}
	if !slices.Equal(got, []string{"a"}) {
		t.Errorf("All with break yielded %v", got)
	}
}

func TestHeaderAtOutOfRange(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("At out of range did not panic")
		}
	}()
	h := New("", "a", "1").Header
	h.At(1)
}

func TestHeaderClone(t *testing.T) {
	h := New("", "a", "1", "b", "2").Header
	c := h.Clone()
	h.Set("a", "changed")
	h.Add("c", "3")
	c.Set("b", "mine")
	if got := entries(&c); !slices.Equal(got, []string{"a=1", "b=mine"}) {
		t.Errorf("clone %v changed with the original", got)
	}
	if got := entries(&h); !slices.Equal(got, []string{"a=changed", "b=2", "c=3"}) {
		t.Errorf("original %v changed with the clone", got)
	}
	if a := testing.AllocsPerRun(100, func() { _ = h.Clone() }); a != 1 {
		t.Errorf("Clone: %v allocations, want 1", a)
	}
}

func TestHeaderLookupAllocs(t *testing.T) {
	h := typicalMessage().Header
	if a := testing.AllocsPerRun(100, func() {
		_ = h.Get(HdrContentType)
		_, _ = h.Lookup("missing")
		_ = h.Has(HdrDestination)
		_ = h.Len()
		for range h.All() {
		}
	}); a != 0 {
		t.Errorf("lookups: %v allocations, want 0", a)
	}
}

func TestNew(t *testing.T) {
	f := New(CmdSend, "destination", "/q", "k", "v")
	if f.Command != CmdSend || !slices.Equal(entries(&f.Header), []string{"destination=/q", "k=v"}) || f.Body != nil {
		t.Errorf("New: %s", render(f))
	}
	f = New(CmdDisconnect)
	if f.Header.Len() != 0 {
		t.Errorf("New without headers: %s", render(f))
	}
	defer func() {
		if recover() == nil {
			t.Error("New with an odd number of arguments did not panic")
		}
	}()
	//lint:ignore SA5012 the panic on an odd count is what is tested
	New(CmdSend, "destination")
}

func TestFrameClone(t *testing.T) {
	f := fr(CmdMessage, "body", "a", "1")
	c := f.Clone()
	f.Body[0] = 'X'
	f.Header.Set("a", "2")
	if string(c.Body) != "body" || c.Header.Get("a") != "1" || c.Command != CmdMessage {
		t.Errorf("clone shares with the original: %s", render(c))
	}
	if c := fr(CmdAck, "", "id", "1").Clone(); c.Body != nil {
		t.Errorf("clone of a frame without a body has body %q", c.Body)
	}
	if c := (&Frame{}).Clone(); !c.IsHeartBeat() {
		t.Error("clone of a heart-beat is not a heart-beat")
	}
}

func TestFrameString(t *testing.T) {
	cases := []struct {
		f    *Frame
		want string
	}{
		{fr(CmdConnect, "", "login", "guest", "passcode", "s3cr3t", "passcode", "again"), `CONNECT login:"guest" passcode:"****" passcode:"****" body=0B`},
		{fr(CmdSend, "hello", "destination", "/q", "k", "a\nb"), `SEND destination:"/q" k:"a\nb" body=5B`},
		{&Frame{}, "heart-beat"},
	}
	for _, tc := range cases {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		if strings.Contains(tc.f.String(), "s3cr3t") {
			t.Error("String() shows the passcode")
		}
	}
}

func TestFrameContentLength(t *testing.T) {
	cases := []struct {
		kv     []string
		n      int
		ok     bool
		badErr bool
	}{
		{nil, 0, false, false},
		{[]string{"content-length", "12"}, 12, true, false},
		{[]string{"content-length", "0"}, 0, true, false},
		{[]string{"content-length", "1", "content-length", "2"}, 1, true, false},
		{[]string{"content-length", "-1"}, 0, true, true},
		{[]string{"content-length", ""}, 0, true, true},
		{[]string{"content-length", " 1"}, 0, true, true},
		{[]string{"content-length", "1234567890123456789"}, 0, true, true},
		{[]string{"Content-Length", "5"}, 0, false, false},
	}
	for _, tc := range cases {
		n, ok, err := New(CmdSend, tc.kv...).ContentLength()
		if n != tc.n || ok != tc.ok || (err != nil) != tc.badErr {
			t.Errorf("%q: got %d %v %v, want %d %v bad=%v", tc.kv, n, ok, err, tc.n, tc.ok, tc.badErr)
		}
		if tc.badErr && !errors.Is(err, ErrBadContentLength) {
			t.Errorf("%q: err %v, want ErrBadContentLength", tc.kv, err)
		}
	}
}

func TestParseLength(t *testing.T) {
	const maxInt = int(^uint(0) >> 1)
	good := map[string]int64{"0": 0, "7": 7, "0042": 42, "2147483647": 2147483647, "999999999999999999": 999999999999999999}
	for in, want := range good {
		if int64(maxInt) < want {
			continue // a 32-bit int: an overflow, below
		}
		if n, err := parseLength(in); err != nil || int64(n) != want {
			t.Errorf("parseLength(%q) = %d, %v; want %d", in, n, err, want)
		}
	}
	for _, in := range []string{"", "-0", "+1", "1e3", "0x10", "1_000", " 1", "1 ", "١", "9999999999999999999",
		"99999999999999999999999999", "4294967296", "2147483648", "999999999999999999"} {
		if n, ok := good[in]; ok && n <= int64(maxInt) || int64(maxInt) > 1<<32 && (in == "4294967296" || in == "2147483648") {
			continue // they fit a 64-bit int
		}
		if n, err := parseLength(in); err != ErrBadContentLength {
			t.Errorf("parseLength(%q) = %d, %v; want ErrBadContentLength", in, n, err)
		}
	}
}

func TestCommands(t *testing.T) {
	all := []string{CmdConnect, CmdStomp, CmdConnected, CmdSend, CmdSubscribe, CmdUnsubscribe, CmdAck, CmdNack,
		CmdBegin, CmdCommit, CmdAbort, CmdDisconnect, CmdMessage, CmdReceipt, CmdError}
	for _, c := range all {
		if !IsCommand(c) {
			t.Errorf("IsCommand(%q) is false", c)
		}
		if got, want := HasBody(c), c == CmdSend || c == CmdMessage || c == CmdError; got != want {
			t.Errorf("HasBody(%q) = %v", c, got)
		}
		// Every command reads, whatever the version.
		for _, v := range versions {
			r := NewReader(strings.NewReader(c + "\n\n\x00"))
			r.SetVersion(v)
			if f, err := r.ReadFrame(); err != nil || f.Command != c {
				t.Errorf("reading %s in %s: %v", c, v, err)
			}
		}
	}
	for _, c := range []string{"", "send", "CONNECT ", "FOO", "HEARTBEAT", "MESSAGES"} {
		if IsCommand(c) {
			t.Errorf("IsCommand(%q) is true", c)
		}
	}
	if a := testing.AllocsPerRun(100, func() { IsCommand(CmdUnsubscribe) }); a != 0 {
		t.Errorf("IsCommand: %v allocations", a)
	}
}

func TestVersion(t *testing.T) {
	for _, v := range versions {
		if !v.Valid() {
			t.Errorf("%q not valid", v)
		}
	}
	for _, v := range []Version{"", "1", "1.3", "2.0", "1.2 "} {
		if v.Valid() {
			t.Errorf("%q valid", v)
		}
	}
}

func TestProtocolError(t *testing.T) {
	err := error(&ProtocolError{Err: ErrMissingNUL, Command: "SEND", Offset: 42})
	if got, want := err.Error(), "frame: body not terminated by NUL in SEND frame at byte 42"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, ErrMissingNUL) || errors.Is(err, ErrBadEscape) {
		t.Error("errors.Is does not follow Err")
	}
	for _, s := range append(append([]error{}, protocolSentinels...), limitSentinels...) {
		if !strings.HasPrefix(s.Error(), "frame: ") {
			t.Errorf("sentinel %q does not start with the package name", s)
		}
	}
}

// packed reads one MESSAGE with the given header lines in owned mode and
// returns its Header, which the Reader hands over packed.
func packed(t *testing.T, lines ...string) Header {
	t.Helper()
	r := NewReader(strings.NewReader("MESSAGE\n" + strings.Join(lines, "\n") + "\n\nbody\x00"))
	r.SetVersion(V12)
	r.SetOwned(CmdMessage)
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.packed == "" || f.Header.fields != nil || string(f.Body) != "body" {
		t.Fatalf("not packed: %+v, body %q", f.Header, f.Body)
	}
	return f.Header
}

// TestHeaderPacked runs every Header method on a packed Header (a Reader's
// hand-over) against the same entries as fields: reads answer alike
// without unpacking, and a change unpacks a copy of its own without
// touching the original or its clones.
func TestHeaderPacked(t *testing.T) {
	lines := []string{"a:1", "b:", "a:2", "dest\\cination:x\\ny", "c:3"}
	want := []string{"a=1", "b=", "a=2", "dest:ination=x\ny", "c=3"}
	h := packed(t, lines...)
	if got := entries(&h); !slices.Equal(got, want) {
		t.Fatalf("entries %q, want %q", got, want)
	}
	var all []string
	for k, v := range h.All() {
		all = append(all, k+"="+v)
	}
	if !slices.Equal(all, want) {
		t.Fatalf("All %q, want %q", all, want)
	}
	if h.Get("a") != "1" || h.Get("b") != "" || !h.Has("b") || h.Has("z") || !slices.Equal(h.Values("a"), []string{"1", "2"}) || h.Get("dest:ination") != "x\ny" {
		t.Fatalf("lookups on %q", entries(&h))
	}
	if v, ok := h.Lookup("z"); ok || v != "" {
		t.Fatal("Lookup found an absent key")
	}
	if n := testing.AllocsPerRun(100, func() { _ = h.Get("c"); _ = h.Len(); _, _ = h.At(3) }); n != 0 {
		t.Fatalf("reads allocate %v", n)
	}
	h.Del("z") // absent: stays packed
	if h.packed == "" {
		t.Fatal("Del of an absent key unpacked")
	}
	c := h.Clone()
	if n := testing.AllocsPerRun(100, func() { _ = h.Clone() }); n != 0 || c.packed != h.packed {
		t.Fatalf("Clone of a packed Header: %v allocations, shares %v", n, c.packed == h.packed)
	}
	var room HeaderRoom
	in := h.CloneInto(&room) // five entries: more than room
	small := packed(t, "x:1", "y:2")
	into := small.CloneInto(&room)
	if got := entries(&in); !slices.Equal(got, want) || !slices.Equal(entries(&into), []string{"x=1", "y=2"}) || &into.fields[0] != &room[0] {
		t.Fatalf("CloneInto: %q, %q", entries(&in), entries(&into))
	}

	changes := []struct {
		name string
		do   func(h *Header)
		want []string
	}{
		{"Add", func(h *Header) { h.Add("d", "4") }, append(slices.Clone(want), "d=4")},
		{"Set", func(h *Header) { h.Set("a", "9") }, []string{"a=9", "b=", "dest:ination=x\ny", "c=3"}},
		{"Del", func(h *Header) { h.Del("a") }, []string{"b=", "dest:ination=x\ny", "c=3"}},
		{"Reset", func(h *Header) { h.Reset() }, nil},
	}
	for _, tc := range changes {
		g := h.Clone()
		tc.do(&g)
		if got := entries(&g); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if g.packed != "" {
			t.Errorf("%s: still packed", tc.name)
		}
		if got := entries(&h); !slices.Equal(got, want) {
			t.Fatalf("%s on a clone changed the original: %q", tc.name, got)
		}
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("At(5) of five entries did not panic")
			}
		}()
		h.At(5)
	}()
}

// TestHeaderPackedLimits reads frames whose header text does not fit the
// packed offsets (past 64 KiB): they are handed over as fields, alike.
func TestHeaderPackedLimits(t *testing.T) {
	long := strings.Repeat("v", 70000)
	r := NewReader(strings.NewReader("MESSAGE\na:1\nlong:" + long + "\n\nbody\x00"))
	r.SetVersion(V12)
	r.SetOwned(CmdMessage)
	r.SetLimits(Limits{MaxLineSize: 100000, MaxFrameSize: 200000})
	f, err := r.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	if f.Header.packed != "" || f.Header.Get("long") != long || f.Header.Get("a") != "1" || string(f.Body) != "body" {
		t.Fatalf("a header past 64 KiB: packed %v, %d entries", f.Header.packed != "", f.Header.Len())
	}
}
