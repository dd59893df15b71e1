package reconnect

import "math/rand/v2"

// Rotation is the failover list: the addresses tried in each round, in the
// order given or in a new random order each round. T is whatever names an
// address for the caller (a URL string, a parsed endpoint). A Rotation
// never changes after [NewRotation]: it is safe for concurrent use.
type Rotation[T any] struct {
	addrs   []T
	shuffle bool
}

// NewRotation returns the rotation of addrs (copied). With shuffle, every
// round is a new random permutation of them, which spreads a fleet of
// clients over the brokers of a cluster instead of sending all of them to
// the first; without it every round is addrs as given.
func NewRotation[T any](addrs []T, shuffle bool) *Rotation[T] {
	return &Rotation[T]{addrs: append([]T(nil), addrs...), shuffle: shuffle}
}

// Round returns the order of the next round: every address exactly once.
// The slice is new (it allocates len(addrs) elements) and the caller's to
// keep or change. An empty rotation gives an empty round.
func (r *Rotation[T]) Round() []T {
	round := append([]T(nil), r.addrs...)
	if r.shuffle {
		rand.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
	}
	return round
}

// Len is the number of addresses in a round.
func (r *Rotation[T]) Len() int { return len(r.addrs) }

// Shuffled says whether each round is in a new random order.
func (r *Rotation[T]) Shuffled() bool { return r.shuffle }
