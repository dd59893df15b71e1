package server

import (
	"errors"
	"strings"

	"github.com/stompout/stomp/frame"
)

// Sentinel errors. Test for them with errors.Is.
var (
	// ErrServerClosed is returned by Serve and ServeConn after Shutdown or
	// Close, and is the reason given to sessions ended by Close.
	ErrServerClosed = errors.New("server: server closed")
	// ErrSessionClosed is returned by Session.Deliver once the session is
	// ending, and passed to Delivery.Written for frames never written.
	ErrSessionClosed = errors.New("server: session closed")
	// ErrSlowConsumer is returned by Session.Deliver when the session's
	// outbound queue is full (WithOutboundQueue messages or
	// WithOutboundBytes bytes): the client does not read fast enough, for
	// now; the caller may retry once the writer made progress (a
	// Delivery.Written callback).
	ErrSlowConsumer = errors.New("server: slow consumer: outbound queue full")
	// ErrUnknownSubscription is returned by Session.Deliver for a
	// subscription id the session does not have (any more).
	ErrUnknownSubscription = errors.New("server: unknown subscription")
	// ErrConnectTimeout ends a session whose client did not complete
	// CONNECT within WithConnectTimeout.
	ErrConnectTimeout = errors.New("server: connect timeout")
	// ErrConnectionLost is the reason given to Handler.Disconnect when the
	// transport closed or failed without a DISCONNECT frame; the transport
	// error is wrapped with it.
	ErrConnectionLost = errors.New("server: connection lost")
)

// ApplicationError is an error a Handler returns to choose what the ERROR
// frame says: Message goes in the message header, Body (if any) in the
// body. Any other error a Handler returns is reported to the client as
// "internal error" without details (and logged), so internals never leak.
type ApplicationError struct {
	Message string // the ERROR frame's message header; "request refused" if empty
	Body    string // the ERROR frame's body (text/plain); may be empty
}

// Error returns "server: " followed by the message and the body.
func (e *ApplicationError) Error() string {
	s := "server: " + e.Message
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// ProtocolError is a protocol violation by the client (a malformed or
// forbidden frame, an unknown id, a frame over the limits). The session
// sends an ERROR frame saying Message and Detail, closes, and passes the
// ProtocolError to Handler.Error. Err is the codec error, if the frame
// could not even be read.
type ProtocolError struct {
	Command string // the offending frame's command, if known
	Message string // short description, the ERROR frame's message header
	Detail  string // longer explanation, the ERROR frame's body
	Err     error  // the underlying *frame.ProtocolError or *frame.LimitError, if any
}

// Error returns "server: " followed by the message and the detail.
func (e *ProtocolError) Error() string {
	s := "server: " + e.Message
	if e.Command != "" {
		s += " (" + e.Command + ")"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the codec error, if any.
func (e *ProtocolError) Unwrap() error { return e.Err }

// violation returns a *ProtocolError for the frame with command cmd.
func violation(cmd, msg, detail string) *ProtocolError {
	return &ProtocolError{Command: cmd, Message: msg, Detail: detail}
}

// codecError turns a Reader error (a *frame.ProtocolError or
// *frame.LimitError) into a *ProtocolError. Details of CONNECT frames are
// left out: they could quote the passcode line.
func codecError(err error) *ProtocolError {
	msg := "malformed frame"
	var pe *frame.ProtocolError
	var le *frame.LimitError
	cmd := ""
	switch {
	case errors.As(err, &pe):
		msg = strings.TrimPrefix(pe.Err.Error(), "frame: ")
		cmd = pe.Command
	case errors.As(err, &le):
		msg = strings.TrimPrefix(le.Err.Error(), "frame: ")
		cmd = le.Command
	}
	detail := strings.TrimPrefix(err.Error(), "frame: ")
	if cmd == frame.CmdConnect || cmd == frame.CmdStomp {
		detail = msg + " in " + cmd + " frame"
	}
	return &ProtocolError{Command: cmd, Message: msg, Detail: detail, Err: err}
}

// errorContent returns the message and body of the ERROR frame that
// reports err, and whether err was expected (a protocol violation or an
// application error) rather than an internal failure worth logging.
func errorContent(err error) (msg, body string, expected bool) {
	var ae *ApplicationError
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
		return pe.Message, pe.Detail, true
	case errors.As(err, &ae):
		msg = ae.Message
		if msg == "" {
			msg = "request refused"
		}
		return msg, ae.Body, true
	case errors.Is(err, ErrConnectTimeout):
		return "connect timeout", "no CONNECT frame in time", true
	case errors.Is(err, ErrServerClosed):
		return "server shutting down", "", true
	case errors.Is(err, ErrSessionClosed):
		return "session closed", "", true
	case errors.Is(err, errPanic):
		return "internal error", "", true // logged with its stack already
	}
	return "internal error", "", false
}
