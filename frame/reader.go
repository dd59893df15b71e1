package frame

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"sync"
	"unsafe"
)

// DefaultBufferSize is the size of the read and write buffers of a Reader
// or Writer made with NewReader or NewWriter.
const DefaultBufferSize = 32 << 10

// Reader reads STOMP frames from an io.Reader. It is owned by one
// goroutine: its methods are not safe for concurrent use.
//
// ReadFrame reuses the Reader's memory: the returned *Frame, its Header's
// entries and its Body are valid only until the next call to ReadFrame.
// Header keys and values are immutable strings that may be kept (but for
// the frames SetViews names); call Frame.Clone to keep the rest, or
// SetOwned to have the Reader hand the header entries and body of chosen
// frames over.
type Reader struct {
	br      *bufio.Reader // nil until the first read, and while idle when releasing
	src     io.Reader
	size    int
	release bool         // give br back while waiting for the next frame
	pre     prefixReader // while releasing: the bytes that ended the wait, then src
	version Version
	limits  Limits // resolved: no zero fields
	off     int64  // bytes consumed from br so far

	f      Frame    // the frame handed out, reused
	fields []field  // the backing array of f.Header while the Reader owns it
	used   int      // entries of fields that may hold old strings
	owned  []string // SetOwned: the commands whose frames are handed over
	views  []string // SetViews: the commands whose header strings are views
	handed bool     // the last frame's header entries were handed over
	line   []byte   // scratch for lines longer than br's buffer
	hdr    []byte   // the current frame's header bytes, decoded
	spans  []int    // per header: key start and end, value start and end in hdr
	body   []byte   // scratch for bodies that do not fit br's buffer
}

// NewReader returns a Reader with a DefaultBufferSize buffer, version 1.0
// (the version of CONNECT and CONNECTED, which are never escaped) and
// DefaultLimits.
func NewReader(r io.Reader) *Reader { return NewReaderSize(r, DefaultBufferSize) }

// NewReaderSize is NewReader with a read buffer of at least size bytes.
// Bodies that fit the buffer are returned without copying.
func NewReaderSize(r io.Reader, size int) *Reader {
	return &Reader{src: r, size: max(size, 16), version: V10, limits: Limits{}.resolve()}
}

// SetRelease says whether the Reader gives its read buffer back while it
// waits for the next frame (to a pool that Readers of DefaultBufferSize
// share): when ReadFrame starts with nothing buffered it waits with a
// 256-byte buffer of its own and takes a read buffer again once bytes
// come. An idle Reader then holds no large buffer, for a pool Get and Put
// (and, for a frame longer than 256 bytes, one more read from the source)
// per wait. For servers with many idle connections. Default false.
func (r *Reader) SetRelease(release bool) { r.release = release }

// SetOwned says which frames ReadFrame hands over to the caller: those
// whose command is one of cmds (none by default; SetOwned() with no
// arguments ends it). The header entries and the body of such a frame are
// the caller's: they stay valid after the next ReadFrame and may be kept,
// and changed, without Clone; only the *Frame itself is still reused. For
// a caller that would clone every such frame (a client keeping each
// MESSAGE) it saves the copies and their allocations: a frame costs one,
// a block that holds its header entries (packed: offsets into the header
// text, no pointers for the collector to scan), the header text and a
// body of up to 4 KiB (a larger body has an allocation of its own, so
// that a header string kept alone does not keep a large body alive); a
// frame without headers or body costs none.
func (r *Reader) SetOwned(cmds ...string) {
	r.owned = slices.Clone(cmds)
	if len(r.owned) == 0 {
		r.owned = nil
	}
}

// SetViews says which frames ReadFrame returns with header strings that
// are views of the Reader's memory, like the body: those whose command is
// one of cmds (none by default; SetViews() with no arguments ends it).
// Such a frame's header keys and values are valid only until the next
// ReadFrame, and must be copied to be kept: this saves the allocation of
// the header text for a caller that copies what it keeps of the frame
// anyway (a server copying each SEND into a message of its own). A frame
// that SetOwned hands over is not a view.
func (r *Reader) SetViews(cmds ...string) {
	r.views = slices.Clone(cmds)
	if len(r.views) == 0 {
		r.views = nil
	}
}

// maxShared is the largest body a handed-over frame keeps in one
// allocation with its header text.
const maxShared = 4 << 10

// readerPool holds the buffers of released Readers of DefaultBufferSize.
var readerPool sync.Pool

// wake makes sure the Reader has a read buffer. When releasing and nothing
// is buffered, it first gives the buffer back and waits for the next
// bytes without one; their read error, if any, comes after them.
func (r *Reader) wake() {
	if r.br != nil {
		if !r.release || r.br.Buffered() > 0 || len(r.pre.buf) > 0 || r.pre.err != nil {
			return
		}
		r.br.Reset(nil)
		if r.size == DefaultBufferSize {
			readerPool.Put(r.br)
		}
		r.br = nil
	}
	var src io.Reader = r.src
	if r.release {
		n, err := r.src.Read(r.pre.small[:])
		r.pre.buf, r.pre.err, r.pre.r = r.pre.small[:n], err, r.src
		src = &r.pre
	}
	if r.size == DefaultBufferSize {
		if br, _ := readerPool.Get().(*bufio.Reader); br != nil {
			br.Reset(src)
			r.br = br
			return
		}
	}
	r.br = bufio.NewReaderSize(src, r.size)
}

// prefixReader reads buf, then err if set, then r.
type prefixReader struct {
	small [256]byte
	buf   []byte
	err   error
	r     io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	if p.err != nil {
		err := p.err
		p.err = nil
		return 0, err
	}
	return p.r.Read(b)
}

// Buffered returns how many bytes the Reader has read from its source
// and not yet returned in a frame: 0 between frames means the next
// ReadFrame reads the source.
func (r *Reader) Buffered() int {
	n := len(r.pre.buf)
	if r.br != nil {
		n += r.br.Buffered()
	}
	return n
}

// SetVersion sets the version that governs header unescaping, normally
// once CONNECT/CONNECTED have negotiated it.
func (r *Reader) SetVersion(v Version) { r.version = v }

// Version returns the version set with SetVersion (V10 by default).
func (r *Reader) Version() Version { return r.version }

// SetLimits replaces the limits; zero fields take the defaults.
func (r *Reader) SetLimits(l Limits) { r.limits = l.resolve() }

// Limits returns the limits in force, defaults filled in.
func (r *Reader) Limits() Limits { return r.limits }

// ReadFrame reads the next frame, blocking until it is complete. One or
// more end-of-line bytes between frames come back as a heart-beat: a Frame
// whose IsHeartBeat is true; so do stray NUL bytes between frames (as
// RabbitMQ and ActiveMQ, it skips them). End-of-line and NUL bytes already
// buffered right after a frame are consumed with it. Scratch memory a large
// frame needed (past 256 KiB) is given back at
// the next call.
//
// At a clean end of stream between frames it returns io.EOF; inside a frame,
// io.ErrUnexpectedEOF. Malformed input gives a *ProtocolError, input over
// the limits a *LimitError; after either the stream is out of step and the
// connection should be closed.
func (r *Reader) ReadFrame() (*Frame, error) {
	f := &r.f
	f.Command, f.Body = "", nil
	// Not Header.Reset: makeHeader overwrites the entries in place and
	// clears only what is left of the last frame's, which halves the GC
	// write barriers on this path. Entries handed over are the caller's:
	// the Reader goes back to its own array and touches them no more.
	if r.handed {
		r.handed = false
	} else {
		r.fields = f.Header.fields // the caller may have grown it
		r.used = max(r.used, len(r.fields))
	}
	f.Header.fields, f.Header.packed = r.fields[:0], ""

	// Heart-beats, or the first byte of a frame. Peek rather than
	// ReadByte+UnreadByte: a CR not followed by LF must stay in the stream
	// (it belongs to the command line), and bufio cannot unread a byte once
	// Peek has been called.
	r.giveBack()
	r.wake()
	b, err := r.br.Peek(1)
	if len(b) == 0 {
		return nil, err
	}
	switch b[0] {
	case '\n', 0: // a stray NUL between frames is skipped like an EOL
		r.br.Discard(1)
		r.off++
		r.skipEOLs()
		r.clearHeader(f)
		return f, nil
	case '\r':
		if b, _ := r.br.Peek(2); len(b) == 2 && b[1] == '\n' {
			r.br.Discard(2)
			r.off += 2
			r.skipEOLs()
			r.clearHeader(f)
			return f, nil
		}
	}

	start := r.off
	line, err := r.readLine("")
	if err != nil {
		return nil, err
	}
	cmd := command(line)
	if cmd == "" {
		return nil, &ProtocolError{Err: ErrUnknownCommand, Offset: start, Detail: quote(line)}
	}
	if err := r.readHeaders(cmd, start); err != nil {
		return nil, err
	}
	f.Command = cmd
	owned := r.owned != nil && slices.Contains(r.owned, cmd)
	if !owned {
		r.makeHeader(f, r.views != nil && slices.Contains(r.views, cmd))
	}
	if err := r.readBody(f, start, owned); err != nil {
		return nil, err
	}
	if owned {
		r.handOver(f)
	}
	r.skipEOLs()
	return f, nil
}

// readLine returns the next line without its LF or CRLF. The slice is valid
// until the next read from br. cmd names the frame for errors ("" while
// reading the command line).
func (r *Reader) readLine(cmd string) ([]byte, error) {
	max := r.limits.MaxLineSize
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.line = append(r.line[:0], line...)
		for err == bufio.ErrBufferFull {
			// A CR of the CRLF may be in it, hence -1 (max+1 would
			// overflow when the limit is off).
			if len(r.line)-1 > max {
				return nil, &LimitError{Err: ErrLineTooLong, Command: cmd, Limit: max, Size: len(r.line)}
			}
			line, err = r.br.ReadSlice('\n')
			r.line = append(r.line, line...)
		}
		line = r.line
	}
	r.off += int64(len(line))
	if err != nil {
		// Over the limit whatever follows: say so, as a read in smaller
		// pieces would have before it met the end of the stream.
		if len(line)-1 > max {
			return nil, &LimitError{Err: ErrLineTooLong, Command: cmd, Limit: max, Size: len(line)}
		}
		return nil, unexpected(err)
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) > max {
		return nil, &LimitError{Err: ErrLineTooLong, Command: cmd, Limit: max, Size: len(line)}
	}
	return line, nil
}

// readHeaders reads header lines up to the blank line into r.hdr and
// r.spans, unescaping when the version and command call for it.
func (r *Reader) readHeaders(cmd string, start int64) error {
	escaped := r.version.escapes(cmd)
	if r.headersBuffered(escaped, start) {
		return nil
	}
	r.hdr, r.spans = r.hdr[:0], r.spans[:0]
	for n := 0; ; n++ {
		at := r.off
		line, err := r.readLine(cmd)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if n >= r.limits.MaxHeaders {
			return &LimitError{Err: ErrTooManyHeaders, Command: cmd, Limit: r.limits.MaxHeaders, Size: n + 1}
		}
		// The command line and every header line, EOLs included, count
		// toward the frame, as they do in readBody.
		if size := int(r.off - start); size > r.limits.MaxFrameSize {
			return &LimitError{Err: ErrFrameTooLarge, Command: cmd, Limit: r.limits.MaxFrameSize, Size: size}
		}
		if err := r.addHeader(line, escaped); err != nil {
			return &ProtocolError{Err: err, Command: cmd, Offset: at, Detail: quote(line)}
		}
	}
}

// headersBuffered is readHeaders for the common case where every header
// line, the blank line included, is already in the read buffer: it parses
// them there, without a bufio call per line. It consumes nothing and
// reports false when they are not all there, or when anything is wrong
// with them (a limit, a malformed line, a bad escape); readHeaders then
// reads them line by line and reports the error.
func (r *Reader) headersBuffered(escaped bool, start int64) bool {
	r.hdr, r.spans = r.hdr[:0], r.spans[:0]
	buf, _ := r.br.Peek(r.br.Buffered()) // never blocks
	head := int(r.off - start)           // the command line
	for n, pos := 0, 0; ; n++ {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 0 {
			return false
		}
		line := buf[pos : pos+i]
		pos += i + 1
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) > r.limits.MaxLineSize {
			return false
		}
		if len(line) == 0 {
			r.br.Discard(pos)
			r.off += int64(pos)
			return true
		}
		if n >= r.limits.MaxHeaders || head+pos > r.limits.MaxFrameSize || r.addHeader(line, escaped) != nil {
			return false
		}
	}
}

// addHeader adds the header line to r.hdr and r.spans, decoding it if
// escaped is set. It returns ErrMalformedHeader or ErrBadEscape.
func (r *Reader) addHeader(line []byte, escaped bool) error {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return ErrMalformedHeader
	}
	base := len(r.hdr)
	if !escaped || bytes.IndexByte(line, '\\') < 0 {
		// Nothing to decode: keep the line whole, colon and all, and point
		// into it.
		r.hdr = append(r.hdr, line...)
		r.spans = append(r.spans, base, base+colon, base+colon+1, len(r.hdr))
		return nil
	}
	// Decode into r.hdr rather than in place, so that the line stays as it
	// came for an error message.
	var ok bool
	if r.hdr, ok = r.appendUnescaped(r.hdr, line[:colon]); ok {
		ke := len(r.hdr)
		if r.hdr, ok = r.appendUnescaped(r.hdr, line[colon+1:]); ok {
			r.spans = append(r.spans, base, ke, ke, len(r.hdr))
			return nil
		}
	}
	return ErrBadEscape
}

// appendUnescaped appends a header name or value to dst, decoding its
// escapes; ok is false on an undefined escape (including \r before 1.2
// and a trailing backslash).
func (r *Reader) appendUnescaped(dst, b []byte) (_ []byte, ok bool) {
	for {
		i := bytes.IndexByte(b, '\\')
		if i < 0 {
			return append(dst, b...), true
		}
		dst = append(dst, b[:i]...)
		if i+1 == len(b) {
			return dst, false
		}
		var c byte
		switch b[i+1] {
		case 'n':
			c = '\n'
		case 'c':
			c = ':'
		case '\\':
			c = '\\'
		case 'r':
			if r.version != V12 {
				return dst, false
			}
			c = '\r'
		default:
			return dst, false
		}
		dst = append(dst, c)
		b = b[i+2:]
	}
}

// makeHeader turns r.hdr into one string and the entries of f.Header into
// substrings of it: one allocation for the whole header block, none for a
// view (SetViews), whose string is r.hdr itself until the next frame
// overwrites it.
func (r *Reader) makeHeader(f *Frame, view bool) {
	var s string
	if view {
		s = unsafe.String(unsafe.SliceData(r.hdr), len(r.hdr))
	} else {
		s = string(r.hdr)
	}
	fields := appendFields(f.Header.fields[:0], s, r.spans)
	f.Header.fields = fields
	r.clearTail(fields)
}

// appendFields appends to dst the entries spans gives (for each, key start
// and end, value start and end) as substrings of s.
func appendFields(dst []field, s string, spans []int) []field {
	for i := 0; i < len(spans); i += 4 {
		sp := spans[i : i+4 : i+4]
		dst = append(dst, field{s[sp[0]:sp[1]], s[sp[2]:sp[3]]})
	}
	return dst
}

// handOver gives f header entries and a body of their own (SetOwned): one
// allocation that holds the entries packed (Header.packed: their offsets
// and the header text, no pointers) and a body of up to maxShared bytes
// after them, capped, so that an append to the body moves it elsewhere. A
// larger body has an allocation of its own, and so do header entries that
// do not pack (text past 64 KiB), the entries and their text one each.
func (r *Reader) handOver(f *Frame) {
	h, n, k := len(r.hdr), len(f.Body), len(r.spans)/4
	r.handed = true
	if ps := packedSize(k, h); ps > 0 {
		if n <= maxShared {
			block := make([]byte, ps+n)
			f.Header = packHeader(block[:ps], r.spans, r.hdr)
			if n > 0 {
				copy(block[ps:], f.Body)
				f.Body = block[ps : ps+n : ps+n]
			}
			return
		}
		f.Header = packHeader(make([]byte, ps), r.spans, r.hdr)
		f.Body = slices.Clone(f.Body)
		return
	}
	if n > 0 {
		f.Body = slices.Clone(f.Body)
	}
	if k == 0 {
		f.Header = Header{} // nil: an Add must not reach r.fields
		return
	}
	f.Header = Header{fields: appendFields(make([]field, 0, k), string(r.hdr), r.spans)}
}

// lookupRaw is Header.Lookup over the header block before its strings
// are made: the value is a view of r.hdr, valid until the next frame and
// not to be kept.
func (r *Reader) lookupRaw(key string) (string, bool) {
	for i := 0; i < len(r.spans); i += 4 {
		sp := r.spans[i : i+4 : i+4]
		if string(r.hdr[sp[0]:sp[1]]) == key {
			if sp[2] == sp[3] {
				return "", true
			}
			return unsafe.String(&r.hdr[sp[2]], sp[3]-sp[2]), true
		}
	}
	return "", false
}

// clearHeader empties f.Header for a heart-beat.
func (r *Reader) clearHeader(f *Frame) {
	f.Header.fields = f.Header.fields[:0]
	r.clearTail(f.Header.fields)
}

// clearTail clears the entries past len(fields) that may still hold the
// strings of an earlier frame, so that they do not keep them alive.
func (r *Reader) clearTail(fields []field) {
	if hi := min(r.used, cap(fields)); hi > len(fields) {
		clear(fields[len(fields):hi])
	}
	r.used = len(fields)
}

// readBody reads the body and its NUL terminator. A body that fits the
// buffer is returned as a slice of it; a larger one is copied into r.body.
// When owned is set f.Header is not made yet: the content-length comes
// from r.hdr.
func (r *Reader) readBody(f *Frame, start int64, owned bool) error {
	cmd := f.Command
	size := int(r.off - start)
	if size > r.limits.MaxFrameSize {
		return &LimitError{Err: ErrFrameTooLarge, Command: cmd, Limit: r.limits.MaxFrameSize, Size: size}
	}
	var v string
	var ok bool
	if owned {
		v, ok = r.lookupRaw(HdrContentLength)
	} else {
		v, ok = f.Header.Lookup(HdrContentLength)
	}
	if ok {
		n, err := parseLength(v)
		if err != nil {
			return &ProtocolError{Err: err, Command: cmd, Offset: r.off, Detail: strconv.Quote(v)}
		}
		if n > 0 && !HasBody(cmd) {
			return &ProtocolError{Err: ErrBodyNotAllowed, Command: cmd, Offset: r.off}
		}
		if err := r.checkBody(cmd, size, n); err != nil {
			return err
		}
		return r.readSized(f, n)
	}
	return r.readToNUL(f, size)
}

// checkBody checks a body of n bytes (or at least n, while it is being
// read) after head bytes of command and headers against the limits. When
// both are exceeded it reports the one that the bytes crossed first, so that
// the error does not depend on how the input was cut into reads. It is
// written so that nothing overflows when a limit is off and n is near the
// largest int.
func (r *Reader) checkBody(cmd string, head, n int) error {
	maxBody, maxFrame := r.limits.MaxBodySize, r.limits.MaxFrameSize
	bodyOver := n > maxBody
	frameOver := n > maxFrame-head-1 // head+n+1 > maxFrame
	// The body limit is crossed by byte maxBody+1 of the body, the frame
	// limit by byte maxFrame-head.
	if bodyOver && (!frameOver || maxBody+1 <= maxFrame-head) {
		return &LimitError{Err: ErrBodyTooLarge, Command: cmd, Limit: maxBody, Size: n}
	}
	if frameOver {
		size := head + n + 1
		if size < n {
			size = int(^uint(0) >> 1)
		}
		return &LimitError{Err: ErrFrameTooLarge, Command: cmd, Limit: maxFrame, Size: size}
	}
	return nil
}

// readSized reads exactly n body bytes, then the NUL.
func (r *Reader) readSized(f *Frame, n int) error {
	if n < r.br.Size() { // n+1 <= Size, without overflow
		b, err := r.br.Peek(n + 1)
		if err != nil {
			return unexpected(err)
		}
		if b[n] != 0 {
			return &ProtocolError{Err: ErrMissingNUL, Command: f.Command, Offset: r.off + int64(n)}
		}
		r.br.Discard(n + 1)
		r.off += int64(n + 1)
		if n > 0 {
			f.Body = b[:n:n]
		}
		return nil
	}
	// The scratch grows as the bytes arrive instead of being sized by the
	// peer's word: a content-length that announces much and sends little
	// costs what was sent (at most twice that), not what was announced.
	body := r.body[:0]
	for len(body) < n {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(n-len(body), max(len(body), r.br.Size())))
		}
		m, err := r.br.Read(body[len(body):min(n, cap(body))])
		body = body[:len(body)+m]
		r.off += int64(m)
		if err != nil {
			r.body = body
			return unexpected(err)
		}
	}
	r.body = body
	nul, err := r.br.ReadByte()
	if err != nil {
		return unexpected(err)
	}
	if nul != 0 {
		return &ProtocolError{Err: ErrMissingNUL, Command: f.Command, Offset: r.off}
	}
	r.off++
	f.Body = body[:n:n]
	return nil
}

// readToNUL reads the body up to the first NUL.
func (r *Reader) readToNUL(f *Frame, head int) error {
	b, err := r.br.ReadSlice(0)
	if err == bufio.ErrBufferFull {
		r.body = append(r.body[:0], b...)
		for err == bufio.ErrBufferFull {
			if err := r.checkBody(f.Command, head, len(r.body)); err != nil {
				return err
			}
			b, err = r.br.ReadSlice(0)
			r.body = append(r.body, b...)
		}
		b = r.body
	}
	r.off += int64(len(b))
	if err != nil {
		// As in readLine: the limits first, whatever the read size.
		if err := r.checkBody(f.Command, head, len(b)); err != nil {
			return err
		}
		return unexpected(err)
	}
	n := len(b) - 1
	if err := r.checkBody(f.Command, head, n); err != nil {
		return err
	}
	if n > 0 {
		if !HasBody(f.Command) {
			return &ProtocolError{Err: ErrBodyNotAllowed, Command: f.Command, Offset: r.off - int64(len(b))}
		}
		f.Body = b[:n:n]
	}
	return nil
}

// skipEOLs consumes end-of-line bytes (and stray NULs, which RabbitMQ and
// ActiveMQ skip too) that are already buffered, without blocking for more.
func (r *Reader) skipEOLs() {
	for r.br.Buffered() > 0 {
		b, _ := r.br.Peek(min(2, r.br.Buffered())) // never blocks
		switch {
		case b[0] == '\n' || b[0] == 0:
			r.br.Discard(1)
			r.off++
		case b[0] == '\r' && len(b) == 2 && b[1] == '\n':
			r.br.Discard(2)
			r.off += 2
		default:
			return
		}
	}
}

// maxKeep bounds the scratch memory (lines, header block, body) a Reader
// keeps from one frame to the next: after a larger frame it is given back,
// so that one large frame does not cost its size for the life of the
// connection.
const maxKeep = 256 << 10

// giveBack drops scratch buffers that grew past maxKeep for the last frame
// (which the caller no longer holds: ReadFrame's results are valid only
// until the next call).
func (r *Reader) giveBack() {
	if cap(r.body) > maxKeep {
		r.body = nil
	}
	if cap(r.line) > maxKeep {
		r.line = nil
	}
	if cap(r.hdr) > maxKeep {
		r.hdr = nil
	}
	if cap(r.spans) > maxKeep/8 {
		r.spans = nil
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// quote renders b for an error message, shortened to 64 bytes.
func quote(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "..."
	}
	return strconv.Quote(string(b))
}
