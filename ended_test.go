package stomp

import "testing"

// checkEnded asserts what must hold once a connection has ended: every
// receipt resolved, every subscription channel and Unrouted closed (it
// drains them), nothing left in Subscriptions or Transactions.
func checkEnded(t testing.TB, c *Conn, receipts []*Receipt, subs []*Subscription) {
	t.Helper()
	for _, r := range receipts {
		select {
		case <-r.Done():
		default:
			t.Fatalf("receipt %q unresolved after the connection ended", r.ID())
		}
	}
	for _, s := range subs {
		for range s.C() {
		}
	}
	for range c.Unrouted() {
	}
	if n := len(c.Subscriptions()); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
	if n := len(c.Transactions()); n != 0 {
		t.Fatalf("%d transactions left", n)
	}
}

// CheckEnded is checkEnded for the tests of package stomp_test.
var CheckEnded = checkEnded
