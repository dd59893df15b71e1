//go:build linux && !race

package wire

import (
	"syscall"
	"unsafe"
)

// sysRead is read(2) as a raw system call (see socketReader); len(p) > 0.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}
