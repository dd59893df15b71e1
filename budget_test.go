package stomp

import "testing"

// TestBudgetSignalsOnlyTheCrossing: a release signals room only when it
// brings the budget back under its limit; the waiting reader wakes then,
// and the releases of the normal run touch no channel.
func TestBudgetSignalsOnlyTheCrossing(t *testing.T) {
	b := budget{limit: 100, room: make(chan struct{}, 1)}
	b.add(50)
	b.release(50)
	if len(b.room) != 0 {
		t.Fatal("a release under the limit signalled room")
	}
	b.add(150)
	if !b.full() {
		t.Fatal("150 of 100 is not full")
	}
	done := make(chan struct{})
	woke := make(chan bool)
	go func() { woke <- b.wait(done) }()
	b.release(30) // 120: still over
	if len(b.room) != 0 {
		t.Fatal("a release still over the limit signalled room")
	}
	b.release(30) // 90: the crossing
	if !<-woke {
		t.Fatal("wait returned false")
	}
	select { // left over if wait found room without waiting
	case <-b.room:
	default:
	}
	b.release(10) // 80
	if len(b.room) != 0 {
		t.Fatal("a release after the crossing signalled room")
	}
	// A signal left over makes a later wait look again, and wait on.
	b.add(100) // 180
	b.room <- struct{}{}
	go func() { woke <- b.wait(done) }()
	b.release(80) // 100: the limit itself is room
	if !<-woke || b.full() {
		t.Fatal("wait did not end at the limit")
	}
	b.add(1)
	go func() { woke <- b.wait(done) }()
	close(done)
	if <-woke {
		t.Fatal("wait reported room after done")
	}
}
