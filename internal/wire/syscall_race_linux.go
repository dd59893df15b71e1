//go:build linux && race

package wire

import "syscall"

// Under the race detector sysRead and sysWrite go through syscall.Read and
// syscall.Write, which tell it what the kernel wrote and read, and order
// each read of the process after the writes before it: raw system calls
// would hide all three from it (see socket).

// sysRead is read(2); len(p) > 0.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}

// sysWrite is write(2); len(p) > 0.
func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	if err != nil {
		return max(n, 0), err.(syscall.Errno)
	}
	return n, 0
}
