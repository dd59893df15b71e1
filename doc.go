// Package stomp is a STOMP 1.0, 1.1 and 1.2 client: a Conn over TCP, TLS,
// WebSocket or any io.ReadWriteCloser, with subscriptions as channels,
// receipts as futures, transactions, heart-beats and automatic reconnect.
//
// The lifecycle:
//
//	c, err := stomp.Dial(ctx, "tcp://a:61613,tcp://b:61613", stomp.WithLogin("guest", "guest"))
//	defer c.Disconnect(ctx)                        // DISCONNECT, wait for the RECEIPT
//	sub, err := c.Subscribe(ctx, "/queue/jobs", stomp.WithAck(stomp.AckClientIndividual))
//	err = c.Send(ctx, "/queue/jobs", []byte("hello"), stomp.WithContentType("text/plain"))
//	for m := range sub.C() {                       // open across reconnects; closed when the subscription ends
//		handle(m.Body)
//		m.Ack(ctx)
//	}
//	err = sub.Err()                                // why it ended
//
// Concurrency. A Conn lives until Close or Disconnect; each transport under
// it is a session with one reader goroutine and one writer goroutine, and
// every method is safe for concurrent use. Send, Ack and Nack outside a
// transaction encode their frame into the session's write buffer and
// return; the other calls queue their frame for the writer and return once
// it is flushed. The writer writes whatever has gathered in one batch and
// one write, so a run of calls shares each write. Every blocking call takes a
// context.Context: ending it ends that call's wait, never the connection.
//
// Flow control. The reader hands messages to subscription channels without
// waiting; a message that finds its channel full waits in the
// subscription's backlog, and the backlogs of a Conn are bounded in bytes
// (WithReceiveBuffer); past that the reader waits for the application and
// the transport pushes back on the broker. No default drops a message.
// MESSAGE frames that match no subscription go to Conn.Unrouted.
//
// Reconnect. When a transport is lost (a read or write error, EOF, a
// heart-beat timeout, an ERROR frame), the Conn dials again by its
// reconnect policy (package reconnect; WithReconnect), trying every
// address of a failover list in each round. On the new transport it
// subscribes every live subscription again, with the same id, destination
// and headers, before any frame queued during the outage; subscription
// channels stay open. What died with the transport is resolved, never
// silently: receipts in flight resolve with ErrConnectionLost (outcome
// unknown), Ack of a message it delivered is ErrStaleMessage (the broker
// redelivers it), open transactions are aborted (ErrTxAborted). Close,
// Disconnect and a refused login end the Conn instead.
//
// Receipts. WithReceipt(&r) on any call asks the server for a RECEIPT and
// gives back a *Receipt future that resolves exactly once: with the
// RECEIPT, or with the error that ended its transport. A RECEIPT is the
// only proof that the server has a frame. Receipts do not serialise calls:
// any number can be outstanding.
//
// Errors. Conn.Err is nil while the Conn lives, reconnecting included; once
// it has ended for another reason than Close or Disconnect, it says why (a
// *ServerError, a *ConnectError, a *HeartBeatError, ...). Disconnect and
// Close are idempotent, and when either returns, the Conn's goroutines
// have exited.
package stomp
