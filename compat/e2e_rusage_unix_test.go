//go:build unix

package compat

import (
	"syscall"
	"time"
)

// processCPU returns the user+system CPU time this process has used so far
// (getrusage RUSAGE_SELF): every thread, the garbage collector's included.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
