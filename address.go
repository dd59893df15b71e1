package stomp

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// endpoint is one address of Dial's failover list, parsed and normalised.
type endpoint struct {
	scheme   string // "tcp", "tls", "ws" or "wss"
	addr     string // host:port for tcp and tls (default port added); the URL without userinfo for ws and wss
	login    string // from user:pass@, percent-decoded
	passcode string
	hasLogin bool // the URL had userinfo (login may still be empty)
}

// Default ports for tcp:// and tls:// addresses without one.
const (
	defaultPortPlain = "61613"
	defaultPortTLS   = "61614"
)

// addrSchemes maps every scheme Dial accepts, lower case, to its transport.
// stomp://, stomp+ssl:// and the +nio forms are how ActiveMQ users write
// their broker's STOMP connectors.
var addrSchemes = map[string]string{
	"tcp":           "tcp",
	"stomp":         "tcp",
	"stomp+nio":     "tcp",
	"tls":           "tls",
	"ssl":           "tls",
	"stomp+ssl":     "tls",
	"stomp+tls":     "tls",
	"stomp+nio+ssl": "tls",
	"ws":            "ws",
	"wss":           "wss",
}

const addrWantSchemes = "want tcp://, tls://, ssl://, stomp://, stomp+ssl://, ws:// or wss://, or host:port"

// String names the endpoint for logs and errors: the scheme and address,
// never the userinfo, and for ws/wss no query values (they may hold a
// token).
func (e endpoint) String() string {
	switch e.scheme {
	case "ws", "wss":
		if i := strings.IndexByte(e.addr, '?'); i >= 0 {
			return e.addr[:i] + "?…"
		}
		return e.addr
	}
	return e.scheme + "://" + e.addr
}

// parseAddrs parses Dial's address into its failover list: one URL, a
// comma-separated list of them (spaces around the commas allowed), or
// ActiveMQ's failover:(url,url)?randomize=false and failover:url,url. A
// bare host:port means tcp. shuffle is what failover's randomize option
// says, nil when it says nothing. A comma inside a URL must be written
// %2C, and the characters of a passcode that URLs reserve (@ / ? # , and
// the like) percent-encoded.
//
// Errors never hold the passcode: when s holds an '@' (so it may hold
// credentials) they name an address by its position and quote none of s.
func parseAddrs(s string) (eps []endpoint, shuffle *bool, err error) {
	p := addrParser{secret: strings.Contains(s, "@")}
	list := strings.TrimSpace(s)
	if list == "" {
		return nil, nil, errors.New("stomp: no address to dial")
	}
	if len(list) >= len("failover:") && strings.EqualFold(list[:len("failover:")], "failover:") {
		list, shuffle, err = p.failover(list[len("failover:"):])
		if err != nil {
			return nil, nil, err
		}
	}
	pieces := strings.Split(list, ",")
	p.n = len(pieces)
	eps = make([]endpoint, 0, len(pieces))
	for i, piece := range pieces {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			if len(pieces) == 1 {
				return nil, nil, errors.New("stomp: no address to dial")
			}
			return nil, nil, fmt.Errorf("stomp: address %d of %d is empty (a stray comma?)", i+1, len(pieces))
		}
		ep, err := p.endpoint(i, piece)
		if err != nil {
			return nil, nil, err
		}
		eps = append(eps, ep)
	}
	return eps, shuffle, nil
}

// addrParser makes errors that quote the input only when it cannot hold a
// passcode.
type addrParser struct {
	secret bool // the input has an '@': quote nothing of it
	n      int  // addresses in the list
}

// safeArg is an argument of errorf that is not made of the input.
type safeArg string

// errorf returns "stomp: address <which>: <format>"; with secret, the
// address is named by position and every arg but a safeArg becomes "…".
func (p addrParser) errorf(i int, piece, format string, args ...any) error {
	which := strconv.Quote(piece)
	if p.secret {
		for j, a := range args {
			if _, ok := a.(safeArg); !ok {
				args[j] = "…"
			}
		}
		which = ""
		if p.n > 1 {
			which = fmt.Sprintf(" %d of %d", i+1, p.n)
		}
	} else {
		which = " " + which
		if p.n > 1 {
			which = fmt.Sprintf(" %d of %d %s", i+1, p.n, strconv.Quote(piece))
		}
	}
	return fmt.Errorf("stomp: address%s: %s", which, fmt.Sprintf(format, args...))
}

// failover parses what follows "failover:": the list of addresses and
// the randomize option.
func (p addrParser) failover(rest string) (list string, shuffle *bool, err error) {
	rest = strings.TrimPrefix(strings.TrimSpace(rest), "//")
	if !strings.HasPrefix(rest, "(") {
		if strings.Contains(rest, ")") {
			return "", nil, errors.New("stomp: failover: a ')' without '('")
		}
		return rest, nil, nil
	}
	end := strings.LastIndexByte(rest, ')')
	if end < 0 {
		return "", nil, errors.New("stomp: failover:( without its closing )")
	}
	list, opts := rest[1:end], strings.TrimSpace(rest[end+1:])
	if strings.TrimSpace(list) == "" {
		return "", nil, errors.New("stomp: failover:() lists no address")
	}
	if strings.ContainsAny(list, "()") {
		return "", nil, errors.New("stomp: failover:(...): a parenthesis inside the list (nested failover?)")
	}
	if opts == "" {
		return list, nil, nil
	}
	if opts[0] != '?' {
		return "", nil, errors.New("stomp: failover:(...) may only be followed by ?options")
	}
	q, err := url.ParseQuery(opts[1:])
	if err != nil {
		return "", nil, errors.New("stomp: failover:(...)?options: not a valid query")
	}
	hide := func(s string) string {
		if p.secret {
			return "…"
		}
		return s
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k]
		if k != "randomize" {
			return "", nil, fmt.Errorf("stomp: failover option %q is not supported (only randomize; reconnect delays and attempts are Dial's options)", hide(k))
		}
		b, err := strconv.ParseBool(v[len(v)-1])
		if err != nil || len(v) > 1 {
			return "", nil, fmt.Errorf("stomp: failover option randomize=%q: want one true or false", hide(strings.Join(v, ",")))
		}
		shuffle = &b
	}
	return list, shuffle, nil
}

// endpoint parses one address of the list, the i-th.
func (p addrParser) endpoint(i int, piece string) (endpoint, error) {
	scheme, rest, ok := strings.Cut(piece, "://")
	if ok {
		if strings.EqualFold(scheme, "failover") || strings.HasPrefix(strings.ToLower(piece), "failover:") {
			return endpoint{}, p.errorf(i, piece, "failover: may only begin the whole address")
		}
		norm, known := addrSchemes[strings.ToLower(scheme)]
		if !known {
			return endpoint{}, p.errorf(i, piece, "unknown scheme %q (%s)", scheme, safeArg(addrWantSchemes))
		}
		scheme = norm
	} else {
		if strings.HasPrefix(strings.ToLower(piece), "failover:") {
			return endpoint{}, p.errorf(i, piece, "failover: may only begin the whole address")
		}
		scheme, rest = "tcp", piece
		// tcp:host and the like: a scheme without its //. (A host named
		// like a scheme, with a port, is fine: stomp:61613.)
		if name, after, ok := strings.Cut(piece, ":"); ok && addrSchemes[strings.ToLower(name)] != "" && !allDigits(after) || strings.ContainsAny(piece, "/?#") {
			return endpoint{}, p.errorf(i, piece, "not host:port, nor a URL (its scheme is followed by ://)")
		}
		// An IPv6 address without brackets and without a port.
		if ip := net.ParseIP(rest); ip != nil && strings.Contains(rest, ":") {
			rest = "[" + rest + "]"
		}
	}
	u, err := url.Parse(scheme + "://" + rest)
	if err != nil {
		// url's errors quote the whole URL, userinfo and all.
		return endpoint{}, p.errorf(i, piece, "not a valid address (%s)", safeArg(addrWantSchemes))
	}
	if u.Fragment != "" || strings.Contains(rest, "#") {
		return endpoint{}, p.errorf(i, piece, "a fragment (#...) has no meaning here")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return endpoint{}, p.errorf(i, piece, "no host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return endpoint{}, p.errorf(i, piece, "empty port after ':'")
	}
	if !validHost(host, strings.HasPrefix(u.Host, "[")) {
		return endpoint{}, p.errorf(i, piece, "bad host %q (want a name, an IPv4 address or [an IPv6 address])", host)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return endpoint{}, p.errorf(i, piece, "bad port %q (want 1 to 65535)", port)
		}
		port = strconv.Itoa(n) // no leading zeros
	}
	ep := endpoint{scheme: scheme}
	if u.User != nil {
		ep.hasLogin = true
		ep.login = u.User.Username()
		ep.passcode, _ = u.User.Password()
		u.User = nil
	}
	switch scheme {
	case "tcp", "tls":
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery {
			return endpoint{}, p.errorf(i, piece, "a %s:// address takes no path or query (only ws:// and wss:// do)", safeArg(scheme))
		}
		if port == "" {
			port = defaultPortPlain
			if scheme == "tls" {
				port = defaultPortTLS
			}
		}
		ep.addr = net.JoinHostPort(host, port)
	default: // ws, wss: the URL as given, less the userinfo
		if port != "" {
			u.Host = net.JoinHostPort(host, port)
		}
		ep.addr = u.String()
	}
	return ep, nil
}

// validHost says whether host (from a URL, brackets removed) can be
// dialled: a bracketed IPv6 address (with an optional %zone), or a name or
// IPv4 address made of letters, digits, '-', '.' and '_' (and any
// non-ASCII letter, left to the resolver).
func validHost(host string, bracketed bool) bool {
	if bracketed {
		addr, _, _ := strings.Cut(host, "%")
		ip := net.ParseIP(addr)
		return ip != nil && strings.Contains(addr, ":")
	}
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_', r >= 0x80:
		default:
			return false
		}
	}
	return host != ""
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
