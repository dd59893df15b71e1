package stomp

import "testing"

// Each option satisfies the option types of the calls it applies to, and
// only those: Send(ctx, d, b, WithAck(...)) does not compile. (The
// compiler checks the calls; this pins which interfaces each implements.)
func TestTypedOptions(t *testing.T) {
	var r *Receipt
	opts := []struct {
		name             string
		o                any
		send, sub, begin bool
	}{
		{"WithHeader", WithHeader("k", "v"), true, true, true},
		{"WithReceipt", WithReceipt(&r), true, true, true},
		{"WithContentType", WithContentType("text/plain"), true, false, false},
		{"WithContentLength", WithContentLength(false), true, false, false},
		{"WithAck", WithAck(AckClient), false, true, false},
		{"WithID", WithID("x"), false, true, true},
		{"WithBuffer", WithBuffer(1), false, true, false},
		{"WithPrefetch", WithPrefetch(1), false, true, false},
		{"WithOverflow", WithOverflow(OverflowDrop), false, true, false},
	}
	for _, tt := range opts {
		_, send := tt.o.(SendOption)
		_, sub := tt.o.(SubscribeOption)
		_, begin := tt.o.(BeginOption)
		_, call := tt.o.(CallOption)
		if send != tt.send || sub != tt.sub || begin != tt.begin || call != (tt.send && tt.sub && tt.begin) {
			t.Errorf("%s: send %v subscribe %v begin %v call %v", tt.name, send, sub, begin, call)
		}
	}
}
