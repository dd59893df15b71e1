package stomp

import (
	"strconv"
	"sync/atomic"

	"github.com/stompout/stomp/frame"
)

// Version is a STOMP protocol version: V10, V11 or V12.
type Version = frame.Version

// The protocol versions the client speaks. By default Dial and Connect
// offer all three and the server picks the highest it knows.
const (
	V10 = frame.V10
	V11 = frame.V11
	V12 = frame.V12
)

// AckMode is a subscription's acknowledgement mode, sent in the SUBSCRIBE
// frame's ack header.
type AckMode string

// The acknowledgement modes of STOMP.
const (
	// AckAuto: the broker considers a message acknowledged once it sends it.
	// Message.Ack and Message.Nack return ErrAutoAck.
	AckAuto AckMode = "auto"
	// AckClient: an ACK frame acknowledges the message and every earlier
	// one of the subscription (cumulative). Message.Ack keeps the order:
	// it sends one only for the prefix of messages all settled.
	AckClient AckMode = "client"
	// AckClientIndividual: an ACK or NACK applies to one message only.
	AckClientIndividual AckMode = "client-individual"
)

func (m AckMode) valid() bool {
	return m == AckAuto || m == AckClient || m == AckClientIndividual
}

// ids hands out the connection-scoped identifiers of subscriptions,
// receipts and transactions. Safe for concurrent use.
type ids struct{ n atomic.Uint64 }

func (g *ids) next(prefix string) string {
	return prefix + strconv.FormatUint(g.n.Add(1), 10)
}
