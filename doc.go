// Package stomp is a STOMP 1.0, 1.1 and 1.2 client: a Conn over TCP, TLS,
// WebSocket or any io.ReadWriteCloser, with subscriptions as channels,
// receipts as futures, transactions and heart-beats.
//
// The lifecycle:
//
//	c, err := stomp.Dial(ctx, "127.0.0.1:61613", stomp.WithLogin("guest", "guest"))
//	defer c.Disconnect(ctx)                        // DISCONNECT, wait for the RECEIPT
//	sub, err := c.Subscribe(ctx, "/queue/jobs", stomp.WithAck(stomp.AckClient))
//	err = c.Send(ctx, "/queue/jobs", []byte("hello"), stomp.WithContentType("text/plain"))
//	for m := range sub.C() {                       // closed when the subscription ends
//		handle(m.Body)
//		m.Ack(ctx)
//	}
//	err = sub.Err()                                // why it ended
//
// Concurrency. A Conn has one reader goroutine and one writer goroutine and
// every method is safe for concurrent use. Calls queue frames for the
// writer, which writes whatever is queued in one batch and one flush; a
// call returns once its frame is flushed. Every blocking call takes a
// context.Context: ending it ends that call's wait, never the connection.
// The reader never waits for user code: each subscription has a bounded
// buffer, with the overflow policy described on Subscription. MESSAGE
// frames that match no subscription go to Conn.Unrouted.
//
// Receipts. WithReceipt(&r) on any call asks the server for a RECEIPT and
// gives back a *Receipt future that resolves exactly once: with the
// RECEIPT, the ERROR frame that ended the connection, or the connection's
// end. Receipts do not serialise calls: any number can be outstanding.
//
// Errors. An ERROR frame ends the connection with a *ServerError: Conn.Err
// returns it, pending receipts resolve with it, subscription channels
// close. A server that goes silent past the negotiated heart-beat interval
// times the tolerance ends it with a *HeartBeatError. Disconnect and Close
// are idempotent, and when either returns, the connection's goroutines
// have exited.
//
// Reconnecting is left to a layer above: a Subscription keeps its
// destination, id and headers so that it can be made again on a new Conn.
package stomp
