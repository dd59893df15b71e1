package frame

import (
	"errors"
	"fmt"
)

// Sentinel errors. A Reader or Writer returns them wrapped in a
// *ProtocolError or *LimitError that says where and by how much; test for
// them with errors.Is.
var (
	// ErrUnknownCommand: the command line is not a STOMP command.
	ErrUnknownCommand = errors.New("frame: unknown command")
	// ErrMalformedHeader: a header line without a colon, or with an empty name.
	ErrMalformedHeader = errors.New("frame: malformed header line")
	// ErrBadEscape: an undefined escape sequence in a 1.1 or 1.2 header.
	ErrBadEscape = errors.New("frame: undefined escape sequence")
	// ErrBadContentLength: content-length is not a non-negative decimal integer.
	ErrBadContentLength = errors.New("frame: invalid content-length")
	// ErrMissingNUL: the byte after a content-length body is not NUL.
	ErrMissingNUL = errors.New("frame: body not terminated by NUL")
	// ErrBodyNotAllowed: a body on a command other than SEND, MESSAGE or ERROR.
	ErrBodyNotAllowed = errors.New("frame: body not allowed for this command")
	// ErrUnencodable: a frame the Writer cannot put on the wire in the
	// current version (a newline in a 1.0 header value, a NUL in a body
	// written without content-length, a colon in a header name that cannot
	// be escaped, ...).
	ErrUnencodable = errors.New("frame: cannot be encoded in this version")

	// ErrFrameTooLarge: the frame exceeds Limits.MaxFrameSize.
	ErrFrameTooLarge = errors.New("frame: frame too large")
	// ErrBodyTooLarge: the body exceeds Limits.MaxBodySize.
	ErrBodyTooLarge = errors.New("frame: body too large")
	// ErrTooManyHeaders: more header lines than Limits.MaxHeaders.
	ErrTooManyHeaders = errors.New("frame: too many headers")
	// ErrLineTooLong: a command or header line longer than Limits.MaxLineSize.
	ErrLineTooLong = errors.New("frame: line too long")
)

// ProtocolError is malformed input: what was wrong (Err, one of the
// sentinels), in which frame (Command, empty while the command line itself
// is being read) and at which byte offset of the stream.
type ProtocolError struct {
	Err     error  // the sentinel: ErrUnknownCommand, ErrBadEscape, ...
	Command string // the frame's command, if it was read
	Offset  int64  // byte offset in the stream where the problem was found
	Detail  string // the offending text, quoted and shortened
}

// Error says what was wrong, in which frame and at which byte.
func (e *ProtocolError) Error() string {
	s := e.Err.Error()
	if e.Detail != "" {
		s += " " + e.Detail
	}
	if e.Command != "" {
		s += " in " + e.Command + " frame"
	}
	return fmt.Sprintf("%s at byte %d", s, e.Offset)
}

// Unwrap returns the sentinel.
func (e *ProtocolError) Unwrap() error { return e.Err }

// LimitError is input that exceeds one of the Limits: which one (Err, one
// of the size sentinels), the limit and the size seen (at least; a reader
// stops counting once the limit is passed).
type LimitError struct {
	Err     error // ErrFrameTooLarge, ErrBodyTooLarge, ErrTooManyHeaders or ErrLineTooLong
	Command string
	Limit   int
	Size    int
}

// Error says which limit was exceeded, in which frame and by how much.
func (e *LimitError) Error() string {
	in := ""
	if e.Command != "" {
		in = " in " + e.Command + " frame"
	}
	return fmt.Sprintf("%v%s: %d exceeds the limit of %d by %d", e.Err, in, e.Size, e.Limit, e.Size-e.Limit)
}

// Unwrap returns the sentinel.
func (e *LimitError) Unwrap() error { return e.Err }

// Limits bound what a Reader accepts. A zero field takes the default; a
// negative one means no limit (use only with trusted peers).
type Limits struct {
	MaxFrameSize int // command, headers and body together, in bytes; default 8 MiB + 64 KiB
	MaxBodySize  int // body bytes; default 8 MiB
	MaxHeaders   int // header entries; default 256
	MaxLineSize  int // one command or header line, in bytes, before unescaping; default 16 KiB
}

// Defaults for Limits.
const (
	DefaultMaxBodySize  = 8 << 20
	DefaultMaxFrameSize = DefaultMaxBodySize + 64<<10
	DefaultMaxHeaders   = 256
	DefaultMaxLineSize  = 16 << 10
)

// DefaultLimits returns the limits a Reader has when none are set.
func DefaultLimits() Limits {
	return Limits{
		MaxFrameSize: DefaultMaxFrameSize,
		MaxBodySize:  DefaultMaxBodySize,
		MaxHeaders:   DefaultMaxHeaders,
		MaxLineSize:  DefaultMaxLineSize,
	}
}

// resolve fills zero fields with defaults and turns negative ones into
// "unlimited".
func (l Limits) resolve() Limits {
	d := DefaultLimits()
	pick := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return int(^uint(0) >> 1)
		}
		return v
	}
	return Limits{
		MaxFrameSize: pick(l.MaxFrameSize, d.MaxFrameSize),
		MaxBodySize:  pick(l.MaxBodySize, d.MaxBodySize),
		MaxHeaders:   pick(l.MaxHeaders, d.MaxHeaders),
		MaxLineSize:  pick(l.MaxLineSize, d.MaxLineSize),
	}
}
