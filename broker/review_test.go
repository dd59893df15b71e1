package broker_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/frame"
	"github.com/stompout/stomp/server"
)

// A queue message that a consumer's version cannot carry (a newline in a
// header, for a 1.0 subscriber) must not block the queue behind it.
func TestUnencodableQueueMessageDoesNotBlockQueue(t *testing.T) {
	for _, mode := range []string{"auto", "client"} {
		t.Run(mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBroker(t)
				p := open(t, b.Pipe(), "1.2")
				p.sendMsg("/queue/enc", "multi", "note", "a\nb")
				p.receipt("SEND", "destination", "/queue/enc")
				c := open(t, b.Pipe(), "1.0")
				c.do("SUBSCRIBE", "destination", "/queue/enc", "ack", mode)
				f := c.recvCmd("MESSAGE")
				if len(f.Body) != 0 {
					t.Fatalf("got %v %q", f, f.Body)
				}
				if mode == "client" {
					c.do("ACK", "message-id", f.Header.Get("message-id"))
				}
				c.close()
				p.close()
				if st := b.Stats(); st.Undeliverable != 1 || len(st.Queues) != 0 {
					t.Fatalf("stats %+v", st)
				}
			})
		})
	}
}

// A topic whose only subscriber was dropped as a slow consumer is
// forgotten like one whose subscribers left.
func TestTopicForgottenAfterSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithSlowConsumerTimeout(time.Second))
		lazy := open(t, b.Pipe(), "1.2")
		lazy.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/gone", "ack", "client", "prefetch-count", "1")
		p := open(t, b.Pipe(), "1.2")
		p.sendMsg("/topic/gone", "1")
		p.sendMsg("/topic/gone", "2")
		p.sendMsg("/topic/gone", "3")
		p.receipt("SEND", "destination", "/queue/x")
		lazy.recvCmd("MESSAGE")
		lazy.recvCmd("ERROR")
		if st := b.Stats(); len(st.Topics) != 0 || st.SlowConsumers != 1 || st.Bytes != st.Queues[0].Bytes {
			t.Fatalf("stats %+v", st)
		}
		p.close()
	})
}

// A session whose outbound queue is full of topic messages when a queue
// delivery to it is refused gets that queue message once the topic
// messages are written, without waiting for other traffic on the queue.
func TestQueueResumesAfterOutboundFullOfTopicMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, broker.WithServerOptions(server.WithOutboundQueue(2)))
		c := open(t, b.Pipe(), "1.2")
		c.receipt("SUBSCRIBE", "id", "t", "destination", "/topic/news")
		c.receipt("SUBSCRIBE", "id", "q", "destination", "/queue/work")
		p := open(t, b.Pipe(), "1.2")
		// c does not read: its writer blocks with the first message, the
		// next two fill its outbound queue.
		p.receipt("SEND", "destination", "/topic/news")
		synctest.Wait()
		p.receipt("SEND", "destination", "/topic/news")
		p.receipt("SEND", "destination", "/topic/news")
		p.receipt("SEND", "destination", "/queue/work")
		for range 3 {
			if f := c.recvCmd("MESSAGE"); f.Header.Get("subscription") != "t" {
				t.Fatalf("got %v", f)
			}
		}
		if f := c.recvCmd("MESSAGE"); f.Header.Get("subscription") != "q" {
			t.Fatalf("got %v", f)
		}
		c.close()
		p.close()
		if st := b.Stats(); st.SlowConsumers != 0 || len(st.Queues) != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// Messages handed to an auto-mode consumer that goes away before they are
// written return to the queue in their order, as unacknowledged messages
// of a client-mode consumer do.
func TestUnwrittenAutoMessagesKeepTheirOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t)
		c1 := open(t, b.Pipe(), "1.2")
		c1.receipt("SUBSCRIBE", "id", "0", "destination", "/queue/ord")
		p := open(t, b.Pipe(), "1.2")
		// c1 does not read: the first message blocks its writer, the rest
		// wait in its outbound queue.
		for i := range 5 {
			p.sendMsg("/queue/ord", fmt.Sprint(i))
		}
		p.receipt("SEND", "destination", "/queue/ord", "x", "5")
		synctest.Wait()
		c1.c.Close() // connection lost
		synctest.Wait()
		c2 := open(t, b.Pipe(), "1.2")
		c2.do("SUBSCRIBE", "id", "0", "destination", "/queue/ord", "ack", "client-individual")
		for i := range 6 {
			f := c2.recvCmd("MESSAGE")
			if string(f.Body) != fmt.Sprint(i) && !(i == 5 && f.Header.Get("x") == "5") {
				t.Fatalf("message %d: %v %q", i, f, f.Body)
			}
			c2.do("ACK", "id", f.Header.Get("ack"))
		}
		c2.close()
		p.close()
		if st := b.Stats(); len(st.Queues) != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// The passcode appears neither in ERROR frames nor in the logs, at any
// level, whatever goes wrong with the CONNECT.
func TestPasscodeNeverLogged(t *testing.T) {
	const secret = "hunter2-s3cr3t"
	for _, connect := range []string{
		"CONNECT\naccept-version:1.2\nhost:/\nlogin:app\npasscode:" + secret + "\n\n\x00",             // refused
		"CONNECT\naccept-version:9.9\nhost:/\nlogin:app\npasscode:" + secret + "\n\n\x00",             // bad version
		"CONNECT\naccept-version:1.2\nlogin:app\npasscode:" + secret + "\n\n\x00",                     // no host
		"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:x\npasscode:" + secret + "\n\n\x00",          // bad heart-beat
		"CONNECT\naccept-version:1.2\nhost:/\npasscode:" + secret + "\nreceipt:r\n\n\x00",             // receipt
		"CONNECT\naccept-version:1.2\nhost:/\npasscode:" + secret + "\nbroken " + secret + "\n\n\x00", // malformed
		"CONNECT\naccept-version:1.2\nhost:/\npasscode:" + secret + "\n\nbody " + secret + "\x00",     // body
		"CONNECT\naccept-version:1.2\nhost:/\nlogin:app\npasscode:" + secret + "\n\n\x00CONNECT\npasscode:" + secret + "\n\n\x00",
	} {
		synctest.Test(t, func(t *testing.T) {
			var logs strings.Builder
			var mu sync.Mutex
			h := slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logs.Write(p)
			}), &slog.HandlerOptions{Level: slog.LevelDebug})
			users := map[string]string{"app": "other"}
			if strings.Count(connect, "CONNECT") == 2 {
				users["app"] = secret
			}
			b := newBroker(t, broker.WithUsers(users), broker.WithLogger(slog.New(h)))
			c := b.Pipe()
			go io.WriteString(c, connect)
			out, _ := io.ReadAll(c)
			synctest.Wait()
			b.Close()
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(string(out), "ERROR") {
				t.Fatalf("no ERROR: %q", out)
			}
			if strings.Contains(string(out), secret) || strings.Contains(logs.String(), secret) {
				t.Fatalf("passcode leaked:\nframes %q\nlogs %s", out, logs.String())
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A topic subscriber in a client ack mode that acks as it goes is not a
// slow consumer because a burst outran its acks: the messages past its
// prefetch wait for room, and arrive in order.
func TestTopicClientAckBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t)
		c := open(t, b.Pipe(), "1.2")
		c.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/burst", "ack", "client-individual", "prefetch-count", "3")
		p := open(t, b.Pipe(), "1.2")
		for i := range 10 {
			p.sendMsg("/topic/burst", fmt.Sprint(i))
		}
		p.receipt("SEND", "destination", "/queue/sync")
		for i := range 10 {
			f := c.recvCmd("MESSAGE")
			if string(f.Body) != fmt.Sprint(i) {
				t.Fatalf("message %d: %v %q", i, f, f.Body)
			}
			c.do("ACK", "id", f.Header.Get("ack"))
		}
		c.close()
		p.close()
		if st := b.Stats(); st.SlowConsumers != 0 || st.Acked != 10 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// A client-ack topic subscriber whose acks make room while its outbound
// queue is full keeps the messages past its prefetch in its backlog and
// gets them, in order, as its writer makes room: nobody is dropped.
func TestTopicBacklogIntoFullOutbound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs strings.Builder // the engine recovers a panicking handler and logs it
		b := newBroker(t, broker.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))),
			broker.WithServerOptions(server.WithOutboundQueue(1)))
		c := open(t, b.Pipe(), "1.2")
		c.receipt("SUBSCRIBE", "id", "0", "destination", "/topic/c", "ack", "client-individual", "prefetch-count", "1")
		c.receipt("SUBSCRIBE", "id", "1", "destination", "/topic/a")
		p := open(t, b.Pipe(), "1.2")
		// c stops reading: m0 blocks its writer, m1 and m2 wait for room
		// in its prefetch, and a message on /topic/a fills its outbound
		// queue.
		p.receipt("SEND", "destination", "/topic/c")
		synctest.Wait()
		p.receipt("SEND", "destination", "/topic/c")
		p.receipt("SEND", "destination", "/topic/c")
		p.receipt("SEND", "destination", "/topic/a")
		c.do("ACK", "id", "1") // room for m1, but no room to queue it
		synctest.Wait()
		var last *frame.Frame
		for _, want := range []string{"/topic/c", "/topic/a", "/topic/c"} {
			if last = c.recvCmd("MESSAGE"); last.Header.Get("destination") != want {
				t.Fatalf("got %v, want a message of %s", last, want)
			}
		}
		c.do("ACK", "id", last.Header.Get("ack"))
		if f := c.recvCmd("MESSAGE"); f.Header.Get("message-id") != "m-3" {
			t.Fatalf("got %v", f)
		}
		c.close()
		p.close()
		if st := b.Stats(); st.SlowConsumers != 0 || st.Bytes != 0 || st.MessagesOut != 4 {
			t.Fatalf("stats %+v", st)
		}
		synctest.Wait()
		if logs.Len() > 0 {
			t.Fatalf("logged: %s", logs.String())
		}
	})
}
