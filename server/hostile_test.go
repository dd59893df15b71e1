package server

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/stompout/stomp/frame"
)

func TestHostileInput(t *testing.T) {
	tests := []struct {
		name  string
		v     string // version to connect with ("" = send frames before CONNECT)
		opts  []Option
		input string
		want  string // the exact ERROR frame, or a prefix ending in "\n"
	}{
		{"frame before CONNECT", "", nil, "SUBSCRIBE\nid:0\ndestination:/q\n\n\x00",
			errorFrame("", "not connected", "the first frame must be CONNECT or STOMP")},
		{"second CONNECT", "1.2", nil, "CONNECT\naccept-version:1.2\nhost:/\nreceipt:c2\n\n\x00",
			errorFrame("c2", "already connected", "a session accepts one CONNECT")},
		{"second STOMP 1.0", "1.0", nil, "STOMP\n\n\x00",
			errorFrame("", "already connected", "a session accepts one CONNECT")},
		{"unknown command", "1.2", nil, "FROB\nreceipt:x\n\n\x00",
			"ERROR\nmessage:unknown command\ncontent-type:text/plain\n"},
		{"lower-case command", "1.1", nil, "send\ndestination:/q\n\n\x00",
			"ERROR\nmessage:unknown command\ncontent-type:text/plain\n"},
		{"server frame from client", "1.2", nil, "MESSAGE\ndestination:/q\nmessage-id:1\nsubscription:0\n\n\x00",
			errorFrame("", "unexpected frame", "MESSAGE is a server frame")},
		{"bad ack id 1.2", "1.2", nil, "ACK\nid:nope\nreceipt:a\n\n\x00",
			errorFrame("a", "unknown ack id", "no unacknowledged message nope")},
		{"bad ack id 1.1", "1.1", nil, "NACK\nsubscription:0\nmessage-id:nope\n\n\x00",
			errorFrame("", "unknown ack id", "no unacknowledged message nope")},
		{"ack without id 1.2", "1.2", nil, "ACK\nmessage-id:m1\n\n\x00",
			errorFrame("", "missing id header", "ACK requires an id header (the MESSAGE's ack header)")},
		{"ack without message-id 1.0", "1.0", nil, "ACK\n\n\x00",
			errorFrame("", "missing message-id header", "ACK requires a message-id header")},
		{"unknown transaction SEND", "1.2", nil, "SEND\ndestination:/q\ntransaction:t9\nreceipt:s\n\nx\x00",
			errorFrame("s", "unknown transaction", "no transaction t9")},
		{"unknown transaction COMMIT", "1.1", nil, "COMMIT\ntransaction:t9\n\n\x00",
			errorFrame("", "unknown transaction", "no transaction t9")},
		{"unknown transaction ABORT", "1.0", nil, "ABORT\ntransaction:t9\n\n\x00",
			errorFrame("", "unknown transaction", "no transaction t9")},
		{"BEGIN twice", "1.2", nil, "BEGIN\ntransaction:t\n\n\x00BEGIN\ntransaction:t\n\n\x00",
			errorFrame("", "transaction already started", "transaction t is open")},
		{"BEGIN without transaction", "1.2", nil, "BEGIN\n\n\x00",
			errorFrame("", "missing transaction header", "BEGIN requires a transaction header")},
		{"transaction too large", "1.2", []Option{WithTransactionLimit(1)}, "BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\n\n\x00",
			errorFrame("", "transaction too large", "open transactions may hold 1 frames")},
		{"too many subscriptions", "1.2", []Option{WithSubscriptionLimit(2)}, "SUBSCRIBE\nid:0\ndestination:/q\n\n\x00SUBSCRIBE\nid:1\ndestination:/q\n\n\x00UNSUBSCRIBE\nid:1\n\n\x00SUBSCRIBE\nid:2\ndestination:/q\n\n\x00SUBSCRIBE\nid:3\ndestination:/q\nreceipt:s\n\n\x00",
			errorFrame("s", "too many subscriptions", "a session may hold 2 subscriptions")},
		{"SEND without destination", "1.2", nil, "SEND\n\nx\x00",
			errorFrame("", "missing destination header", "SEND requires a destination header")},
		{"SUBSCRIBE without id", "1.2", nil, "SUBSCRIBE\ndestination:/q\n\n\x00",
			errorFrame("", "missing id header", "SUBSCRIBE requires an id header")},
		{"duplicate subscription", "1.1", nil, "SUBSCRIBE\nid:0\ndestination:/q\n\n\x00SUBSCRIBE\nid:0\ndestination:/r\nreceipt:d\n\n\x00",
			errorFrame("d", "duplicate subscription id", "subscription 0 already exists")},
		{"bad ack mode", "1.2", nil, "SUBSCRIBE\nid:0\ndestination:/q\nack:sometimes\n\n\x00",
			errorFrame("", "invalid ack mode", "ack must be auto, client or client-individual")},
		{"undefined escape 1.2", "1.2", nil, "SEND\ndestination:/q\nfoo:a\\tb\n\nx\x00",
			"ERROR\nmessage:undefined escape sequence\ncontent-type:text/plain\n"},
		{"\\r escape in 1.1", "1.1", nil, "SEND\ndestination:/q\nfoo:a\\rb\n\nx\x00",
			"ERROR\nmessage:undefined escape sequence\ncontent-type:text/plain\n"},
		{"body on SUBSCRIBE", "1.2", nil, "SUBSCRIBE\nid:0\ndestination:/q\n\nbody\x00",
			"ERROR\nmessage:body not allowed for this command\ncontent-type:text/plain\n"},
		{"header without colon", "1.2", nil, "SEND\ndestination:/q\nnocolon\n\nx\x00",
			"ERROR\nmessage:malformed header line\ncontent-type:text/plain\n"},
		{"oversize body", "1.2", []Option{WithLimits(frame.Limits{MaxBodySize: 8})}, "SEND\ndestination:/q\n\n0123456789\x00",
			"ERROR\nmessage:body too large\ncontent-type:text/plain\n"},
		{"oversize content-length", "1.2", []Option{WithLimits(frame.Limits{MaxBodySize: 8})}, "SEND\ndestination:/q\ncontent-length:1000000\n\n",
			"ERROR\nmessage:body too large\ncontent-type:text/plain\n"},
		{"too many headers", "1.2", []Option{WithLimits(frame.Limits{MaxHeaders: 2})}, "SEND\ndestination:/q\na:1\nb:2\n\nx\x00",
			"ERROR\nmessage:too many headers\ncontent-type:text/plain\n"},
		{"line too long", "1.2", []Option{WithLimits(frame.Limits{MaxLineSize: 32})}, "SEND\ndestination:/" + strings.Repeat("q", 64) + "\n\nx\x00",
			"ERROR\nmessage:line too long\ncontent-type:text/plain\n"},
		{"oversize CONNECT", "", []Option{WithLimits(frame.Limits{MaxLineSize: 32})}, "CONNECT\npasscode:" + strings.Repeat("s", 64) + "\n\n\x00",
			errorFrame("", "line too long", "line too long in CONNECT frame")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				srv := testServer(rec, tt.opts...)
				// A bystander session that must keep working.
				other := dial(t, srv)
				other.connect("1.2", "s1")
				c := dial(t, srv)
				if tt.v != "" {
					c.connect(tt.v, "s2")
				}
				written := c.sendAsync(tt.input)
				got := c.read()
				if strings.HasSuffix(tt.want, "\x00") && got != tt.want || !strings.HasPrefix(got, tt.want) {
					t.Fatalf("got\n%q\nwant\n%q", got, tt.want)
				}
				c.expectClosed()
				var pe *ProtocolError
				var ae *ApplicationError
				if err := c.close(); !errors.As(err, &pe) && !errors.As(err, &ae) {
					t.Fatalf("ServeConn = %v", err)
				}
				<-written
				if tt.v != "" {
					ev := rec.Events()
					if last := ev[len(ev)-1]; !strings.HasPrefix(last, "disconnect server: ") {
						t.Fatalf("events %q", ev)
					}
				}
				other.send("SEND\ndestination:/q\nreceipt:still\n\nok\x00")
				other.expect("RECEIPT\nreceipt-id:still\n\n\x00")
				other.close()
			})
		})
	}
}
