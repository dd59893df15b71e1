package frame

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// ContentLengthMode says when a Writer puts a content-length header on
// SEND, MESSAGE and ERROR frames. Whatever the mode, the Writer computes the
// value itself from the body; a content-length entry in the frame's Header
// is never written as is.
type ContentLengthMode int

const (
	// ContentLengthAuto writes content-length when the body contains a NUL
	// byte (it cannot be read without one) or when the frame's Header has a
	// content-length entry (the caller asked for one).
	ContentLengthAuto ContentLengthMode = iota
	// ContentLengthAlways writes content-length on every frame that may
	// carry a body, empty bodies included.
	ContentLengthAlways
	// ContentLengthNever writes no content-length; a body containing a NUL
	// is then ErrUnencodable. ActiveMQ, for one, makes a message without
	// content-length a text message and one with it a bytes message.
	ContentLengthNever
)

// Writer writes STOMP frames to an io.Writer through a buffer. Frames are
// not written through until Flush (or until the buffer fills), so a
// goroutine that writes many frames and then flushes once costs one write
// to the underlying connection. It is owned by one goroutine: its methods
// are not safe for concurrent use. WriteFrame does not allocate once a
// scratch buffer for the command and header lines has grown to fit them
// (it keeps up to 64 KiB of it between frames).
type Writer struct {
	bw      *bufio.Writer // nil until the first write, and between flushes when releasing
	dst     io.Writer
	size    int
	release bool // give bw back to the pool after each Flush
	version Version
	mode    ContentLengthMode
	head    []byte // scratch: the command and header lines of one frame
}

// NewWriter returns a Writer with a DefaultBufferSize buffer, version 1.0
// and ContentLengthAuto. The buffer is allocated at the first write.
func NewWriter(w io.Writer) *Writer { return NewWriterSize(w, DefaultBufferSize) }

// NewWriterSize is NewWriter with a buffer of at least size bytes.
func NewWriterSize(w io.Writer, size int) *Writer {
	return &Writer{dst: w, size: max(size, 16), version: V10}
}

// writerPool holds the buffers of released Writers of DefaultBufferSize.
var writerPool sync.Pool

// buf returns the Writer's buffer, taking one if it has none.
func (w *Writer) buf() *bufio.Writer {
	if w.bw == nil {
		if w.size == DefaultBufferSize {
			if bw, _ := writerPool.Get().(*bufio.Writer); bw != nil {
				bw.Reset(w.dst)
				w.bw = bw
				return bw
			}
		}
		w.bw = bufio.NewWriterSize(w.dst, w.size)
	}
	return w.bw
}

// SetRelease says whether the Writer gives its buffer back after every
// successful Flush (to a pool that Writers of DefaultBufferSize share) and
// takes one again at the next write: an idle Writer then holds no buffer
// (and no scratch past 512 bytes), for a pool Get and Put per flush. For
// servers with many idle connections. Default false.
func (w *Writer) SetRelease(release bool) { w.release = release }

// SetVersion sets the version that governs header escaping.
func (w *Writer) SetVersion(v Version) { w.version = v }

// Version returns the version set with SetVersion (V10 by default).
func (w *Writer) Version() Version { return w.version }

// SetContentLength sets the content-length mode for the frames written
// after it.
func (w *Writer) SetContentLength(m ContentLengthMode) { w.mode = m }

// Buffered returns the number of bytes written but not yet flushed.
func (w *Writer) Buffered() int {
	if w.bw == nil {
		return 0
	}
	return w.bw.Buffered()
}

// Flush writes buffered frames to the underlying io.Writer.
func (w *Writer) Flush() error {
	if w.bw == nil {
		return nil
	}
	err := w.bw.Flush()
	if err == nil && w.release {
		w.bw.Reset(nil)
		if w.size == DefaultBufferSize {
			writerPool.Put(w.bw)
		}
		w.bw = nil
		if cap(w.head) > 512 {
			w.head = nil
		}
	}
	return err
}

// WriteHeartBeat buffers one end-of-line byte, the STOMP heart-beat.
func (w *Writer) WriteHeartBeat() error { return w.buf().WriteByte('\n') }

// WriteFrame buffers f. It checks f first and buffers nothing if f cannot
// be encoded in the Writer's version: an unknown or empty command, a body
// on a command that may not carry one, an empty header name, or a header
// that the version cannot escape (any newline, or a colon in a name, in
// 1.0 and in CONNECT/CONNECTED; a carriage return ending a value before
// 1.2) are all errors wrapping ErrUnencodable, ErrUnknownCommand,
// ErrBodyNotAllowed or ErrMalformedHeader.
func (w *Writer) WriteFrame(f *Frame) error {
	// The command and headers are put together with appends in a scratch
	// buffer and handed to bufio in one piece: many small bufio calls cost
	// more than the copy.
	b, err := Encoder{Version: w.version, ContentLength: w.mode}.appendHead(w.head[:0], f)
	if err != nil {
		return err
	}
	if cap(b) <= maxScratch {
		w.head = b
	}
	bw := w.buf()
	bw.Write(b)
	if len(f.Body) >= bw.Size() {
		// bufio would copy what fits of the body into its buffer and then
		// write that; flushing first lets it write the body straight
		// through, with no copy and no more writes.
		bw.Flush()
	}
	bw.Write(f.Body)
	return bw.WriteByte(0)
}

// WriteEncoded buffers p, frames as Encoder.Append encodes them, as is.
// A p of the buffer's size or more goes straight through to the
// io.Writer, after what was buffered.
func (w *Writer) WriteEncoded(p []byte) error {
	_, err := w.buf().Write(p)
	return err
}

// Encoder encodes frames into byte slices, exactly as a Writer with the
// same version and content-length mode writes them. Its zero value
// encodes in 1.0 with ContentLengthAuto. It holds no state: one value may
// be used from many goroutines at once.
type Encoder struct {
	Version       Version
	ContentLength ContentLengthMode
}

// Append appends the encoding of f to dst and returns the extended slice.
// If f cannot be encoded it returns dst unchanged and the error
// Writer.WriteFrame would return.
func (e Encoder) Append(dst []byte, f *Frame) ([]byte, error) {
	b, err := e.appendHead(dst, f)
	if err != nil {
		return dst, err
	}
	b = append(b, f.Body...)
	return append(b, 0), nil
}

// appendHead checks f and appends its command and header lines and the
// blank line that ends them, in one pass over the headers: if f cannot be
// encoded it returns b as it was and the error.
func (e Encoder) appendHead(b []byte, f *Frame) ([]byte, error) {
	if !IsCommand(f.Command) {
		return b, &ProtocolError{Err: ErrUnknownCommand, Detail: strconv.Quote(f.Command)}
	}
	bad := func(err error, detail string) ([]byte, error) {
		return b, &ProtocolError{Err: err, Command: f.Command, Detail: strconv.Quote(detail)}
	}
	escaped := e.Version.escapes(f.Command)
	out := append(b, f.Command...)
	out = append(out, '\n')
	hasLength := false
	for i := range f.Header.Len() {
		k, v := f.Header.At(i)
		if p := headerProblem(e.Version, escaped, k, v); p != nil {
			return bad(p, k+":"+v)
		}
		if k == HdrContentLength {
			hasLength = true
			continue
		}
		out = e.appendText(out, k, escaped)
		out = append(out, ':')
		out = e.appendText(out, v, escaped)
		out = append(out, '\n')
	}
	withLength := false
	switch {
	case !HasBody(f.Command):
		if len(f.Body) > 0 {
			return bad(ErrBodyNotAllowed, f.Command)
		}
	case e.ContentLength == ContentLengthAlways:
		withLength = true
	case e.ContentLength == ContentLengthNever:
		if bytes.IndexByte(f.Body, 0) >= 0 {
			return bad(ErrUnencodable, "NUL in body without content-length")
		}
	default:
		withLength = hasLength || bytes.IndexByte(f.Body, 0) >= 0
	}
	if withLength {
		out = append(out, "content-length:"...)
		out = strconv.AppendInt(out, int64(len(f.Body)), 10)
		out = append(out, '\n')
	}
	return append(out, '\n'), nil
}

// maxScratch bounds the scratch a Writer keeps between frames.
const maxScratch = 64 << 10

// headerProblem says why a Writer of version v cannot write the header
// entry key:value (escaped: the frame's headers are escaped), or nil.
func headerProblem(v Version, escaped bool, key, value string) error {
	switch {
	case key == "":
		return ErrMalformedHeader
	// A CR ending a value would be read back as half of a CRLF and lost;
	// one ending a name is safe, the colon follows it.
	case !escaped && (strings.IndexByte(key, ':') >= 0 || strings.IndexByte(key, '\n') >= 0 ||
		strings.IndexByte(value, '\n') >= 0),
		(!escaped || v != V12) && strings.HasSuffix(value, "\r"):
		return ErrUnencodable
	}
	return nil
}

// CheckHeader reports whether a Writer of version v can write the header
// entry key:value in a frame whose headers it escapes (every frame but
// CONNECT, STOMP and CONNECTED, which are written as in V10: check those
// with V10). It returns nil, or a *ProtocolError wrapping
// ErrMalformedHeader (an empty name) or ErrUnencodable (in 1.0 a colon or
// newline in the name or a newline in the value; before 1.2 a value ending
// in a carriage return). It does not allocate when the entry is fine.
func CheckHeader(v Version, key, value string) error {
	if e := headerProblem(v, v.escapes(CmdSend), key, value); e != nil {
		return &ProtocolError{Err: e, Detail: strconv.Quote(key + ":" + value)}
	}
	return nil
}

// escapeOf gives, for each byte that 1.1 and 1.2 escape, the letter that
// follows the backslash (\r only in 1.2).
var escapeOf = [256]byte{'\\': '\\', '\n': 'n', ':': 'c', '\r': 'r'}

// appendText appends a header name or value to b, escaping it if asked to.
// Most have nothing to escape: it looks for what it escapes eight bytes
// at a time first.
func (e Encoder) appendText(b []byte, s string, escaped bool) []byte {
	if !escaped || !needsEscape(s) {
		return append(b, s...)
	}
	start := 0
	for i := 0; i < len(s); i++ {
		c := escapeOf[s[i]]
		if c == 0 || c == 'r' && e.Version != V12 {
			continue
		}
		b = append(b, s[start:i]...)
		b = append(b, '\\', c)
		start = i + 1
	}
	return append(b, s[start:]...)
}

// needsEscape reports whether s holds a byte that 1.1 or 1.2 escape (a
// carriage return counts, though 1.1 leaves it as it is).
func needsEscape(s string) bool {
	i := 0
	if len(s) >= 8 {
		p := unsafe.Slice(unsafe.StringData(s), len(s))
		for ; i+8 <= len(s); i += 8 {
			if special(binary.LittleEndian.Uint64(p[i:])) {
				return true
			}
		}
	}
	for ; i < len(s); i++ {
		if escapeOf[s[i]] != 0 {
			return true
		}
	}
	return false
}

// special reports whether one of the eight bytes of x is a byte that 1.1
// or 1.2 escape: x with that byte XORed in has a zero byte.
func special(x uint64) bool {
	const lsb = 0x0101010101010101
	return zeroBytes(x^(lsb*'\\'))|zeroBytes(x^(lsb*'\n'))|zeroBytes(x^(lsb*':'))|zeroBytes(x^(lsb*'\r')) != 0
}

// zeroBytes returns x with the high bit of each zero byte set (and perhaps
// of bytes above one, after a borrow): 0 if and only if x has no zero byte.
func zeroBytes(x uint64) uint64 {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	return (x - lsb) &^ x & msb
}
