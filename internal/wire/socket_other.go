//go:build !linux

package wire

import "io"

// newSocketReader returns nil: outside Linux every transport is read
// through its own Read.
func newSocketReader(io.Reader) io.Reader { return nil }
