// Package wire moves STOMP frames over a transport the same way for both
// halves of the project, the client (package stomp) and the server engine
// (package server):
//
//   - [Writer]: a frame.Writer over the transport that writes under a
//     deadline per piece (so a bound is on progress, not on a whole large
//     frame), sends one frame per message on message transports
//     (WebSocket), and paces heart-beats.
//   - [Liveness]: the read side's sign of life: a heartbeat.Monitor counts
//     silence only while the reader waits in a read, so a large frame
//     arriving slowly counts as data, and time the reader spends on what it
//     read (a handler, a full buffer) is not counted as silence.
//   - [WS]: a WebSocket as a STOMP byte stream: incoming messages read as
//     one stream, outgoing frames one per message, text when valid UTF-8.
//   - A TCP or Unix socket on Linux is read (by Liveness) with raw system
//     calls inside its syscall.RawConn, which the runtime need not be told
//     of (socketReader): no wake-up of the runtime's monitor thread per read.
//
// Nothing here starts a goroutine.
package wire
