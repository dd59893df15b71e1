package broker_test

import (
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/server"
)

// FuzzBroker feeds arbitrary frames to the broker, after a CONNECT and a
// few messages waiting in a queue, with small budgets (backlog, outbound
// bytes), dead-lettering and a redelivery delay: whatever comes, the broker
// must not panic, and once the session has ended (and the delay passed) no
// message may be left unacknowledged (they all went back to their queues),
// no SEND deferred, and the bytes held must be those of the queues.
func FuzzBroker(f *testing.F) {
	for _, s := range []string{
		"SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client\n\n\x00ACK\nid:2\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client-individual\nprefetch-count:1\n\n\x00NACK\nid:1\n\n\x00ACK\nid:2\n\n\x00UNSUBSCRIBE\nid:0\n\n\x00",
		"SUBSCRIBE\ndestination:/queue/a\nack:client\n\n\x00ACK\nmessage-id:m-1\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client\n\n\x00BEGIN\ntransaction:t\n\n\x00ACK\nid:1\ntransaction:t\n\n\x00NACK\nsubscription:0\nmessage-id:m-2\n\n\x00COMMIT\ntransaction:t\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/topic/t\nack:client\n\n\x00SEND\ndestination:/topic/t\n\nx\x00ACK\nid:1\n\n\x00",
		"SEND\ndestination:/queue/a\nreply-to:/queue/b\nredelivered:true\n\nx\x00SUBSCRIBE\nid:1\ndestination:/queue/a\n\n\x00DISCONNECT\nreceipt:d\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/topic/t\nack:client-individual\nprefetch-count:1\n\n\x00SEND\ndestination:/topic/t\n\n1\x00SEND\ndestination:/topic/t\n\n2\x00SEND\ndestination:/topic/t\n\n3\x00ACK\nid:1\n\n\x00NACK\nid:2\n\n\x00UNSUBSCRIBE\nid:0\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/queue/a\nack:client-individual\nprefetch-count:1\n\n\x00NACK\nid:1\n\n\x00NACK\nid:2\n\n\x00NACK\nid:3\n\n\x00NACK\nid:4\n\n\x00SUBSCRIBE\nid:1\ndestination:/queue/DLQ.a\n\n\x00",
		"SUBSCRIBE\nid:0\ndestination:/topic/t\n\n\x00SEND\ndestination:/topic/t\n\n0123456789012345678901234567890123456789\x00SEND\ndestination:/topic/t\n\n0123456789012345678901234567890123456789\x00SEND\ndestination:/topic/t\nreceipt:r\n\nx\x00SEND\ndestination:/queue/a\n\nq\x00",
	} {
		f.Add("1.2", s)
		f.Add("1.1", s)
		f.Add("1.0", s)
	}
	f.Fuzz(func(t *testing.T, v, input string) {
		synctest.Test(t, func(t *testing.T) {
			b := mustNew(t, broker.WithMaxRedeliveries(1), broker.WithRedeliveryDelay(time.Second), broker.WithBacklogLimit(64),
				broker.WithServerOptions(server.WithHeartBeat(0, 0), server.WithOutboundBytes(64)))
			defer b.Close()
			p := open(t, b.Pipe(), "1.2")
			for range 3 {
				p.sendMsg("/queue/a", "m")
			}
			p.receipt("SEND", "destination", "/queue/a")
			c := b.Pipe()
			go func() {
				io.WriteString(c, "CONNECT\naccept-version:"+v+"\nhost:/\n\n\x00"+input)
				c.Close()
			}()
			io.Copy(io.Discard, c)
			synctest.Wait()
			time.Sleep(2 * time.Second) // past the redelivery delay
			synctest.Wait()
			st := b.Stats()
			if st.Sessions != 1 || st.DeferredSends != 0 || len(st.Topics) != 0 {
				t.Fatalf("stats %+v", st)
			}
			held := int64(0)
			for _, q := range st.Queues {
				if q.Unacked != 0 || q.Consumers != 0 || q.Waiting != 0 {
					t.Fatalf("after the session: %+v", st)
				}
				held += q.Bytes
			}
			if held != st.Bytes {
				t.Fatalf("bytes held %d, in the queues %d: %+v", st.Bytes, held, st)
			}
			p.close()
		})
	})
}
