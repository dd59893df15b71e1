package reconnect

import (
	"slices"
	"testing"
)

func TestRotationInOrder(t *testing.T) {
	addrs := []string{"tcp://a:61613", "tcp://b:61613", "tcp://c:61613"}
	r := NewRotation(addrs, false)
	addrs[0] = "changed" // NewRotation copied them
	want := []string{"tcp://a:61613", "tcp://b:61613", "tcp://c:61613"}
	for i := range 5 {
		got := r.Round()
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: %v, want %v", i+1, got, want)
		}
		got[0] = "mine" // the caller's to change
	}
	if r.Len() != 3 || r.Shuffled() {
		t.Errorf("Len %d, Shuffled %v", r.Len(), r.Shuffled())
	}
}

func TestRotationShuffled(t *testing.T) {
	addrs := []int{0, 1, 2, 3, 4}
	r := NewRotation(addrs, true)
	const rounds = 2000
	orders := map[[5]int]int{}
	var first [5]int
	for i := range rounds {
		got := r.Round()
		if len(got) != len(addrs) {
			t.Fatalf("round %d: %v", i+1, got)
		}
		var seen [5]int
		for _, a := range got {
			seen[a]++
		}
		if seen != [5]int{1, 1, 1, 1, 1} {
			t.Fatalf("round %d: %v does not hold every address exactly once", i+1, got)
		}
		orders[[5]int(got)]++
		first[got[0]]++
	}
	// 120 orders, each first address about 400 times: a fixed order, or
	// one that ignores an address, cannot pass.
	if len(orders) < 100 {
		t.Errorf("%d rounds gave only %d different orders of 5", rounds, len(orders))
	}
	for a, n := range first {
		if n < 250 || n > 550 {
			t.Errorf("address %d came first in %d of %d rounds, want about %d", a, n, rounds, rounds/5)
		}
	}
	if !slices.Equal(addrs, []int{0, 1, 2, 3, 4}) {
		t.Errorf("shuffling changed the caller's slice: %v", addrs)
	}
	if !r.Shuffled() {
		t.Error("not Shuffled")
	}
}

func TestRotationEdges(t *testing.T) {
	for _, shuffle := range []bool{false, true} {
		if got := NewRotation[string](nil, shuffle).Round(); len(got) != 0 {
			t.Errorf("empty rotation: %v", got)
		}
		if got := NewRotation([]string{"x"}, shuffle).Round(); !slices.Equal(got, []string{"x"}) {
			t.Errorf("one address: %v", got)
		}
	}
}
