//go:build race

package stomp

const raceEnabled = true
