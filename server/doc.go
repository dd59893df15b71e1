// Package server is the server half of STOMP 1.0, 1.1 and 1.2: a protocol
// engine that runs sessions over any io.ReadWriteCloser and hands what the
// clients ask for to a [Handler] (the seed's Server callbacks, as one Go
// interface).
//
// The engine does by itself everything the protocol requires: CONNECT or
// STOMP, version negotiation, the host header, heart-beat negotiation and
// enforcement, receipts (sent once the frame was processed), ERROR then close
// on any protocol violation (with receipt-id, never with the passcode),
// message and ack ids per version, transactions (buffered until COMMIT,
// aborted on DISCONNECT or connection loss), codec limits and a connect
// timeout. The handler only decides what messages mean.
//
// Lifecycle:
//
//	srv, err := server.New(myHandler, server.WithHeartBeat(10*time.Second, 10*time.Second))
//	ln, _ := net.Listen("tcp", "127.0.0.1:61613")
//	go srv.Serve(ln)                               // TCP or TLS listener
//	http.Handle("/ws", srv.WebSocketHandler())     // and/or WebSocket (v10/v11/v12.stomp)
//	go srv.ServeConn(ctx, conn)                    // and/or any io.ReadWriteCloser
//	...
//	srv.Shutdown(ctx)                              // ERROR "server shutting down" to each session, wait
//
// # Goroutines
//
// Each session has one goroutine for its life, and a second while it has
// something to write: the reader (the goroutine that calls ServeConn, or
// one Serve starts per connection) reads frames and calls the Handler, in
// order, one call at a time; the writer is started when a frame is queued,
// a heart-beat is due or the session ends, writes everything queued as one
// batch with one flush (again while more comes), and exits once the queue is
// empty. Only one writer runs at a time, so frames go out in order and
// Delivery.Written is called on it. Heart-beat pacing, the peer's heart-beat
// check and the connect timeout are timers, not goroutines. Nothing else
// touches the transport. Both are gone when ServeConn returns.
//
// # Outbound queue and slow consumers
//
// Frames for a client wait in a per-session queue for the writer.
// [Session.Deliver] never blocks: when the session already holds
// WithOutboundQueue messages or WithOutboundBytes bytes of them (besides
// the batch the writer is writing) it returns [ErrSlowConsumer] and queues
// nothing, so the caller decides (the broker keeps the message in its own
// bounded backlog and retries when the writer has made progress). Frames
// the engine itself produces (RECEIPT) make the reader wait for room
// instead, which pushes back on a client that sends without reading.
//
// # Deferred SENDs and producer flow control
//
// Handler.Send may accept a message and finish it later
// ([Message.Defer]); the engine writes the RECEIPTs, or the ERROR, in frame
// order. WithSendWindow bounds the deferred SENDs not yet done per session
// (default 256 frames, 8 MiB): at the bound the engine stops reading from
// the client, so the transport pushes back on the producer. The heart-beat
// check is suspended while the engine does not read on purpose (a handler
// running, the window full): a slow handler never makes a live client look
// dead.
//
// # Limits and defaults
//
// Everything a client can make the engine hold is bounded: frames by
// WithLimits (frame.DefaultLimits: 8 MiB bodies, 256 headers, 16 KiB lines);
// open transactions by WithTransactionLimit (10,000 frames) and
// WithTransactionBytes (16 MiB) per session; subscriptions by
// WithSubscriptionLimit (10,000); the outbound queue as above (1,024
// messages, 16 MiB); deferred SENDs by WithSendWindow. Past a client-side
// limit the session gets an ERROR saying which and is closed. An idle
// session holds no read or write buffer and no writer goroutine: on
// 5,000 idle TCP connections it costs about 7.3 KB each beyond the sockets
// (4 KiB of them the reader's stack), 40% of go-stomp's server. New refuses option values it
// cannot take.
//
// # Locks
//
// Each Session has one mutex guarding its subscriptions, its unacknowledged
// deliveries and its outbound queue; the Server has one guarding its
// listeners and sessions. Neither is held while a Handler method runs or
// while the transport is written. A Handler may hold its own lock while it
// calls Deliver or Close (lock order: handler, then session).
package server
