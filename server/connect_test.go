package server

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stompout/stomp/heartbeat"
)

func TestConnectNegotiation(t *testing.T) {
	tests := []struct {
		name, connect, want string
	}{
		{"1.0 no accept-version", "CONNECT\n\n\x00",
			"CONNECTED\nsession:s1\nserver:test\n\n\x00"},
		{"1.1", "CONNECT\naccept-version:1.1\nhost:/\n\n\x00",
			"CONNECTED\nversion:1.1\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00"},
		{"1.2", "CONNECT\naccept-version:1.2\nhost:/\n\n\x00",
			"CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00"},
		{"highest common", "CONNECT\naccept-version:1.0,1.1,2.0\nhost:/\n\n\x00",
			"CONNECTED\nversion:1.1\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00"},
		{"spaces tolerated", "CONNECT\naccept-version:1.0, 1.2 ,1.1\nhost:/\n\n\x00",
			"CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00"},
		{"STOMP command", "STOMP\naccept-version:1.2\nhost:/\n\n\x00",
			"CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00"},
		{"CRLF", "CONNECT\r\naccept-version:1.2\r\nhost:/\r\n\r\n\x00",
			"CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00"},
		{"1.0 needs no host", "CONNECT\naccept-version:1.0\n\n\x00",
			"CONNECTED\nsession:s1\nserver:test\n\n\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				c := dial(t, testServer(rec))
				c.send(tt.connect)
				c.expect(tt.want)
				c.send("DISCONNECT\nreceipt:bye\n\n\x00")
				c.expect("RECEIPT\nreceipt-id:bye\n\n\x00")
				c.expectClosed()
				if err := c.close(); err != nil {
					t.Fatalf("ServeConn = %v, want nil", err)
				}
				if ev := rec.Events(); ev[len(ev)-1] != "disconnect <nil>" {
					t.Fatalf("events %q", ev)
				}
			})
		})
	}
}

func TestConnectRefusals(t *testing.T) {
	tests := []struct {
		name    string
		opts    []Option
		connect string
		want    string
	}{
		{"no common version", nil, "CONNECT\naccept-version:2.0,2.1\nhost:/\n\n\x00",
			"ERROR\nmessage:unsupported protocol version\ncontent-type:text/plain\nversion:1.0,1.1,1.2\ncontent-length:43\n\nSupported protocol versions are 1.0 1.1 1.2\x00"},
		{"missing host 1.1", nil, "CONNECT\naccept-version:1.1\n\n\x00",
			errorFrame("", "missing host header", "STOMP 1.1 requires a host header")},
		{"missing host 1.2", nil, "STOMP\naccept-version:1.2\n\n\x00",
			errorFrame("", "missing host header", "STOMP 1.2 requires a host header")},
		{"receipt on CONNECT", nil, "CONNECT\naccept-version:1.2\nhost:/\nreceipt:r1\n\n\x00",
			errorFrame("r1", "receipt not allowed on CONNECT", "the server answers CONNECT with CONNECTED, not RECEIPT")},
		{"bad heart-beat", nil, "CONNECT\naccept-version:1.2\nhost:/\nheart-beat:1, 2\n\n\x00",
			errorFrame("", "invalid heart-beat header", `heartbeat: invalid heart-beat header "1, 2": " 2" is not a non-negative integer`)},
		{"frame before CONNECT", nil, "SEND\ndestination:/q\nreceipt:r2\n\nhi\x00",
			errorFrame("r2", "not connected", "the first frame must be CONNECT or STOMP")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{}
				c := dial(t, testServer(rec, tt.opts...))
				c.send(tt.connect)
				c.expect(tt.want)
				c.expectClosed()
				var pe *ProtocolError
				if err := c.close(); !errors.As(err, &pe) {
					t.Fatalf("ServeConn = %v, want a *ProtocolError", err)
				}
				for _, e := range rec.Events() {
					if strings.HasPrefix(e, "disconnect") || strings.HasPrefix(e, "connect") {
						t.Fatalf("unexpected handler call %q", e)
					}
				}
			})
		})
	}
}

func TestRequireHostOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := dial(t, testServer(&recorder{}, WithRequireHost(false)))
		c.send("CONNECT\naccept-version:1.2\n\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:0,0\nsession:s1\nserver:test\n\n\x00")
		c.close()
	})
}

func TestConnectRefusedByHandlerNeverLeaksPasscode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{connectErr: &ApplicationError{Message: "bad login", Body: "user bob with passcode s3cret refused"}}
		c := dial(t, testServer(rec))
		c.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:bob\npasscode:s3cret\n\n\x00")
		c.expect(errorFrame("", "bad login", "user bob with passcode **** refused"))
		c.expectClosed()
		c.close()
		want := []string{"connect 1.2 login=bob host=/", "error server: bad login: user bob with passcode s3cret refused"}
		if ev := rec.Events(); !slices.Equal(ev, want) {
			t.Fatalf("events %q, want %q", ev, want)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// A plain error is reported without details.
		rec := &recorder{connectErr: errors.New("db down, passcode s3cret")}
		c := dial(t, testServer(rec))
		c.send("CONNECT\naccept-version:1.1\nhost:/\nlogin:bob\npasscode:s3cret\n\n\x00")
		c.expect(errorFrame("", "internal error", ""))
		c.expectClosed()
		c.close()
	})
	synctest.Test(t, func(t *testing.T) {
		// A malformed CONNECT is reported without quoting it.
		c := dial(t, testServer(&recorder{}))
		c.send("CONNECT\naccept-version:1.2\nhost:/\npasscode:s3cret\n:s3cret\n\n\x00")
		got := c.read()
		if strings.Contains(got, "s3cret") || !strings.HasPrefix(got, "ERROR\nmessage:malformed header line\n") {
			t.Fatalf("got %q", got)
		}
		c.expectClosed()
		c.close()
	})
}

func TestConnectTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		c := dial(t, testServer(rec, WithConnectTimeout(3*time.Second)))
		start := time.Now()
		c.expect(errorFrame("", "connect timeout", "no CONNECT frame in time"))
		if d := time.Since(start); d != 3*time.Second {
			t.Fatalf("ERROR after %v, want 3s", d)
		}
		c.expectClosed()
		if err := c.close(); !errors.Is(err, ErrConnectTimeout) {
			t.Fatalf("ServeConn = %v", err)
		}
		if ev := rec.Events(); !slices.Equal(ev, []string{"error server: connect timeout"}) {
			t.Fatalf("events %q", ev)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		// A connected session is not affected.
		c := dial(t, testServer(&recorder{}, WithConnectTimeout(3*time.Second)))
		c.connect("1.2", "s1")
		time.Sleep(10 * time.Second)
		c.send("SEND\ndestination:/q\nreceipt:1\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:1\n\n\x00")
		c.close()
	})
}

func TestHeartBeats(t *testing.T) {
	for _, v := range []string{"1.1", "1.2"} {
		t.Run(v, func(t *testing.T) { testHeartBeats(t, v) })
	}
}

func testHeartBeats(t *testing.T, v string) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		srv := mustNew(rec, WithName("test"), WithHeartBeat(time.Second, 2*time.Second))
		c := dial(t, srv)
		// Client: can send every 500ms, wants one every 3s. Server sends
		// every max(1000,3000)=3s (paced at half: 1.5s) and expects data
		// every max(2000,500)=2s, tolerating 2x.
		c.send("CONNECT\naccept-version:" + v + "\nhost:/\nheart-beat:500,3000\n\n\x00")
		c.expect("CONNECTED\nversion:" + v + "\nheart-beat:1000,2000\nsession:s1\nserver:test\n\n\x00")
		start := time.Now()
		for i := 1; i <= 3; i++ {
			c.expect("\n")
			if d := time.Since(start); d != time.Duration(i)*1500*time.Millisecond {
				t.Fatalf("heart-beat %d at %v", i, d)
			}
			c.send("\n") // keep the server's monitor happy
		}
		// Silence from the client: dead after 4s without data.
		silent := time.Now()
		for {
			b, err := c.br.ReadByte()
			if err != nil {
				break
			}
			if b != '\n' {
				t.Fatalf("unexpected byte %q", b)
			}
		}
		if d := time.Since(silent); d < 4*time.Second || d > 5*time.Second {
			t.Fatalf("closed after %v of silence, want about 4s", d)
		}
		err := c.close()
		if !errors.Is(err, heartbeat.ErrTimeout) {
			t.Fatalf("ServeConn = %v, want heart-beat timeout", err)
		}
		ev := rec.Events()
		if len(ev) != 3 || !strings.HasPrefix(ev[1], "error heartbeat: no data") || !strings.HasPrefix(ev[2], "disconnect heartbeat:") {
			t.Fatalf("events %q", ev)
		}
	})
}

func TestHeartBeatsOffIn10(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := mustNew(&recorder{}, WithName("test"), WithHeartBeat(time.Second, time.Second))
		c := dial(t, srv)
		c.send("CONNECT\nheart-beat:1000,1000\n\n\x00")
		c.expect("CONNECTED\nsession:s1\nserver:test\n\n\x00")
		time.Sleep(time.Minute) // no heart-beats either way in 1.0
		c.send("DISCONNECT\nreceipt:x\n\n\x00")
		c.expect("RECEIPT\nreceipt-id:x\n\n\x00")
		c.close()
	})
}

// TestHeartBeatTimeoutWhileWriterStuck: a client that neither reads nor
// sends leaves the session's writer blocked in a write; the heart-beat
// timeout must end the session all the same (net.Pipe has no write
// deadline, like many transports).
func TestHeartBeatTimeoutWhileWriterStuck(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := mustNew(&recorder{}, WithName("test"), WithHeartBeat(0, time.Second))
		c := dial(t, srv)
		c.send("CONNECT\naccept-version:1.2\nhost:/\nheart-beat:1000,0\n\n\x00")
		c.expect("CONNECTED\nversion:1.2\nheart-beat:0,1000\nsession:s1\nserver:test\n\n\x00")
		// A receipt the client never reads: the writer blocks writing it.
		c.send("SEND\ndestination:/q\nreceipt:r-1\n\n\x00")
		synctest.Wait()
		start := time.Now()
		select {
		case err := <-c.done:
			if !errors.Is(err, heartbeat.ErrTimeout) {
				t.Fatalf("ServeConn = %v, want a heart-beat timeout", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("session ended %v after the client fell silent, want within 2s", d)
			}
		case <-time.After(time.Hour):
			t.Fatal("session still running an hour after the client fell silent")
		}
		c.c.Close()
	})
}
