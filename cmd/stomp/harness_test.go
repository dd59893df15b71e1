package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer that a running command writes to while
// the test reads it; every write wakes waitFor.
type lockedBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{} // capacity 1
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{wrote: make(chan struct{}, 1)} }

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	n, err := l.b.Write(p)
	l.mu.Unlock()
	select {
	case l.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits until cond holds for the buffer's text, failing the test
// after 20 s or once done is closed with cond still false.
func (l *lockedBuffer) waitFor(t *testing.T, done <-chan struct{}, what string, cond func(string) bool) {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	for !cond(l.String()) {
		select {
		case <-l.wrote:
		case <-done:
			if !cond(l.String()) {
				t.Fatalf("the command ended before %s:\n%s", what, l.String())
			}
			return
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s:\n%s", what, l.String())
		}
	}
}

// waitContains waits until the buffer holds n occurrences of s.
func (l *lockedBuffer) waitContains(t *testing.T, done <-chan struct{}, s string, n int) {
	t.Helper()
	l.waitFor(t, done, strings.Repeat("["+s+"]", n), func(text string) bool { return strings.Count(text, s) >= n })
}

// bg is a command running in the background.
type bg struct {
	stdout, stderr *lockedBuffer
	done           chan struct{} // closed when run has returned
	code           int           // set before done is closed
}

// start runs the command on a goroutine.
func start(ctx context.Context, stdin io.Reader, args ...string) *bg {
	c := newBg()
	c.start(ctx, stdin, args...)
	return c
}

// newBg returns a command not started yet, so that a phase hook can refer
// to its output.
func newBg() *bg {
	return &bg{stdout: newLockedBuffer(), stderr: newLockedBuffer(), done: make(chan struct{})}
}

// start runs the command on a goroutine.
func (c *bg) start(ctx context.Context, stdin io.Reader, args ...string) {
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	go func() {
		defer close(c.done)
		c.code = run(ctx, args, stdin, c.stdout, c.stderr)
	}()
}

// wait waits for the command to end and returns its exit code.
func (c *bg) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-c.done:
		return c.code
	case <-time.After(30 * time.Second):
		t.Fatalf("the command did not end; stderr:\n%s", c.stderr.String())
		return -1
	}
}
