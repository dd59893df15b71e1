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
