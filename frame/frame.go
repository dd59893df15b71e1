// Package frame is the STOMP 1.0, 1.1 and 1.2 wire codec: the Frame type,
// an ordered Header, a Reader and a Writer.
//
// The codec is strict and bounded. A Reader enforces Limits by default and
// never allocates more than they allow; anything malformed is a
// *ProtocolError or a *LimitError that wraps one of the package's sentinel
// errors, so callers can test with errors.Is and errors.As.
//
// Escaping of header names and values follows the negotiated version, which
// the owner of a Reader or Writer sets with SetVersion after CONNECT and
// CONNECTED: none in 1.0; \n \c \\ in 1.1; \r \n \c \\ in 1.2. CONNECT,
// STOMP and CONNECTED frames are never escaped.
//
// A Reader reuses its buffers: the Frame returned by ReadFrame, its Header
// and its Body are valid only until the next call to ReadFrame. Header keys
// and values are ordinary immutable strings and may be kept; the Body bytes
// and the Header's backing array may not. Clone the frame to keep it.
package frame

import "strconv"

// Version is a STOMP protocol version as it appears in the accept-version
// and version headers.
type Version string

// The protocol versions this codec speaks.
const (
	V10 Version = "1.0"
	V11 Version = "1.1"
	V12 Version = "1.2"
)

// Valid reports whether v is one of V10, V11 or V12.
func (v Version) Valid() bool { return v == V10 || v == V11 || v == V12 }

// escapes reports whether header escaping applies to frames with command
// cmd in version v.
func (v Version) escapes(cmd string) bool {
	return v != V10 && cmd != CmdConnect && cmd != CmdStomp && cmd != CmdConnected
}

// The commands of STOMP 1.2 (and the earlier versions, which use a subset).
const (
	CmdConnect     = "CONNECT"
	CmdStomp       = "STOMP"
	CmdConnected   = "CONNECTED"
	CmdSend        = "SEND"
	CmdSubscribe   = "SUBSCRIBE"
	CmdUnsubscribe = "UNSUBSCRIBE"
	CmdAck         = "ACK"
	CmdNack        = "NACK"
	CmdBegin       = "BEGIN"
	CmdCommit      = "COMMIT"
	CmdAbort       = "ABORT"
	CmdDisconnect  = "DISCONNECT"
	CmdMessage     = "MESSAGE"
	CmdReceipt     = "RECEIPT"
	CmdError       = "ERROR"
)

// Header names the codec itself looks at, and the ones most frames use.
const (
	HdrAcceptVersion = "accept-version"
	HdrAck           = "ack"
	HdrContentLength = "content-length"
	HdrContentType   = "content-type"
	HdrDestination   = "destination"
	HdrHeartBeat     = "heart-beat"
	HdrHost          = "host"
	HdrID            = "id"
	HdrLogin         = "login"
	HdrMessage       = "message"
	HdrMessageID     = "message-id"
	HdrPasscode      = "passcode"
	HdrReceipt       = "receipt"
	HdrReceiptID     = "receipt-id"
	HdrServer        = "server"
	HdrSession       = "session"
	HdrSubscription  = "subscription"
	HdrTransaction   = "transaction"
	HdrVersion       = "version"
)

// command returns the interned command string for b, or "" when b is not
// a STOMP command. It does not allocate.
func command(b []byte) string {
	switch string(b) {
	case CmdConnect:
		return CmdConnect
	case CmdStomp:
		return CmdStomp
	case CmdConnected:
		return CmdConnected
	case CmdSend:
		return CmdSend
	case CmdSubscribe:
		return CmdSubscribe
	case CmdUnsubscribe:
		return CmdUnsubscribe
	case CmdAck:
		return CmdAck
	case CmdNack:
		return CmdNack
	case CmdBegin:
		return CmdBegin
	case CmdCommit:
		return CmdCommit
	case CmdAbort:
		return CmdAbort
	case CmdDisconnect:
		return CmdDisconnect
	case CmdMessage:
		return CmdMessage
	case CmdReceipt:
		return CmdReceipt
	case CmdError:
		return CmdError
	}
	return ""
}

// IsCommand reports whether s is a STOMP command.
func IsCommand(s string) bool { return command([]byte(s)) != "" }

// HasBody reports whether frames with command cmd may carry a body: only
// SEND, MESSAGE and ERROR may.
func HasBody(cmd string) bool {
	return cmd == CmdSend || cmd == CmdMessage || cmd == CmdError
}

// Frame is one STOMP frame. A heart-beat (end-of-line bytes between frames)
// is reported by Reader.ReadFrame as a Frame with an empty Command.
type Frame struct {
	Command string
	Header  Header
	Body    []byte
}

// New returns a frame with command cmd and the given header entries,
// given as alternating keys and values. It panics if kv has odd length,
// which is a programming error.
func New(cmd string, kv ...string) *Frame {
	if len(kv)%2 != 0 {
		panic("frame: New called with an odd number of header arguments")
	}
	f := &Frame{Command: cmd}
	f.Header.fields = make([]field, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		f.Header.Add(kv[i], kv[i+1])
	}
	return f
}

// IsHeartBeat reports whether f stands for a heart-beat rather than a frame.
func (f *Frame) IsHeartBeat() bool { return f.Command == "" }

// Clone returns a deep copy of f that shares nothing with it that either
// may change, so it may be kept after the Reader that produced f reads
// again. It costs two allocations (header entries and body), one for a
// frame a Reader handed over (SetOwned), whose read-only header it shares.
func (f *Frame) Clone() *Frame {
	c := &Frame{Command: f.Command, Header: f.Header.Clone()}
	if f.Body != nil {
		c.Body = append([]byte(nil), f.Body...)
	}
	return c
}

// ContentLength returns the parsed content-length header: ok is false when
// the header is absent, err non-nil when it is present but not a
// non-negative decimal integer.
func (f *Frame) ContentLength() (n int, ok bool, err error) {
	v, ok := f.Header.Lookup(HdrContentLength)
	if !ok {
		return 0, false, nil
	}
	n, err = parseLength(v)
	return n, true, err
}

// parseLength parses a content-length value strictly: decimal digits only,
// no sign, no spaces, at most 18 digits, and no overflow of int (which the
// digit count alone does not rule out where int has 32 bits).
func parseLength(v string) (int, error) {
	if v == "" || len(v) > 18 {
		return 0, ErrBadContentLength
	}
	const maxInt = int(^uint(0) >> 1)
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, ErrBadContentLength
		}
		d := int(c - '0')
		if n > (maxInt-d)/10 {
			return 0, ErrBadContentLength
		}
		n = n*10 + d
	}
	return n, nil
}

// String renders f for logs and test failures: the command, the headers
// and the body length. The passcode header's value is masked.
func (f *Frame) String() string {
	if f.IsHeartBeat() {
		return "heart-beat"
	}
	b := []byte(f.Command)
	for k, v := range f.Header.All() {
		if k == HdrPasscode {
			v = "****"
		}
		b = append(b, ' ')
		b = append(b, k...)
		b = append(b, ':')
		b = strconv.AppendQuote(b, v)
	}
	b = append(b, " body="...)
	b = strconv.AppendInt(b, int64(len(f.Body)), 10)
	b = append(b, 'B')
	return string(b)
}
