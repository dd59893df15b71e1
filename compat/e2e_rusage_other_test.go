//go:build !unix

package compat

import (
	"errors"
	"time"
)

// processCPU is unavailable without getrusage: the benchmarks then report
// no CPU per message.
func processCPU() (time.Duration, error) {
	return 0, errors.New("compat: no getrusage on this system")
}

// processSyscalls is unavailable without /proc/self/io.
func processSyscalls() (reads, writes uint64, err error) {
	return 0, 0, errors.New("compat: no /proc/self/io on this system")
}
