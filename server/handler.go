package server

import (
	"context"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
)

// Handler is what a server does with its clients' requests: the seed's
// Server callbacks as one interface. The engine calls it for one session
// on that session's reader goroutine, one call at a time, in the order of
// the frames; calls for different sessions run concurrently. Every method
// gets the session's context, which is cancelled once the session has ended
// (after Disconnect returns), or earlier by Server.Close (and Shutdown when
// its context ends) or when the context given to ServeConn ends.
//
// A non-nil error from Connect, Send, Subscribe, Unsubscribe, Ack or Nack
// ends the session: the client gets an ERROR frame (an *ApplicationError
// chooses its message and body; any other error is reported as "internal
// error") carrying the receipt-id of the failing frame, if it asked for a
// receipt. On success the engine sends the frame's RECEIPT. A method that
// panics ends only its session: the panic is recovered and logged with its
// stack, and the client gets an ERROR "internal error" (a panic in
// Disconnect or Error is only logged).
//
// What a Handler may do on the reader goroutine: its methods run while
// the session reads nothing, so the client's heart-beat check is suspended
// for their duration (a slow handler never makes a live client look dead),
// and every frame behind waits. A method may block (on storage, on a
// remote engine) as long as it watches ctx; it may call Deliver and Close
// on any session, and Session methods of its own. It must not wait for a
// later frame of the same session (that frame is not read until it
// returns), nor for that session's writer to drain when the client might
// not read. Send may instead accept a message and finish it later, on any
// goroutine (Message.Defer): the engine then keeps reading, up to
// WithSendWindow deferred SENDs per session, and writes the RECEIPTs in
// frame order. The engine does not notice that a client went away while it
// waits for room in that window: a deferred SEND must be completed (or the
// session closed) eventually.
//
// Embed NopHandler to implement only some of the methods.
type Handler interface {
	// Connect authenticates a CONNECT or STOMP frame, already validated and
	// negotiated (version, host, heart-beat). It may set req.SessionID;
	// otherwise the engine makes one. An error refuses the connection.
	Connect(ctx context.Context, s *Session, req *ConnectRequest) error
	// Send handles a message from a SEND frame, at COMMIT for transactional
	// sends. m and its body belong to the handler (until it calls
	// m.Release, if it does). Returning nil completes
	// the SEND (its RECEIPT is written) unless Send called m.Defer, which
	// completes it later.
	Send(ctx context.Context, s *Session, m *Message) error
	// Subscribe handles a SUBSCRIBE. The subscription is registered before
	// the call, so the handler may Deliver to it at once; it is removed
	// again if Subscribe fails.
	Subscribe(ctx context.Context, s *Session, sub *Subscription) error
	// Unsubscribe handles an UNSUBSCRIBE (and is not called for the
	// subscriptions left when a session ends: Disconnect covers them). The
	// subscription is already removed: Deliver to it fails, and its
	// unacknowledged messages are the handler's to redeliver.
	Unsubscribe(ctx context.Context, s *Session, sub *Subscription) error
	// Ack handles an ACK, at COMMIT for transactional acks; a.MessageIDs
	// lists every message it covers.
	Ack(ctx context.Context, s *Session, a *Ack) error
	// Nack handles a NACK like Ack.
	Nack(ctx context.Context, s *Session, a *Ack) error
	// Disconnect is called exactly once for every session whose CONNECT was
	// accepted, when it ends: reason is nil after a DISCONNECT frame
	// (called before its RECEIPT is sent), otherwise why it ended
	// (ErrConnectionLost, a heart-beat timeout, a protocol error, Close's
	// error, ErrServerClosed). Open transactions have been discarded.
	Disconnect(ctx context.Context, s *Session, reason error)
	// Error reports an error that ends a session, connected or not: a
	// *ProtocolError, an error a handler method returned, ErrConnectTimeout,
	// a heart-beat timeout (heartbeat.ErrTimeout) or the error given to
	// Session.Close (a slow consumer, say). It is not called when the
	// client goes away (ErrConnectionLost) or disconnects, nor for
	// Close(nil), Shutdown or Server.Close.
	Error(ctx context.Context, s *Session, err error)
}

// NopHandler is a Handler that accepts every CONNECT and does nothing else.
// Embed it in a struct to implement only the methods you need.
type NopHandler struct{}

// Connect accepts the connection.
func (NopHandler) Connect(context.Context, *Session, *ConnectRequest) error { return nil }

// Send discards the message.
func (NopHandler) Send(context.Context, *Session, *Message) error { return nil }

// Subscribe accepts the subscription; nothing is ever delivered to it.
func (NopHandler) Subscribe(context.Context, *Session, *Subscription) error { return nil }

// Unsubscribe does nothing.
func (NopHandler) Unsubscribe(context.Context, *Session, *Subscription) error { return nil }

// Ack does nothing.
func (NopHandler) Ack(context.Context, *Session, *Ack) error { return nil }

// Nack does nothing.
func (NopHandler) Nack(context.Context, *Session, *Ack) error { return nil }

// Disconnect does nothing.
func (NopHandler) Disconnect(context.Context, *Session, error) {}

// Error does nothing.
func (NopHandler) Error(context.Context, *Session, error) {}

// ConnectRequest is a CONNECT (or STOMP) frame, validated and negotiated,
// for Handler.Connect to accept or refuse.
type ConnectRequest struct {
	Command   string             // "CONNECT" or "STOMP"
	Version   frame.Version      // the negotiated version
	Host      string             // the virtual host ("" if none)
	Login     string             // "" if none
	Passcode  string             // "" if none; never echoed by the engine
	HeartBeat heartbeat.Settings // the client's cx,cy (zero in 1.0)
	Header    frame.Header       // every header of the frame, passcode included
	// SessionID is the session header of the CONNECTED frame. The handler
	// may set it; if it leaves it empty (or sets one with a line break,
	// which CONNECTED cannot carry) the engine makes a unique one.
	SessionID string
}

// AckMode is a subscription's acknowledgement mode (the ack header).
type AckMode string

// The acknowledgement modes of SUBSCRIBE.
const (
	AckAuto             AckMode = "auto"
	AckClient           AckMode = "client"            // cumulative
	AckClientIndividual AckMode = "client-individual" // one message at a time
)

// Message is a message on its way in (from SEND, to Handler.Send) or out
// (to Session.Deliver). The engine never modifies a Message after handing
// it over, and Deliver only reads it, so one Message may be delivered to
// many sessions at once as long as nobody modifies it. Deliver keeps a
// reference until the MESSAGE frame is written (the writer goroutine builds
// the frame from it): a delivered Message must not be modified until then.
//
// A Message from a SEND is one allocation with its header entries (up to
// four, receipt included) and, up to 4 KiB of both, its body and header
// text; a handler that gives it back with Release once done with it lets
// the engine reuse that memory for a later SEND.
type Message struct {
	// ID is the message-id. Handlers set it (or Seq) before Deliver; if
	// both are empty the engine makes one per delivery. It is "" on Send.
	ID string
	// Seq, when ID is empty and Seq is not zero, is the message-id as a
	// number: the MESSAGE carries message-id "m-" followed by Seq in
	// decimal, formatted as the frame is written, so that a handler need
	// not make a string per message (in the client ack modes Deliver makes
	// it once, for the Ack's MessageIDs). It is 0 on Send.
	Seq         uint64
	Destination string
	// Header holds the headers of the SEND frame, destination included,
	// without receipt and transaction (which concern the SEND, not the
	// message). On delivery they are written in the MESSAGE frame after the
	// engine's own destination, message-id, subscription and ack headers
	// (entries with those names are skipped). A content-length entry is
	// rewritten from the body.
	Header frame.Header
	Body   []byte
	// Receipt is, on Send, the receipt header of the SEND frame ("" if the
	// client asked for none), or for a transactional SEND that of the
	// COMMIT, whose RECEIPT waits for it: a handler may skip a costly
	// commit to storage when nobody waits for it. The engine ignores it on
	// Deliver.
	Receipt string

	ctl *sendCtl // set by the engine while Handler.Send runs; see Defer
}

// Subscription is a client's SUBSCRIBE as the engine keeps it. Its exported
// fields are immutable after SUBSCRIBE; the handler may keep the pointer
// (it identifies the subscription) and compare it.
type Subscription struct {
	ID          string       // the id header (1.0 without id: the destination)
	Destination string       // the destination header
	Ack         AckMode      // the ack header, AckAuto by default
	Header      frame.Header // every header of the SUBSCRIBE frame (prefetch-count, selector, ...)

	session  *Session
	explicit bool // the SUBSCRIBE had an id header (else 1.0 MESSAGEs carry none)
	// pending lists deliveries not yet acknowledged, oldest first from
	// head (client modes only; acknowledged ones are nil or gone until
	// compacted). Guarded by session.mu.
	pending []*pendingAck
	head    int
}

// Session returns the session the subscription belongs to.
func (sub *Subscription) Session() *Session { return sub.session }

// Ack is an ACK or NACK frame, resolved against the session's
// unacknowledged deliveries. It is the handler's to keep; a handler that
// does not keep it may give it back for reuse (Release).
type Ack struct {
	Subscription *Subscription
	// ID is the frame's id header (1.2) or message-id header (1.0, 1.1).
	ID string
	// MessageIDs lists the message-ids this frame covers, oldest first:
	// one in client-individual mode, in client mode every unacknowledged
	// message of the subscription delivered up to and including it.
	MessageIDs  []string
	Transaction string       // "" unless the frame was part of a transaction
	Header      frame.Header // every header of the frame

	one [1]string // MessageIDs when it is one
	box *ackBox   // the memory a is in (newAck), for Release
}
