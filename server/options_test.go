package server

import (
	"strings"
	"testing"
	"time"
)

// TestNewRejectsBadOptions: every option with a value it cannot take makes
// New fail, naming it, instead of being ignored.
func TestNewRejectsBadOptions(t *testing.T) {
	bad := map[string]Option{
		"WithHeartBeat":         WithHeartBeat(-time.Second, 0),
		"WithOutboundQueue":     WithOutboundQueue(0),
		"WithOutboundBytes":     WithOutboundBytes(-1),
		"WithLinger":            WithLinger(0),
		"WithTransactionLimit":  WithTransactionLimit(-5),
		"WithTransactionBytes":  WithTransactionBytes(0),
		"WithSubscriptionLimit": WithSubscriptionLimit(0),
		"WithSendWindow":        WithSendWindow(0, 1),
	}
	for name, o := range bad {
		srv, err := New(NopHandler{}, o)
		if err == nil || srv != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, srv, err)
			continue
		}
		if !strings.HasPrefix(err.Error(), "server: "+name+"(") {
			t.Errorf("%s: error %q does not name the option", name, err)
		}
	}
	if _, err := New(NopHandler{}, WithSendWindow(1, 0), WithLinger(-1)); err == nil ||
		!strings.Contains(err.Error(), "WithSendWindow") || !strings.Contains(err.Error(), "WithLinger") {
		t.Errorf("two bad options: %v, want both named", err)
	}
	if _, err := New(nil); err == nil {
		t.Error("New(nil) did not fail")
	}
	srv, err := New(NopHandler{}, WithHeartBeat(0, 0), WithSendWindow(1, 1), WithTransactionBytes(1), WithOutboundBytes(1))
	if err != nil || srv == nil {
		t.Fatalf("valid options: %v", err)
	}
	if c := srv.cfg; c.windowFrames != 1 || c.windowBytes != 1 || c.txBytes != 1 || c.outBytes != 1 {
		t.Fatalf("options not applied: %+v", c)
	}
}
