//go:build unix

package compat

import (
	"os"
	"strconv"
	"strings"
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

// processSyscalls returns the read and write system calls this process has
// made so far (syscr and syscw of /proc/self/io); an error where there is
// no such file (unix systems other than Linux).
func processSyscalls() (reads, writes uint64, err error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ": ")
		switch k {
		case "syscr":
			reads, err = strconv.ParseUint(v, 10, 64)
		case "syscw":
			writes, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return 0, 0, err
		}
	}
	return reads, writes, nil
}
