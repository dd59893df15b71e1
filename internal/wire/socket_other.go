//go:build !linux

package wire

import "io"

// newSocketReader returns nil: outside Linux every transport is read
// through its own Read.
func newSocketReader(io.Reader) io.Reader { return nil }

// newSocketWriter returns nil: outside Linux every transport is written
// through its own Write.
func newSocketWriter(io.Writer) io.Writer { return nil }
