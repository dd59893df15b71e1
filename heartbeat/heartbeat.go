package heartbeat

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is the receive margin: silence longer than
// recv*DefaultTolerance means the peer is dead. RabbitMQ and ActiveMQ drop a
// silent client that asked for 1000 ms after about 3 s, so 2 is not stingy.
const DefaultTolerance = 2.0

// DefaultSendFraction is the part of the negotiated send interval after which
// an idle writer sends a heart-beat. ActiveMQ enforces the interval with no
// grace at all, so the writer must send well inside it: half leaves room for
// scheduling delays and network jitter.
const DefaultSendFraction = 0.5

// ErrInvalid is the sentinel that every [Parse] error wraps (via [*ParseError]).
var ErrInvalid = errors.New("heartbeat: invalid heart-beat header")

// ErrTimeout is the sentinel that a [*TimeoutError] matches with [errors.Is].
var ErrTimeout = errors.New("heartbeat: peer timed out")

// ParseError says a heart-beat header value is malformed. It unwraps to
// [ErrInvalid].
type ParseError struct {
	Value  string // the header value as received
	Reason string // what is wrong with it
}

// Error returns "heartbeat: invalid heart-beat header "<value>": <reason>".
func (e *ParseError) Error() string {
	return fmt.Sprintf("%v %q: %s", ErrInvalid, e.Value, e.Reason)
}

// Unwrap returns [ErrInvalid].
func (e *ParseError) Unwrap() error { return ErrInvalid }

// TimeoutError says the peer was silent for too long. It matches
// [ErrTimeout] with [errors.Is].
type TimeoutError struct {
	Interval time.Duration // the negotiated receive interval
	Silence  time.Duration // how long nothing had arrived when the Monitor gave up
}

// Error returns e.g. "heartbeat: no data from peer for 2.1s (expected every 1s)".
func (e *TimeoutError) Error() string {
	return fmt.Sprintf("heartbeat: no data from peer for %v (expected every %v)", e.Silence, e.Interval)
}

// Is reports whether target is [ErrTimeout].
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Settings is one side's heart-beat header: what it can send and what it
// wants to receive. The zero value means "0,0": no heart-beats either way,
// which is also what an absent header means.
type Settings struct {
	Send time.Duration // cx (client) / sx (server): smallest interval it can guarantee sending at; 0 = cannot send
	Recv time.Duration // cy / sy: interval it would like to receive at; 0 = does not want any
}

// maxMillis is the largest millisecond count a time.Duration can hold.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

// Parse parses a heart-beat header value "cx,cy": two non-negative decimal
// integers (milliseconds) separated by one comma, as the specification
// writes them and as RabbitMQ, ActiveMQ, stomp.js and stomp.py send them.
// An empty value (header absent) gives Settings{}. Nothing else is
// accepted: no spaces (header values are never trimmed), no signs, no
// values beyond what a time.Duration holds. Errors are [*ParseError]s,
// which wrap [ErrInvalid]. Parse allocates only on error.
func Parse(v string) (Settings, error) {
	if v == "" {
		return Settings{}, nil
	}
	sendStr, recvStr, ok := strings.Cut(v, ",")
	if !ok {
		return Settings{}, &ParseError{Value: v, Reason: "want two integers separated by a comma"}
	}
	send, err := parseMillis(v, sendStr)
	if err != nil {
		return Settings{}, err
	}
	recv, err := parseMillis(v, recvStr)
	if err != nil {
		return Settings{}, err
	}
	return Settings{Send: send, Recv: recv}, nil
}

func parseMillis(v, s string) (time.Duration, error) {
	// ParseUint with base 10 takes digits only: no sign, space or underscore.
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, &ParseError{Value: v, Reason: fmt.Sprintf("%q milliseconds is out of range", s)}
		}
		return 0, &ParseError{Value: v, Reason: fmt.Sprintf("%q is not a non-negative integer", s)}
	}
	if n > uint64(maxMillis) {
		return 0, &ParseError{Value: v, Reason: fmt.Sprintf("%q milliseconds is out of range", s)}
	}
	return time.Duration(n) * time.Millisecond, nil
}

// String formats s as the header value "cx,cy" in whole milliseconds.
// Durations are rounded up to the next millisecond, so a non-zero duration
// never becomes 0 (which would mean "none") and Send never promises more
// than it can keep; negative durations count as 0, and the largest ones give
// the largest value Parse accepts. It allocates the result.
func (s Settings) String() string {
	var buf [48]byte
	b := strconv.AppendInt(buf[:0], ceilMillis(s.Send), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, ceilMillis(s.Recv), 10)
	return string(b)
}

func ceilMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 && ms < maxMillis { // keep what Parse accepts
		ms++
	}
	return ms
}

// Negotiate returns the intervals in force for the side whose own header is
// local and whose peer sent remote, as the specification defines them:
//
//	send = 0 if local.Send == 0 or remote.Recv == 0, else max(local.Send, remote.Recv)
//	recv = 0 if local.Recv == 0 or remote.Send == 0, else max(local.Recv, remote.Send)
//
// So a client (cx,cy) talking to a server (sx,sy) sends every max(cx,sy) and
// expects data every max(sx,cy); the server, calling Negotiate with the
// arguments the other way round, gets the same two numbers swapped.
// Negative durations count as 0. It costs a few comparisons.
func Negotiate(local, remote Settings) (send, recv time.Duration) {
	return negotiate(local.Send, remote.Recv), negotiate(local.Recv, remote.Send)
}

func negotiate(mine, theirs time.Duration) time.Duration {
	if mine <= 0 || theirs <= 0 {
		return 0
	}
	return max(mine, theirs)
}
