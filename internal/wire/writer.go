package wire

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/heartbeat"
)

// MessageWriter is implemented by transports that carry frames in
// messages (WebSocket): EndMessage sends what was written since the last
// call as one message. The Writer calls it after every frame and
// heart-beat.
type MessageWriter interface {
	EndMessage() error
}

// WriteDeadliner is implemented by transports with write deadlines (a
// net.Conn, WS).
type WriteDeadliner interface {
	SetWriteDeadline(time.Time) error
}

// Chunk is the most the Writer writes to a stream transport under one
// deadline: a body larger than the buffer reaches the transport in one
// piece (frame.Writer writes it straight through), and is cut here.
const Chunk = frame.DefaultBufferSize

// Writer writes frames to a transport. It is owned by one goroutine, the
// writer of a session; its methods are not safe for concurrent use.
//
// On a stream transport frames are buffered until Flush, so a batch of
// frames costs one write. On a MessageWriter each frame (and each
// heart-beat) is one message, sent by WriteFrame itself.
type Writer struct {
	fw      *frame.Writer
	mw      MessageWriter // nil for stream transports
	timeout func() time.Duration
	dl      WriteDeadliner
	dst     io.Writer
	pacer   *heartbeat.Pacer
	// writes counts the writes to the transport begun; each also signals
	// wrote, if set (WatchWrites), without waiting.
	writes atomic.Uint64
	wrote  chan struct{}
}

// WatchWrites returns a channel (capacity 1) that each write to the
// transport from now on signals, for another goroutine to notice that the
// connection has written. Call it before the Writer's goroutine starts.
func (w *Writer) WatchWrites() <-chan struct{} {
	w.wrote = make(chan struct{}, 1)
	return w.wrote
}

// Writes returns how many writes to the transport have begun. It is safe
// for concurrent use.
func (w *Writer) Writes() uint64 { return w.writes.Load() }

// NewWriter returns a Writer to dst. timeout, if not nil, is asked before
// every write to the transport for the deadline to set (0: none); it is
// used only when dst has write deadlines. The Writer starts in version
// 1.0 with no heart-beats.
func NewWriter(dst io.Writer, timeout func() time.Duration) *Writer {
	w := &Writer{dst: dst, timeout: timeout, pacer: heartbeat.NewPacer(0, 0)}
	w.mw, _ = dst.(MessageWriter)
	w.dl, _ = dst.(WriteDeadliner)
	if w.dl == nil {
		w.timeout = nil
	}
	w.fw = frame.NewWriter(deadlineWriter{w})
	return w
}

// SetVersion sets the version that governs header escaping.
func (w *Writer) SetVersion(v frame.Version) { w.fw.SetVersion(v) }

// SetRelease makes the Writer give its buffer back while it is empty (see
// frame.Writer.SetRelease): an idle session then holds none.
func (w *Writer) SetRelease(on bool) { w.fw.SetRelease(on) }

// SetContentLength sets the content-length mode of the frames that follow.
func (w *Writer) SetContentLength(m frame.ContentLengthMode) { w.fw.SetContentLength(m) }

// WriteFrame encodes f. It returns an error wrapping a *frame.ProtocolError
// if f cannot be encoded (nothing was written: the transport is intact;
// see IsEncodeError), or the transport's error. On a message transport
// the frame is sent as one message before it returns; on a stream it is
// buffered until Flush (or until the buffer fills).
func (w *Writer) WriteFrame(f *frame.Frame) error {
	if err := w.fw.WriteFrame(f); err != nil {
		return err
	}
	if w.mw != nil {
		return w.Flush()
	}
	return nil
}

// WriteEncoded buffers p, frames encoded with frame.Encoder for the
// Writer's version, until Flush. Stream transports only (see Stream): on
// a message transport the frames would go out as one message.
func (w *Writer) WriteEncoded(p []byte) error { return w.fw.WriteEncoded(p) }

// Stream reports whether the transport is a stream (not a MessageWriter):
// one where frames encoded elsewhere may be written together.
func (w *Writer) Stream() bool { return w.mw == nil }

// Flush writes what is buffered to the transport (and ends the message
// on a message transport) and tells the pacer that something was written.
func (w *Writer) Flush() error {
	if err := w.fw.Flush(); err != nil {
		return err
	}
	if w.mw != nil {
		if err := w.mw.EndMessage(); err != nil {
			return err
		}
	}
	return nil
}

// Buffered returns the bytes written but not yet flushed.
func (w *Writer) Buffered() int { return w.fw.Buffered() }

// Wrote tells the heart-beat pacer that the transport was written to.
func (w *Writer) Wrote() { w.pacer.Wrote() }

// SetHeartBeat starts pacing heart-beats for the negotiated send interval
// (0: none), replacing any earlier pacer.
func (w *Writer) SetHeartBeat(interval time.Duration) {
	w.pacer.Stop()
	w.pacer = heartbeat.NewPacer(interval, 0)
}

// HeartBeatC is the channel the writer goroutine selects on; when it
// fires, the goroutine calls HeartBeat. It is nil without heart-beats.
func (w *Writer) HeartBeatC() <-chan time.Time { return w.pacer.C() }

// HeartBeat writes a heart-beat (an EOL) and flushes, if one is due; the
// pacer decides. It returns the transport's error.
func (w *Writer) HeartBeat() error {
	if !w.pacer.Due() {
		return nil
	}
	return w.WriteHeartBeat()
}

// WriteHeartBeat writes a heart-beat (an EOL) and flushes, whatever the
// pacer says: for a writer that paces heart-beats itself (the server's
// session, whose writer goroutine does not outlive its work). It returns
// the transport's error.
func (w *Writer) WriteHeartBeat() error {
	if err := w.fw.WriteHeartBeat(); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	w.pacer.Wrote()
	return nil
}

// Stop stops the heart-beat pacer's timer.
func (w *Writer) Stop() { w.pacer.Stop() }

// IsEncodeError tells an error of WriteFrame that refused the frame
// (nothing was written) from a transport error.
func IsEncodeError(err error) bool {
	_, ok := err.(*frame.ProtocolError)
	return ok
}

// deadlineWriter is what the frame.Writer writes through: it sets the
// write deadline before every write to the transport, and on a stream
// cuts a large write into Chunk pieces, each with its own deadline. A
// message transport gets each write whole: it only collects them until
// EndMessage, which runs under the deadline set last.
type deadlineWriter struct{ w *Writer }

func (d deadlineWriter) Write(p []byte) (int, error) {
	w := d.w
	w.writes.Add(1)
	if w.wrote != nil {
		select {
		case w.wrote <- struct{}{}:
		default:
		}
	}
	var timeout time.Duration
	if w.timeout != nil {
		timeout = w.timeout()
	}
	if timeout <= 0 {
		return w.dst.Write(p)
	}
	if w.mw != nil {
		w.dl.SetWriteDeadline(time.Now().Add(timeout))
		return w.dst.Write(p)
	}
	n := 0
	for n < len(p) {
		w.dl.SetWriteDeadline(time.Now().Add(timeout))
		m, err := w.dst.Write(p[n:min(len(p), n+Chunk)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
