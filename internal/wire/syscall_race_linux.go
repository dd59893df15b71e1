//go:build linux && race

package wire

import "syscall"

// sysRead is read(2) through syscall.Read under the race detector, which
// it tells what the kernel wrote and that the read follows the process's
// writes before it: a raw system call would hide both from it (see
// socketReader); len(p) > 0.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return n, 0
}
