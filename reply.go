package stomp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The headers of request/reply.
const (
	// HdrReplyTo names the destination a reply goes to.
	HdrReplyTo = "reply-to"
	// HdrCorrelationID ties a reply to its request; RabbitMQ maps it to
	// the AMQP correlation_id, ActiveMQ to JMSCorrelationID.
	HdrCorrelationID = "correlation-id"
)

// rabbitReplyQueue is the temporary queue RabbitMQ replies go to: RabbitMQ
// makes one per connection for the name, private to it, and delivers its
// messages with this name as the subscription header.
const rabbitReplyQueue = "/temp-queue/stompout.replies"

// replyState is the Conn's part of request/reply: the replier, made by
// the first Request.
type replyState struct {
	init sync.Once
	sem  chan struct{} // capacity 1: held while the replier is being made
	r    atomic.Pointer[replier]
}

// replier routes replies to the Requests waiting for them, by correlation
// id. The reader goroutine calls route; it never blocks.
type replier struct {
	replyTo string // the reply-to header of requests
	temp    string // RabbitMQ: the subscription header of replies; "" otherwise
	subID   string // otherwise: the id of the private subscription replies arrive on
	prefix  string // of correlation ids: random, so that no other client's collide
	n       atomic.Uint64
	late    atomic.Uint64 // replies that found no Request waiting (given up on)

	mu      sync.Mutex
	pending map[string]chan Message // correlation id -> the Request's (capacity 1)
}

// Request sends body to dest as a request, with a reply-to header and a
// correlation-id (any of the caller's own are ignored), and returns the
// reply: the first message that comes back to the reply-to destination with
// the same correlation-id. Options are Send's.
//
// Against RabbitMQ (its CONNECTED server header starts with "RabbitMQ")
// replies go to a /temp-queue/, private to the connection; elsewhere to a
// private queue of the Conn's own, /queue/stompout.reply.<random>, which the
// first Request subscribes to (in AckAuto mode: the subscription is in
// Conn.Subscriptions, id "stompout-reply-<random>"). Concurrent Requests
// share it; a reply that comes after its Request has given up is dropped
// (counted by LateReplies), never handed to Unrouted.
//
// Request blocks until the reply arrives, ctx ends (ctx.Err()), or the Conn
// ends. Over a /temp-queue/ a reply cannot outlive its transport: if the
// transport is lost before the reply comes, Request returns an error
// matching ErrConnectionLost (the request may have been handled). The
// answering side replies with Conn.Reply.
//
// Cost: a SEND as Send's, plus a channel and a map entry while the Request
// waits; the reader hands the reply over without blocking.
func (c *Conn) Request(ctx context.Context, dest string, body []byte, opts ...SendOption) (Message, error) {
	rr, err := c.replier(ctx)
	if err != nil {
		return Message{}, settleOpts(opts, err)
	}
	corr := rr.prefix + strconv.FormatUint(rr.n.Add(1), 10)
	ch := make(chan Message, 1)
	rr.mu.Lock()
	rr.pending[corr] = ch
	rr.mu.Unlock()
	defer func() {
		rr.mu.Lock()
		delete(rr.pending, corr)
		rr.mu.Unlock()
	}()
	all := make([]SendOption, 0, len(opts)+2)
	all = append(all, WithHeader(HdrReplyTo, rr.replyTo), WithHeader(HdrCorrelationID, corr))
	all = append(all, opts...)
	if err := c.Send(ctx, dest, body, all...); err != nil {
		return Message{}, err
	}
	var lostC <-chan struct{}
	if rr.temp != "" {
		if s := c.current(); s != nil {
			lostC = s.done
		}
	}
	select {
	case m := <-ch:
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	case <-c.done:
		return Message{}, c.closedErr()
	case <-lostC:
		select {
		case m := <-ch:
			return m, nil
		default:
		}
		return Message{}, fmt.Errorf("stomp: request to %s: the reply's temporary queue ended with its transport: %w", dest, ErrConnectionLost)
	}
}

// Reply answers the request req: it sends body to req's reply-to
// destination with req's correlation-id, as Send does (options are Send's).
// It returns an error, sending nothing, if req has no reply-to header.
func (c *Conn) Reply(ctx context.Context, req Message, body []byte, opts ...SendOption) error {
	to := req.Header.Get(HdrReplyTo)
	if to == "" {
		return settleOpts(opts, fmt.Errorf("stomp: Reply: message %q has no reply-to header", req.ID))
	}
	if corr, ok := req.Header.Lookup(HdrCorrelationID); ok {
		all := make([]SendOption, 0, len(opts)+1)
		all = append(all, WithHeader(HdrCorrelationID, corr))
		opts = append(all, opts...)
	}
	return c.Send(ctx, to, body, opts...)
}

// LateReplies returns how many replies to Request came after their Request
// had given up (its ctx ended) and were dropped.
func (c *Conn) LateReplies() uint64 {
	if rr := c.replies.r.Load(); rr != nil {
		return rr.late.Load()
	}
	return 0
}

// replier returns the Conn's replier, making it on first use.
func (c *Conn) replier(ctx context.Context) (*replier, error) {
	if rr := c.replies.r.Load(); rr != nil {
		return rr, nil
	}
	c.replies.init.Do(func() { c.replies.sem = make(chan struct{}, 1) })
	select {
	case c.replies.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.replies.sem }()
	if rr := c.replies.r.Load(); rr != nil {
		return rr, nil
	}
	var b [8]byte
	rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	rr := &replier{prefix: tag + "-", pending: make(map[string]chan Message)}
	if strings.HasPrefix(c.Server(), "RabbitMQ") {
		rr.replyTo, rr.temp = rabbitReplyQueue, rabbitReplyQueue
		c.replies.r.Store(rr)
		return rr, nil
	}
	rr.replyTo, rr.subID = "/queue/stompout.reply."+tag, "stompout-reply-"+tag
	// Routing starts once rr is stored, after the SUBSCRIBE: no reply can
	// come before, since no request has named the queue yet.
	if _, err := c.Subscribe(ctx, rr.replyTo, WithID(rr.subID)); err != nil {
		return nil, fmt.Errorf("stomp: request: subscribing to the reply queue: %w", err)
	}
	c.replies.r.Store(rr)
	return rr, nil
}

// route hands a MESSAGE to the Request waiting for it, if the message is a
// reply: it came for the reply subscription (its subscription header is
// rr's). It reports whether it took the message. Reader goroutine; it
// never blocks.
func (rr *replier) route(m *Message, subID string) bool {
	if rr.temp != "" {
		if subID != rr.temp {
			return false
		}
	} else if subID != rr.subID {
		return false
	}
	corr := m.Header.Get(HdrCorrelationID)
	rr.mu.Lock()
	ch := rr.pending[corr]
	delete(rr.pending, corr)
	rr.mu.Unlock()
	if ch == nil {
		rr.late.Add(1)
		return true
	}
	// Replies come on an auto-ack subscription (the temp-queue's, or the
	// private one): an ACK would be an unknown ack id, an ERROR.
	m.mode, m.sub = AckAuto, nil
	ch <- *m // capacity 1, and deleted: the only send
	return true
}

// routeReply is dispatch's hook: it reports whether m was a reply to a
// Request and has been handed to it.
func (c *Conn) routeReply(m *Message, subID string) bool {
	rr := c.replies.r.Load()
	return rr != nil && rr.route(m, subID)
}
