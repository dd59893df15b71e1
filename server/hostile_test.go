package server

import (
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
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

		// Floods and byte budgets (issue 9).
		{"transaction bytes past the budget", "1.2", []Option{WithTransactionBytes(100)},
			"BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\n\n" + strings.Repeat("b", 60) + "\x00SEND\ndestination:/q\ntransaction:t\nreceipt:s2\n\n" + strings.Repeat("b", 60) + "\x00",
			errorFrame("s2", "transaction too large", "open transactions may hold 100 bytes")},
		{"transaction bytes over two transactions", "1.1", []Option{WithTransactionBytes(100)},
			"BEGIN\ntransaction:a\n\n\x00BEGIN\ntransaction:b\n\n\x00SEND\ndestination:/q\ntransaction:a\n\n" + strings.Repeat("b", 60) + "\x00SEND\ndestination:/q\ntransaction:b\n\n" + strings.Repeat("b", 60) + "\x00",
			errorFrame("", "transaction too large", "open transactions may hold 100 bytes")},
		{"transaction bytes by headers", "1.2", []Option{WithTransactionBytes(100)},
			"BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/q\ntransaction:t\nh:" + strings.Repeat("v", 120) + "\n\n\x00",
			errorFrame("", "transaction too large", "open transactions may hold 100 bytes")},
		{"transaction flood of BEGINs", "1.2", []Option{WithTransactionLimit(50)},
			strings.Repeat("BEGIN\ntransaction:x\n\n\x00ABORT\ntransaction:x\n\n\x00", 100) + beginFlood(51),
			errorFrame("", "transaction too large", "open transactions may hold 50 frames")},
		{"transaction flood of SENDs", "1.0", []Option{WithTransactionLimit(100)},
			"BEGIN\ntransaction:t\n\n\x00" + strings.Repeat("SEND\ndestination:/q\ntransaction:t\n\nx\x00", 100),
			errorFrame("", "transaction too large", "open transactions may hold 100 frames")},
		{"subscription flood", "1.2", []Option{WithSubscriptionLimit(100)}, subscribeFlood(101),
			errorFrame("", "too many subscriptions", "a session may hold 100 subscriptions")},
		{"header flood at the default limit", "1.2", nil, "SEND\ndestination:/q\n" + strings.Repeat("h:v\n", frame.DefaultMaxHeaders) + "\nx\x00",
			"ERROR\nmessage:too many headers\ncontent-type:text/plain\n"},
		{"header line at the default limit", "1.2", nil, "SEND\ndestination:/q\nh:" + strings.Repeat("v", frame.DefaultMaxLineSize) + "\n\nx\x00",
			"ERROR\nmessage:line too long\ncontent-type:text/plain\n"},
		{"body past the default limit", "1.2", nil, "SEND\ndestination:/q\n\n" + strings.Repeat("b", frame.DefaultMaxBodySize+1) + "\x00",
			"ERROR\nmessage:body too large\ncontent-type:text/plain\n"},
		{"content-length past the default limit", "1.2", nil, "SEND\ndestination:/q\ncontent-length:" + strconv.Itoa(frame.DefaultMaxBodySize+1) + "\n\n",
			"ERROR\nmessage:body too large\ncontent-type:text/plain\n"},
		{"frame too large", "1.2", []Option{WithLimits(frame.Limits{MaxFrameSize: 64})}, "SEND\ndestination:/q\na:" + strings.Repeat("x", 30) + "\nb:" + strings.Repeat("y", 30) + "\n\n\x00",
			"ERROR\nmessage:frame too large\ncontent-type:text/plain\n"},
		{"header flood in CONNECT", "", []Option{WithLimits(frame.Limits{MaxHeaders: 4})}, "CONNECT\n" + strings.Repeat("h:v\n", 5) + "\n\x00",
			errorFrame("", "too many headers", "too many headers in CONNECT frame")},

		// Malformed frames.
		{"content-length not a number", "1.2", nil, "SEND\ndestination:/q\ncontent-length:ten\n\nx\x00",
			"ERROR\nmessage:invalid content-length\ncontent-type:text/plain\n"},
		{"negative content-length", "1.2", nil, "SEND\ndestination:/q\ncontent-length:-1\n\nx\x00",
			"ERROR\nmessage:invalid content-length\ncontent-type:text/plain\n"},
		{"content-length without NUL", "1.2", nil, "SEND\ndestination:/q\ncontent-length:1\n\nxy\x00",
			"ERROR\nmessage:body not terminated by NUL\ncontent-type:text/plain\n"},
		{"empty header name", "1.2", nil, "SEND\ndestination:/q\n:v\n\nx\x00",
			"ERROR\nmessage:malformed header line\ncontent-type:text/plain\n"},
		{"tab escape in 1.1", "1.1", nil, "SEND\ndestination:/q\nfoo:a\\tb\n\nx\x00",
			"ERROR\nmessage:undefined escape sequence\ncontent-type:text/plain\n"},
		{"trailing backslash", "1.2", nil, "SEND\ndestination:/q\nfoo:a\\\n\nx\x00",
			"ERROR\nmessage:undefined escape sequence\ncontent-type:text/plain\n"},
		{"NUL inside a command", "1.2", nil, "SE\x00ND\ndestination:/q\n\n\x00",
			"ERROR\nmessage:unknown command\ncontent-type:text/plain\n"},
		{"binary junk", "1.2", nil, "\xff\xfe\xfd\n\n\x00",
			"ERROR\nmessage:unknown command\ncontent-type:text/plain\n"},
		{"lone CR before a command", "1.2", nil, "\rSEND\ndestination:/q\n\n\x00",
			"ERROR\nmessage:unknown command\ncontent-type:text/plain\n"},
		{"body on UNSUBSCRIBE", "1.2", nil, "UNSUBSCRIBE\nid:0\n\nx\x00",
			"ERROR\nmessage:body not allowed for this command\ncontent-type:text/plain\n"},
		{"body on ACK by content-length", "1.2", nil, "ACK\nid:1\ncontent-length:1\n\nx\x00",
			"ERROR\nmessage:body not allowed for this command\ncontent-type:text/plain\n"},

		// CONNECT.
		{"receipt on CONNECT", "", nil, "CONNECT\naccept-version:1.2\nhost:/\nreceipt:c\n\n\x00",
			errorFrame("c", "receipt not allowed on CONNECT", "the server answers CONNECT with CONNECTED, not RECEIPT")},
		{"unsupported version", "", nil, "CONNECT\naccept-version:2.0,3.1\nhost:/\n\n\x00",
			"ERROR\nmessage:unsupported protocol version\ncontent-type:text/plain\nversion:1.0,1.1,1.2\ncontent-length:43\n\nSupported protocol versions are 1.0 1.1 1.2\x00"},
		{"missing host 1.2", "", nil, "STOMP\naccept-version:1.2\n\n\x00",
			errorFrame("", "missing host header", "STOMP 1.2 requires a host header")},
		{"bad heart-beat", "", nil, "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:fast,slow\n\n\x00",
			"ERROR\nmessage:invalid heart-beat header\ncontent-type:text/plain\n"},
		{"SEND before CONNECT", "", nil, "SEND\ndestination:/q\nreceipt:r\n\nx\x00",
			errorFrame("r", "not connected", "the first frame must be CONNECT or STOMP")},

		// Frames the engine refuses.
		{"ERROR from client", "1.2", nil, "ERROR\nmessage:x\n\n\x00",
			errorFrame("", "unexpected frame", "ERROR is a server frame")},
		{"RECEIPT from client", "1.1", nil, "RECEIPT\nreceipt-id:x\n\n\x00",
			errorFrame("", "unexpected frame", "RECEIPT is a server frame")},
		{"CONNECTED from client", "1.2", nil, "CONNECTED\nversion:1.2\n\n\x00",
			errorFrame("", "unexpected frame", "CONNECTED is a server frame")},
		{"NACK in 1.0", "1.0", nil, "NACK\nmessage-id:m\n\n\x00",
			errorFrame("", "unknown command", "NACK is not a STOMP 1.0 command")},
		{"unknown subscription UNSUBSCRIBE", "1.2", nil, "UNSUBSCRIBE\nid:nope\nreceipt:u\n\n\x00",
			errorFrame("u", "unknown subscription", "no subscription nope")},
		{"UNSUBSCRIBE without id", "1.1", nil, "UNSUBSCRIBE\ndestination:/q\n\n\x00",
			errorFrame("", "missing id header", "UNSUBSCRIBE requires an id header")},
		{"UNSUBSCRIBE unknown destination 1.0", "1.0", nil, "UNSUBSCRIBE\ndestination:/nope\n\n\x00",
			errorFrame("", "unknown subscription", "no subscription /nope")},
		{"SUBSCRIBE without destination", "1.2", nil, "SUBSCRIBE\nid:0\n\n\x00",
			errorFrame("", "missing destination header", "SUBSCRIBE requires a destination header")},
		{"empty destination", "1.2", nil, "SEND\ndestination:\n\nx\x00",
			errorFrame("", "missing destination header", "SEND requires a destination header")},
		{"COMMIT without transaction", "1.2", nil, "COMMIT\nreceipt:c\n\n\x00",
			errorFrame("c", "missing transaction header", "COMMIT requires a transaction header")},
		{"ABORT without transaction", "1.1", nil, "ABORT\n\n\x00",
			errorFrame("", "missing transaction header", "ABORT requires a transaction header")},
		{"ACK of an unknown id in a transaction", "1.2", nil, "BEGIN\ntransaction:t\n\n\x00ACK\nid:nope\ntransaction:t\nreceipt:a\n\n\x00",
			errorFrame("a", "unknown ack id", "no unacknowledged message nope")},
		{"COMMIT twice", "1.2", nil, "BEGIN\ntransaction:t\n\n\x00COMMIT\ntransaction:t\n\n\x00COMMIT\ntransaction:t\n\n\x00",
			errorFrame("", "unknown transaction", "no transaction t")},
		{"receipt ending in CR before 1.2", "1.1", nil, "SEND\ndestination:/q\nreceipt:r\r\r\n\nx\x00",
			errorFrame("", "invalid receipt header", "the receipt cannot be echoed in a receipt-id header")},
	}
	t.Logf("hostile input: %d cases", len(tests))
	tried.Add(int64(len(tests)))
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
				// And a fresh session works.
				fresh := dial(t, srv)
				fresh.send("CONNECT\naccept-version:1.2\nhost:/\n\n\x00")
				fresh.expectPrefix("CONNECTED\nversion:1.2\n")
				fresh.send("SEND\ndestination:/q\nreceipt:fresh\n\nok\x00")
				fresh.expect("RECEIPT\nreceipt-id:fresh\n\n\x00")
				if err := fresh.close(); !errors.Is(err, ErrConnectionLost) {
					t.Fatalf("fresh session: ServeConn = %v", err)
				}
			})
		})
	}
}

// tried counts the hostile cases the package's tests tried (TestMain
// prints it).
var tried atomic.Int64

func beginFlood(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("BEGIN\ntransaction:t" + strconv.Itoa(i) + "\n\n\x00")
	}
	return b.String()
}

func subscribeFlood(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("SUBSCRIBE\nid:" + strconv.Itoa(i) + "\ndestination:/q\n\n\x00")
	}
	return b.String()
}
