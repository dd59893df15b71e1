package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/frame"
)

// panicky is a recorder whose methods panic when told to.
type panicky struct {
	recorder
	in    string      // the method that panics
	armed atomic.Bool // panic only once armed
}

func (h *panicky) maybe(m string) {
	if h.in == m && h.armed.Load() {
		panic("boom in " + m)
	}
}

func (h *panicky) Connect(ctx context.Context, s *Session, req *ConnectRequest) error {
	h.maybe("Connect")
	return h.recorder.Connect(ctx, s, req)
}

func (h *panicky) Send(ctx context.Context, s *Session, m *Message) error {
	h.maybe("Send")
	return h.recorder.Send(ctx, s, m)
}

func (h *panicky) Subscribe(ctx context.Context, s *Session, sub *Subscription) error {
	h.maybe("Subscribe")
	return h.recorder.Subscribe(ctx, s, sub)
}

func (h *panicky) Disconnect(ctx context.Context, s *Session, reason error) {
	h.recorder.Disconnect(ctx, s, reason)
	h.maybe("Disconnect")
}

func (h *panicky) Error(ctx context.Context, s *Session, err error) {
	h.recorder.Error(ctx, s, err)
	h.maybe("Error")
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A panicking handler must not take the whole process down: the session
// gets an ERROR "internal error" and ends, the panic is logged, the
// server keeps serving others.
func TestHandlerPanicEndsOnlyItsSession(t *testing.T) {
	tests := []struct {
		in    string
		frame string // sent after CONNECT ("" = the CONNECT panics)
		want  string
	}{
		{"Connect", "", errorFrame("", "internal error", "")},
		{"Send", "SEND\ndestination:/q\nreceipt:r1\n\nx\x00", errorFrame("r1", "internal error", "")},
		{"Subscribe", "SUBSCRIBE\nid:0\ndestination:/q\nreceipt:r2\n\n\x00", errorFrame("r2", "internal error", "")},
		{"Error", "SEND\n\nx\x00", errorFrame("", "missing destination header", "SEND requires a destination header")},
		{"Disconnect", "DISCONNECT\nreceipt:d\n\n\x00", "RECEIPT\nreceipt-id:d\n\n\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var logs syncBuffer
				h := &panicky{in: tt.in}
				srv := testServer(h, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
				other := dial(t, srv)
				other.connect("1.2", "s1")
				h.armed.Store(true)
				c := dial(t, srv)
				if tt.frame == "" {
					c.send("CONNECT\naccept-version:1.2\nhost:/\npasscode:hunter2\n\n\x00")
				} else {
					c.connect("1.2", "s2")
					c.send(tt.frame)
				}
				c.expect(tt.want)
				c.expectClosed()
				c.close()
				if !strings.Contains(logs.String(), "boom in "+tt.in) {
					t.Fatalf("panic not logged: %s", logs.String())
				}
				if strings.Contains(logs.String(), "hunter2") {
					t.Fatalf("passcode logged: %s", logs.String())
				}
				h.armed.Store(false)
				other.send("SEND\ndestination:/q\nreceipt:still\n\nok\x00")
				other.expect("RECEIPT\nreceipt-id:still\n\n\x00")
				other.close()
			})
		})
	}
}

// A Written callback that panics runs on the writer goroutine: it must not
// crash the process either.
func TestWrittenPanicEndsOnlyItsSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := testServer(rec)
		c := dial(t, srv)
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/q\nreceipt:r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		err := rec.sessions[0].Deliver(Delivery{Subscription: "0", Message: &Message{ID: "m"}, Written: func(error) { panic("written boom") }})
		if err != nil {
			t.Fatal(err)
		}
		c.expectPrefix("MESSAGE\n")
		c.expectPrefix("ERROR\nmessage:internal error\n")
		c.expectClosed()
		c.close()
	})
}

// The writer settles a written batch under one recover: a Written callback
// that panics ends the session, and the callbacks after it in the batch
// are still called and every message's reference is still dropped.
func TestSettleGoesOnAfterAPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := testServer(rec)
		c := dial(t, srv)
		c.connect("1.2", "s1")
		s := rec.sessions[0]
		var called []int
		batch := make([]outItem, 3)
		msgs := make([]*Message, len(batch))
		for i := range batch {
			m := newMessage(&frame.Frame{Command: frame.CmdSend, Body: []byte("x")})
			m.ref() // the delivery's
			msgs[i] = m
			batch[i] = outItem{m: m, written: func(error) {
				if i == 1 {
					panic("written boom")
				}
				called = append(called, i)
			}}
		}
		for i := 0; i < len(batch); {
			i = s.settle(batch, nil, i)
		}
		if !slices.Equal(called, []int{0, 2}) {
			t.Fatalf("callbacks called: %v, want [0 2]", called)
		}
		for i, m := range msgs {
			if n := m.ctl.refs.Load(); n != 2 {
				t.Errorf("message %d: %d references left, want 2 (the engine's and the handler's)", i, n)
			}
		}
		c.expectPrefix("ERROR\nmessage:internal error\n")
		c.expectClosed()
		c.close()
	})
}

// NACK is not a STOMP 1.0 command.
func TestNackIn10(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		deliverOnSubscribe(rec, 1)
		c := dial(t, testServer(rec))
		c.connect("1.0", "s1")
		c.send("SUBSCRIBE\ndestination:/q\nack:client\n\n\x00")
		c.expectPrefix("MESSAGE\n")
		c.send("NACK\nmessage-id:m1\nreceipt:n\n\n\x00")
		c.expect(errorFrame("n", "unknown command", "NACK is not a STOMP 1.0 command"))
		c.expectClosed()
		c.close()
		for _, e := range rec.Events() {
			if strings.HasPrefix(e, "nack") {
				t.Fatalf("handler saw a 1.0 NACK: %q", rec.Events())
			}
		}
	})
}

// Empty transactions count toward the transaction limit too: otherwise a
// client can BEGIN without end and the session's memory grows unbounded.
func TestOpenTransactionsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec, WithTransactionLimit(3)))
		c.connect("1.2", "s1")
		w := c.sendAsync("BEGIN\ntransaction:a\n\n\x00BEGIN\ntransaction:b\n\n\x00BEGIN\ntransaction:c\n\n\x00BEGIN\ntransaction:d\n\n\x00")
		c.expect(errorFrame("", "transaction too large", "open transactions may hold 3 frames"))
		c.expectClosed()
		var pe *ProtocolError
		if err := c.close(); !errors.As(err, &pe) {
			t.Fatalf("ServeConn = %v", err)
		}
		<-w
	})
	synctest.Test(t, func(t *testing.T) {
		// Ended transactions give their room back.
		rec := &recorder{}
		c := dial(t, testServer(rec, WithTransactionLimit(2)))
		c.connect("1.2", "s1")
		for range 5 {
			c.send("BEGIN\ntransaction:a\n\n\x00SEND\ndestination:/q\ntransaction:a\n\nx\x00COMMIT\ntransaction:a\n\n\x00")
			c.send("BEGIN\ntransaction:b\n\n\x00ABORT\ntransaction:b\n\n\x00")
		}
		c.send("SEND\ndestination:/q\nreceipt:r\n\nx\x00")
		c.expect("RECEIPT\nreceipt-id:r\n\n\x00")
		c.close()
	})
}

// blocker is a recorder whose Send waits for its context.
type blocker struct {
	recorder
	entered chan struct{}
}

func (h *blocker) Send(ctx context.Context, s *Session, m *Message) error {
	close(h.entered)
	<-ctx.Done()
	return ctx.Err()
}

// Server.Close ends sessions at once, also one whose handler is waiting on
// the session's context; Shutdown does when its context ends.
func TestCloseCancelsHandlerContext(t *testing.T) {
	for _, how := range []string{"Close", "Shutdown"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &blocker{entered: make(chan struct{})}
				srv := testServer(h)
				c := dial(t, srv)
				c.connect("1.2", "s1")
				c.send("SEND\ndestination:/q\n\nx\x00")
				<-h.entered
				done := make(chan error, 1)
				go func() {
					if how == "Close" {
						done <- srv.Close()
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					done <- srv.Shutdown(ctx)
				}()
				go io.Copy(io.Discard, c.c)
				time.Sleep(2 * time.Second)
				synctest.Wait()
				select {
				case <-done:
				default:
					t.Fatalf("%s blocked by a handler waiting on its context", how)
				}
				c.c.Close()
				<-c.done
			})
		})
	}
}

// Connections arriving while Shutdown runs: each is either served (and
// then told and closed) or closed at once; Shutdown returns, nothing leaks
// (TestMain checks goroutines), every client sees its connection end.
func TestShutdownWhileConnecting(t *testing.T) {
	for range 5 {
		rec := &recorder{}
		srv := mustNew(rec, WithHeartBeat(0, 0), WithLinger(time.Second))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return // refused: the listener is closed
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if i%2 == 0 {
					io.WriteString(conn, "CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
				}
				// EOF, or a reset for a connection the listener never
				// accepted or that was closed with unread input.
				var ne net.Error
				if _, err := io.Copy(io.Discard, conn); errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("connection %d not closed by the server: %v", i, err)
				}
			}()
		}
		// Pipes through ServeConn, too.
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a, b := net.Pipe()
				defer a.Close()
				go io.WriteString(a, "CONNECT\n\n\x00")
				done := make(chan error, 1)
				go func() { done <- srv.ServeConn(context.Background(), b) }()
				a.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := io.Copy(io.Discard, a); err != nil {
					t.Errorf("pipe not closed by the server: %v", err)
				}
				<-done
			}()
		}
		time.Sleep(time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		cancel()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Serve = %v", err)
		}
		wg.Wait()
	}
}

// A receipt the session's version cannot echo (a value ending in a
// carriage return, before 1.2) is refused at once, rather than leaving
// the client waiting for a RECEIPT that can never be written.
func TestUnencodableReceipt(t *testing.T) {
	for _, v := range []string{"1.0", "1.1"} {
		for _, cmd := range []string{"SEND\ndestination:/q", "DISCONNECT", "BEGIN\ntransaction:t"} {
			t.Run(v+" "+cmd, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					c := dial(t, testServer(&recorder{}))
					c.connect(v, "s1")
					c.send(cmd + "\nreceipt:x\r\r\n\n\x00")
					c.expect(errorFrame("", "invalid receipt header", "the receipt cannot be echoed in a receipt-id header"))
					c.expectClosed()
					c.close()
				})
			})
		}
	}
	synctest.Test(t, func(t *testing.T) {
		// In 1.2 it is escaped.
		c := dial(t, testServer(&recorder{}))
		c.connect("1.2", "s1")
		c.send("SEND\ndestination:/q\nreceipt:x\\r\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:x\\r\n\n\x00")
		c.close()
	})
}

// An ERROR message with a line break (the handler's choice) is still
// written, in 1.0 and before CONNECTED too.
func TestErrorMessageWithLineBreak(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{connectErr: &ApplicationError{Message: "no\nway\r", Body: "line\nbreaks"}}
		c := dial(t, testServer(rec))
		c.send("CONNECT\n\n\x00")
		c.expect(errorFrame("", "no way ", "line\nbreaks"))
		c.expectClosed()
		c.close()
	})
}

type idHandler struct {
	NopHandler
	id string
}

func (h idHandler) Connect(ctx context.Context, s *Session, req *ConnectRequest) error {
	req.SessionID = h.id
	return nil
}

// A session id CONNECTED cannot carry is replaced, not left to make the
// CONNECTED frame unwritable.
func TestUnwritableSessionID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := dial(t, testServer(idHandler{id: "a\nb"}))
		c.send("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
		got := c.expectPrefix("CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:")
		if strings.Contains(got, "a\nb") {
			t.Fatalf("got %q", got)
		}
		c.close()
	})
}

// A COMMIT whose ACK no longer resolves (the message was acknowledged
// outside the transaction since) fails before applying anything; the
// same message twice in one transaction is refused at once.
func TestCommitAppliesAllOrNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		deliverOnSubscribe(rec, 2)
		c := dial(t, testServer(rec))
		c.connect("1.2", "s1")
		c.send("SUBSCRIBE\nid:0\ndestination:/q\nack:client-individual\n\n\x00")
		c.expectPrefix("MESSAGE\n")
		c.expectPrefix("MESSAGE\n")
		c.send("BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\n\nin-tx\x00ACK\nid:1\ntransaction:t\n\n\x00ACK\nid:1\n\n\x00COMMIT\ntransaction:t\nreceipt:c\n\n\x00")
		c.expect(errorFrame("c", "unknown ack id", "no unacknowledged message 1"))
		c.expectClosed()
		c.close()
		for _, e := range rec.Events() {
			if strings.Contains(e, "in-tx") || strings.Contains(e, "tx=t") {
				t.Fatalf("part of the failed COMMIT applied: %q", rec.Events())
			}
		}
	})
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				deliverOnSubscribe(rec, 2)
				c := dial(t, testServer(rec))
				c.connect(v, "s1")
				c.send("SUBSCRIBE\nid:0\ndestination:/q\nack:client\n\n\x00")
				c.expectPrefix("MESSAGE\n")
				c.expectPrefix("MESSAGE\n")
				ack := map[string]string{"1.0": "message-id:m1", "1.1": "subscription:0\nmessage-id:m1", "1.2": "id:1"}[v]
				w := c.sendAsync("BEGIN\ntransaction:t\n\n\x00ACK\n" + ack + "\ntransaction:t\n\n\x00ACK\n" + ack + "\ntransaction:t\nreceipt:a\n\n\x00")
				c.expectPrefix("ERROR\nreceipt-id:a\nmessage:already acknowledged in transaction\n")
				c.expectClosed()
				c.close()
				<-w
			})
		})
	}
}

// Shutdown and Close may be called in any order, any number of times,
// concurrently.
func TestShutdownAndCloseIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := testServer(&recorder{})
		c := dial(t, srv)
		c.connect("1.2", "s1")
		go io.Copy(io.Discard, c.c)
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i%2 == 0 {
					srv.Close()
					return
				}
				if err := srv.Shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown = %v", err)
				}
			}()
		}
		wg.Wait()
		srv.Close()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		<-c.done
		c.c.Close()
	})
}
