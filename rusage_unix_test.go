//go:build unix

package stomp

import (
	"syscall"
	"time"
)

// processCPU returns the user+system CPU time this process has used so far
// (getrusage RUSAGE_SELF), or -1 if it cannot tell.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
