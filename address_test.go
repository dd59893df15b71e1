package stomp

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseAddrs(t *testing.T) {
	tcp := func(addr string) endpoint { return endpoint{scheme: "tcp", addr: addr} }
	tls := func(addr string) endpoint { return endpoint{scheme: "tls", addr: addr} }
	login := func(e endpoint, user, pass string) endpoint {
		e.login, e.passcode, e.hasLogin = user, pass, true
		return e
	}
	yes, no := true, false
	for _, tt := range []struct {
		in      string
		want    []endpoint
		shuffle *bool
	}{
		// One URL, every scheme.
		{"tcp://127.0.0.1:61613", []endpoint{tcp("127.0.0.1:61613")}, nil},
		{"127.0.0.1:61613", []endpoint{tcp("127.0.0.1:61613")}, nil},
		{"localhost", []endpoint{tcp("localhost:61613")}, nil},
		{"tcp://broker", []endpoint{tcp("broker:61613")}, nil},
		{"tcp://broker/", []endpoint{tcp("broker:61613")}, nil},
		{"TCP://Broker:1", []endpoint{tcp("Broker:1")}, nil},
		{"tcp://broker:061613", []endpoint{tcp("broker:61613")}, nil},
		{"ws://broker:0080/ws", []endpoint{{scheme: "ws", addr: "ws://broker:80/ws"}}, nil},
		{"tcp://my_broker.example-1", []endpoint{tcp("my_broker.example-1:61613")}, nil},
		{"stomp:61613", []endpoint{tcp("stomp:61613")}, nil}, // a host named stomp
		{"stomp", []endpoint{tcp("stomp:61613")}, nil},
		{"tcp://[fe80::1%25eth0]:61613", []endpoint{tcp("[fe80::1%eth0]:61613")}, nil},
		{"  tcp://broker:61613  ", []endpoint{tcp("broker:61613")}, nil},
		{"stomp://broker:61613", []endpoint{tcp("broker:61613")}, nil},
		{"stomp+nio://broker", []endpoint{tcp("broker:61613")}, nil},
		{"tls://broker", []endpoint{tls("broker:61614")}, nil},
		{"ssl://broker:443", []endpoint{tls("broker:443")}, nil},
		{"stomp+ssl://broker", []endpoint{tls("broker:61614")}, nil},
		{"stomp+tls://broker:61617", []endpoint{tls("broker:61617")}, nil},
		{"stomp+nio+ssl://broker", []endpoint{tls("broker:61614")}, nil},
		{"ws://127.0.0.1:15674/ws", []endpoint{{scheme: "ws", addr: "ws://127.0.0.1:15674/ws"}}, nil},
		{"WSS://rabbit.example/ws?x=1", []endpoint{{scheme: "wss", addr: "wss://rabbit.example/ws?x=1"}}, nil},
		{"ws://host", []endpoint{{scheme: "ws", addr: "ws://host"}}, nil},

		// IPv6.
		{"[::1]:61613", []endpoint{tcp("[::1]:61613")}, nil},
		{"[::1]", []endpoint{tcp("[::1]:61613")}, nil},
		{"::1", []endpoint{tcp("[::1]:61613")}, nil},
		{"tls://[2001:db8::7]:61619", []endpoint{tls("[2001:db8::7]:61619")}, nil},
		{"ws://[::1]:15674/ws", []endpoint{{scheme: "ws", addr: "ws://[::1]:15674/ws"}}, nil},

		// Userinfo: login and passcode, percent-decoded, out of addr.
		{"tcp://guest:guest@localhost:61613", []endpoint{login(tcp("localhost:61613"), "guest", "guest")}, nil},
		{"tcp://guest@localhost", []endpoint{login(tcp("localhost:61613"), "guest", "")}, nil},
		{"stomp+ssl://us%40er:p%40ss%3Aw%2Fo%2Crd@broker", []endpoint{login(tls("broker:61614"), "us@er", "p@ss:w/o,rd")}, nil},
		{"tcp://u:p@ss@broker", []endpoint{login(tcp("broker:61613"), "u", "p@ss")}, nil},
		{"admin:secret@[::1]:61613", []endpoint{login(tcp("[::1]:61613"), "admin", "secret")}, nil},
		{"ws://guest:pw@127.0.0.1:15674/ws", []endpoint{login(endpoint{scheme: "ws", addr: "ws://127.0.0.1:15674/ws"}, "guest", "pw")}, nil},

		// Lists.
		{"tcp://a:61613,tcp://b:61613", []endpoint{tcp("a:61613"), tcp("b:61613")}, nil},
		{"tcp://a:61613 , tcp://b:61613 ,tcp://c", []endpoint{tcp("a:61613"), tcp("b:61613"), tcp("c:61613")}, nil},
		{"a:1,ws://b:2/ws,ssl://c", []endpoint{tcp("a:1"), {scheme: "ws", addr: "ws://b:2/ws"}, tls("c:61614")}, nil},
		{"tcp://u1:p1@a,tcp://u2:p2@b", []endpoint{login(tcp("a:61613"), "u1", "p1"), login(tcp("b:61613"), "u2", "p2")}, nil},

		// ActiveMQ's failover.
		{"failover:(tcp://a:61613,tcp://b:61613)", []endpoint{tcp("a:61613"), tcp("b:61613")}, nil},
		{"failover:(tcp://a:61613)", []endpoint{tcp("a:61613")}, nil},
		{"failover:tcp://a:61613,tcp://b:61613", []endpoint{tcp("a:61613"), tcp("b:61613")}, nil},
		{"failover:( stomp://a , stomp+ssl://b )?randomize=false", []endpoint{tcp("a:61613"), tls("b:61614")}, &no},
		{"FAILOVER:(tcp://a)?randomize=true", []endpoint{tcp("a:61613")}, &yes},
		{"failover://(tcp://a,tcp://b)?randomize=false", []endpoint{tcp("a:61613"), tcp("b:61613")}, &no},
		{"failover:(tcp://a)?", []endpoint{tcp("a:61613")}, nil},
		{"failover:(tcp://guest:pw@a,b:1)?randomize=0", []endpoint{login(tcp("a:61613"), "guest", "pw"), tcp("b:1")}, &no},
	} {
		got, shuffle, err := parseAddrs(tt.in)
		if err != nil {
			t.Errorf("parseAddrs(%q): %v", tt.in, err)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("parseAddrs(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
		if (shuffle == nil) != (tt.shuffle == nil) || (shuffle != nil && *shuffle != *tt.shuffle) {
			t.Errorf("parseAddrs(%q): shuffle %v, want %v", tt.in, ptrString(shuffle), ptrString(tt.shuffle))
		}
	}
}

func ptrString(b *bool) string {
	if b == nil {
		return "nil"
	}
	if *b {
		return "true"
	}
	return "false"
}

func TestParseAddrsErrors(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want: in the error
	}{
		{"", "stomp: no address to dial"},
		{"   ", "stomp: no address to dial"},
		{",", "stomp: address 1 of 2 is empty"},
		{"tcp://a,,tcp://b", "stomp: address 2 of 3 is empty"},
		{"tcp://a,", "stomp: address 2 of 2 is empty"},
		{"foo://a:61613", `stomp: address "foo://a:61613": unknown scheme "foo" (want tcp://`},
		{"tcp://a,http://b", `stomp: address 2 of 2 "http://b": unknown scheme "http"`},
		{"://a", `unknown scheme ""`},
		{"tcp://a:99999", `bad port "99999" (want 1 to 65535)`},
		{"tcp://a:0", `bad port "0"`},
		{"a:port", `not a valid address`},
		{"tcp://a:", `empty port after ':'`},
		{"tcp://:61613", "no host"},
		{"tcp://", "no host"},
		{"ws:///ws", "no host"},
		{"tcp://a:61613/queue", "a tcp:// address takes no path or query"},
		{"tls://a?x=1", "a tls:// address takes no path or query"},
		{"tcp://a#frag", "a fragment"},
		{"tcp://a b:61613", "not a valid address"},
		{"tcp://a:61613 garbage", "not a valid address"},
		{"a b", "not a valid address"},
		{"tcp:a:1", "not host:port, nor a URL"},
		{"tcp:/a", "not host:port, nor a URL"},
		{"stomp:broker", "not host:port, nor a URL"},
		{"broker/ws", "not host:port, nor a URL"},
		{"tcp://a!b", `bad host "a!b"`},
		{"tcp://[a.b]:1", `not a valid address`},
		{"tcp://[1.2.3.4]:1", `not a valid address`},
		{"tcp://a%2Fb", `"tcp://a%2Fb": not a valid address`},
		{"tcp://a%25b:1", `"tcp://a%25b:1": bad host "a%b"`},
		{"ws://a;b/ws", `bad host "a;b"`},
		{"tcp://a%zz", "not a valid address"},
		{"failover:(tcp://a,tcp://b", "stomp: failover:( without its closing )"},
		{"failover:()", "stomp: failover:() lists no address"},
		{"failover:( , )", "stomp: address 1 of 2 is empty"},
		{"failover:", "stomp: no address to dial"},
		{"failover:tcp://a)", "a ')' without '('"},
		{"failover:(tcp://a)x", "may only be followed by ?options"},
		{"failover:(tcp://a)?randomize=maybe", `randomize="maybe": want one true or false`},
		{"failover:(tcp://a)?randomize=true&randomize=false", `want one true or false`},
		{"failover:(tcp://a)?maxReconnectAttempts=3", `failover option "maxReconnectAttempts" is not supported`},
		{"failover:(tcp://a)?%zz", "not a valid query"},
		{"failover:(failover:(tcp://a))", "nested failover"},
		{"tcp://a,failover:(tcp://b)", "failover: may only begin the whole address"},
		{"tcp://a,failover:tcp://b", "failover: may only begin the whole address"},
	} {
		eps, _, err := parseAddrs(tt.in)
		if err == nil {
			t.Errorf("parseAddrs(%q) = %v, want an error", tt.in, eps)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseAddrs(%q): %q does not say %q", tt.in, err, tt.want)
		}
		if !strings.HasPrefix(err.Error(), "stomp: ") {
			t.Errorf("parseAddrs(%q): %q does not start with the package name", tt.in, err)
		}
	}
}

// An input with credentials gets errors that quote none of it.
func TestParseAddrsErrorsHidePasscode(t *testing.T) {
	const pass = "S3cr3tPa55"
	for _, tt := range []struct {
		in, want string
	}{
		{"foo://u:" + pass + "@a:61613", `stomp: address: unknown scheme "…" (want tcp://`},
		{"tcp://u:" + pass + "@a:99999", `stomp: address: bad port "…"`},
		{"tcp://u:" + pass + "@a:x", "stomp: address: not a valid address"},
		{"tcp://a,tcp://u:" + pass + "@b/x", "stomp: address 2 of 2: a tcp:// address takes no path"},
		{"tcp://u:" + pass + "@:61613", "no host"},
		{"tcp://u:" + pass + "@a#x", "a fragment"},
		{"tcp://u:" + pass + "@a,", "stomp: address 2 of 2 is empty"},
		{"tcp://u:pa," + pass + "@a", "stomp: address 1 of 2: "}, // a raw comma splits the passcode
		{"tcp://u:" + pass + " x@a", "not a valid address"},
		{"failover:(tcp://u:" + pass + "@a", "without its closing )"},
		{"failover:(tcp://u:p@a)?" + pass + "=1", `failover option "…" is not supported`},
		{"failover:(tcp://u:p@a)?randomize=" + pass, `randomize="…"`},
		{"ws://u:" + pass + "@[::1:15674/ws", "not a valid address"},
		{"tcp://u:" + url.PathEscape(pass) + "@a:0", "bad port"},
	} {
		_, _, err := parseAddrs(tt.in)
		if err == nil {
			t.Errorf("parseAddrs(%q): no error", tt.in)
			continue
		}
		if strings.Contains(err.Error(), pass) || strings.Contains(err.Error(), "u:") {
			t.Errorf("parseAddrs(%q): the error shows the userinfo: %v", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseAddrs(%q): %q does not say %q", tt.in, err, tt.want)
		}
	}
}

func TestEndpointString(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"guest:guest@localhost", "tcp://localhost:61613"},
		{"stomp+ssl://admin:S3cret@broker", "tls://broker:61614"},
		{"[::1]", "tcp://[::1]:61613"},
		{"ws://guest:S3cret@127.0.0.1:15674/ws", "ws://127.0.0.1:15674/ws"},
		{"wss://h/ws?access_token=S3cret&x=1", "wss://h/ws?…"},
	} {
		eps, _, err := parseAddrs(tt.in)
		if err != nil {
			t.Fatalf("parseAddrs(%q): %v", tt.in, err)
		}
		if got := eps[0].String(); got != tt.want {
			t.Errorf("parseAddrs(%q)[0].String() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseAddrs checks that no input panics, that every endpoint parsed
// is well formed, and that neither String nor an error ever shows a
// passcode: arbitrary inputs, and lists built around a passcode written
// percent-encoded (any passcode at all) or raw (one without the
// characters URLs reserve).
func FuzzParseAddrs(f *testing.F) {
	for _, s := range []string{
		"tcp://a:61613,tcp://b:61613", "failover:(tcp://a,tcp://b)?randomize=false",
		"stomp+ssl://u:p@h", "[::1]:61613", "ws://u:p@h:1/ws?q", "failover:tcp://a,b", "a:b:c", "failover:(",
		"tcp://u:p@ss@h", "::1", "ws://h/p@x", "tcp://%zz@h",
	} {
		f.Add(s, "guest", "Pa55word", "h", uint8(0))
	}
	f.Fuzz(func(t *testing.T, s, user, pass, host string, form uint8) {
		check := func(in, pass string) {
			eps, _, err := parseAddrs(in)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "stomp: ") {
					t.Fatalf("parseAddrs(%q): error %q without the package name", in, err)
				}
				if strings.Contains(err.Error(), "%!") && !strings.Contains(in, "%!") {
					t.Fatalf("parseAddrs(%q): a formatting mistake in the error %q", in, err)
				}
				if pass != "" && strings.Contains(err.Error(), pass) {
					t.Fatalf("parseAddrs(%q): the error %q shows the passcode %q", in, err, pass)
				}
				return
			}
			if len(eps) == 0 {
				t.Fatalf("parseAddrs(%q): no endpoint and no error", in)
			}
			for _, ep := range eps {
				if _, ok := addrSchemes[ep.scheme]; !ok || ep.addr == "" {
					t.Fatalf("parseAddrs(%q): bad endpoint %+v", in, ep)
				}
				str := ep.String()
				_, rest, _ := strings.Cut(str, "://")
				if authority, _, _ := strings.Cut(rest, "/"); strings.Contains(authority, "@") {
					t.Fatalf("parseAddrs(%q): %q shows userinfo", in, str)
				}
				if pass != "" && strings.Contains(str, pass) {
					t.Fatalf("parseAddrs(%q): %q shows the passcode %q", in, str, pass)
				}
			}
		}
		check(s, "")

		// Only passcodes that cannot occur in the rest of the input by
		// chance make the check meaningful.
		if len(pass) < 4 || strings.Contains(host, pass) || strings.Contains(user, pass) {
			return
		}
		forms := []string{"tcp://%s@%s:61613", "%s@%s", "stomp+ssl://%s@%s,tcp://b", "failover:(tcp://a,ws://%s@%s/ws)?randomize=false", "failover:tcp://%s@%s"}
		form %= uint8(len(forms))
		skeleton := strings.ReplaceAll(forms[form], "%s", "")
		if strings.Contains(skeleton, pass) {
			return
		}
		encoded := url.UserPassword(user, pass).String()
		build := func(userinfo string) string {
			return strings.Replace(strings.Replace(forms[form], "%s", userinfo, 1), "%s", host, 1)
		}
		check(build(encoded), pass)
		if !strings.ContainsAny(pass, "@/?#,()[]%: \t\r\n") && !strings.ContainsAny(user, "@/?#,()[]%: \t\r\n") {
			check(build(user+":"+pass), pass)
		}
	})
}
