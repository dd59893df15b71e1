package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// A command's ctx is its stop signal: main cancels it on an interrupt
// (Ctrl-C, SIGTERM). Calls run under it too, so that an interrupt ends any
// wait at once (a dial, a Subscribe during an outage, a receipt). Whatever
// those calls return once ctx is cancelled is the stop, not a failure:
// commands decide by interrupted(ctx), never by the error a call returned,
// then disconnect and exit 0.

// interrupted reports whether the user asked the command to stop.
func interrupted(ctx context.Context) bool { return errors.Is(ctx.Err(), context.Canceled) }

// phaseKey is the context key of a phase hook.
type phaseKey struct{}

// withPhaseHook returns ctx carrying f, which the commands call with the
// name of each phase they enter ("dial", "subscribe", "receive", "ack",
// ...), before they enter it. Tests use it to interrupt at a given phase.
func withPhaseHook(ctx context.Context, f func(phase string)) context.Context {
	return context.WithValue(ctx, phaseKey{}, f)
}

// atPhase calls ctx's phase hook, if any.
func atPhase(ctx context.Context, phase string) {
	if f, _ := ctx.Value(phaseKey{}).(func(string)); f != nil {
		f(phase)
	}
}

// endCommand is how send and recv finish: err is what the work returned,
// derr what the disconnect returned. After an interrupt both are only
// reported (on stderr), and the command succeeds.
func endCommand(ctx context.Context, err, derr error, stderr io.Writer, name string) error {
	if interrupted(ctx) {
		if derr != nil {
			fmt.Fprintf(stderr, "stomp %s: disconnect: %v\n", name, derr)
		}
		return nil
	}
	if err == nil && derr != nil {
		err = fmt.Errorf("disconnect: %w", derr)
	}
	return err
}

// syncWriter serialises writes to w: a command's stderr is written by its
// own goroutine and by the Conn's state listener.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p to the underlying writer under the lock.
func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
