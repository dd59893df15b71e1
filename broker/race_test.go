//go:build race

package broker_test

// raceEnabled: the race detector is on (sync.Pool then drops a quarter of
// what it is given, on purpose).
const raceEnabled = true
