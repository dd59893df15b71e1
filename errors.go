package stomp

import (
	"errors"
	"fmt"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
)

// Sentinel errors; test for them with errors.Is.
var (
	// ErrClosed: the connection has ended. Calls on a closed Conn return an
	// error that matches it (and, when the connection failed, also the
	// cause: errors.As(err, &serverErr) works). Receipts and subscriptions
	// that were still open when the user called Close or Disconnect end
	// with ErrClosed.
	ErrClosed = errors.New("stomp: connection closed")
	// ErrSlowConsumer: a subscription's buffer was full when a message
	// arrived, so the subscription ended (see Subscription for the policy).
	ErrSlowConsumer = errors.New("stomp: slow consumer: subscription buffer full")
	// ErrAutoAck: Ack or Nack of a message from an AckAuto subscription.
	ErrAutoAck = errors.New("stomp: ack or nack of a message from an auto-ack subscription")
	// ErrNackUnsupported: Nack on a STOMP 1.0 connection, which has no NACK.
	ErrNackUnsupported = errors.New("stomp: NACK is not part of STOMP 1.0")
	// ErrNotAckable: Ack or Nack of a message that lacks the header the
	// negotiated version acknowledges by (message-id, or ack in 1.2), or
	// that did not come from a Conn.
	ErrNotAckable = errors.New("stomp: message cannot be acknowledged")
	// ErrHeartBeatTimeout: the server sent nothing for longer than the
	// negotiated interval times the tolerance. The connection's error is a
	// *HeartBeatError, which matches both ErrHeartBeatTimeout and
	// heartbeat.ErrTimeout.
	ErrHeartBeatTimeout = errors.New("stomp: heart-beat timeout")
	// ErrSubscriptionEnded: Ack or Nack of a message whose subscription
	// was ended by Unsubscribe or by an overflow. Nothing is sent: the
	// embedded broker and ActiveMQ hand a subscription's unacknowledged
	// messages back to the queue at UNSUBSCRIBE and answer a later ACK with
	// an ERROR that would end the connection. The broker redelivers the
	// message (RabbitMQ once the connection ends).
	ErrSubscriptionEnded = errors.New("stomp: ack or nack of a message whose subscription has ended")
	// ErrTxDone: a call on a transaction that was committed or aborted.
	ErrTxDone = errors.New("stomp: transaction already committed or aborted")
	// ErrConnectionLost: the transport a frame was written on was lost
	// before the server's answer came, so the outcome is unknown: a
	// receipt that had not arrived resolves with an error matching it,
	// never with success, and so does a call whose frame was being
	// written. The Conn reconnects (unless it may not); errors.As finds
	// the cause (a *ServerError, a *HeartBeatError, ...).
	ErrConnectionLost = errors.New("stomp: connection lost")
	// ErrStaleMessage: Ack or Nack of a message delivered on a transport
	// that has since been lost. Nothing is sent: the broker took the
	// message back when the transport ended, and redelivers it.
	ErrStaleMessage = errors.New("stomp: ack or nack of a message delivered on a lost connection")
	// ErrTxAborted: the transaction was aborted by the server because
	// the transport it was begun on was lost; the error also matches
	// ErrConnectionLost.
	ErrTxAborted = errors.New("stomp: transaction aborted")
	// ErrNotConnected: a call during an outage on a Conn made with
	// WithOutageWait(false).
	ErrNotConnected = errors.New("stomp: not connected (reconnecting)")
)

// lostError is the end of a session that the client did not ask for. It
// matches ErrConnectionLost and unwraps to its cause.
type lostError struct{ cause error }

func (e *lostError) Error() string {
	if e.cause == nil {
		return ErrConnectionLost.Error()
	}
	return ErrConnectionLost.Error() + ": " + e.cause.Error()
}

func (e *lostError) Is(target error) bool { return target == ErrConnectionLost }
func (e *lostError) Unwrap() error        { return e.cause }

// lost wraps cause so that it matches ErrConnectionLost (once).
func lost(cause error) error {
	if errors.Is(cause, ErrConnectionLost) {
		return cause
	}
	return &lostError{cause}
}

// ServerError is an ERROR frame from the server. The transport ends with
// it (except for the ERROR frames the Conn ignores, see
// Conn.IgnoredErrors): pending receipts resolve with an error matching
// ErrConnectionLost that unwraps to it (the one it names in ReceiptID
// included), and the Conn reconnects; if it may not, Conn.Err returns it
// and subscriptions end with it.
type ServerError struct {
	Message   string       // the message header: a short description
	Body      []byte       // the body, often a longer description (owned by the error)
	Header    frame.Header // every header of the frame, in order
	ReceiptID string       // the receipt-id header: the receipt of the frame that failed, if it asked for one
}

// Error returns "stomp: server error: <message>".
func (e *ServerError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = string(truncate(e.Body, 200))
	}
	return "stomp: server error: " + msg
}

func newServerError(f *frame.Frame) *ServerError {
	return &ServerError{
		Message:   f.Header.Get(frame.HdrMessage),
		Body:      clone(f.Body),
		Header:    f.Header.Clone(),
		ReceiptID: f.Header.Get(frame.HdrReceiptID),
	}
}

// HeartBeatError ends a connection whose server went silent: nothing, not
// even a heart-beat, arrived for Silence, more than Interval times the
// tolerance. It matches ErrHeartBeatTimeout and heartbeat.ErrTimeout.
type HeartBeatError struct {
	Interval time.Duration // the negotiated receive interval
	Silence  time.Duration // how long nothing had arrived
}

// Error describes the timeout.
func (e *HeartBeatError) Error() string {
	return fmt.Sprintf("stomp: heart-beat timeout: no data from server for %v (expected every %v)", e.Silence, e.Interval)
}

// Is reports whether target is ErrHeartBeatTimeout or heartbeat.ErrTimeout.
func (e *HeartBeatError) Is(target error) bool {
	return target == ErrHeartBeatTimeout || target == heartbeat.ErrTimeout
}

// ConnectError is a connection attempt that failed after the transport was
// open: the server refused CONNECT (Server is set), or answered with
// something else than CONNECTED, or the version it chose was not offered.
type ConnectError struct {
	Server *ServerError // the ERROR frame that refused the CONNECT, if any
	Reason string       // otherwise, what went wrong
}

// Error returns "stomp: connect refused: <message>" or "stomp: connect: <reason>".
func (e *ConnectError) Error() string {
	if e.Server != nil {
		msg := e.Server.Message
		if b := truncate(e.Server.Body, 200); len(b) > 0 {
			msg += ": " + string(b)
		}
		return "stomp: connect refused: " + msg
	}
	return "stomp: connect: " + e.Reason
}

// Unwrap returns the ServerError, so errors.As(err, &*ServerError) works.
func (e *ConnectError) Unwrap() error {
	if e.Server != nil {
		return e.Server
	}
	return nil
}

// closedError wraps the cause of a connection's end so that it matches
// both ErrClosed and the cause.
func closedError(cause error) error {
	if cause == nil || errors.Is(cause, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}

func truncate(b []byte, n int) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	if len(b) > n {
		return b[:n]
	}
	return b
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
