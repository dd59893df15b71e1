package compat

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	gsframe "github.com/go-stomp/stomp/v3/frame"
	"github.com/stompout/stomp"
	"github.com/stompout/stomp/reconnect"
)

// The end-to-end benchmarks drive both libraries' clients through the same
// small interface, each used the way its documentation shows: these
// adapters are the only code that knows either client's API.

// e2eLib is one client library: its name in benchmark names and how it
// dials a server.
type e2eLib struct {
	name string
	dial func(ctx context.Context, srv *e2eServer) (e2eClient, error)
	// producer, if set, dials the producer connection instead of dial
	// (one library's consumer with the other's producer); such a row does
	// only the throughput work (does).
	producer func(ctx context.Context, srv *e2eServer) (e2eClient, error)
}

// dialProducer dials the producer connection.
func (l e2eLib) dialProducer(ctx context.Context, srv *e2eServer) (e2eClient, error) {
	if l.producer != nil {
		return l.producer(ctx, srv)
	}
	return l.dial(ctx, srv)
}

// does reports whether the library's row does work w: a mixed row does
// only what tells which half of a client costs a server what, the
// throughput work with auto acks.
func (l e2eLib) does(w e2eWork) bool {
	return l.producer == nil || (w.ack == "auto" && w.send == "plain" && w.rate == 0)
}

// dialStompoutE2E dials a stompout client with its default options.
func dialStompoutE2E(ctx context.Context, srv *e2eServer) (e2eClient, error) {
	return dialStompout(ctx, srv)
}

var e2eLibs = []e2eLib{
	{"stompout", dialStompoutE2E, nil},
	{"gostomp", dialGoStompE2E, nil},
	// The opt-in trade of latency for CPU, for servers that write one
	// frame per write (RabbitMQ, ActiveMQ, go-stomp's).
	{"stompout-coalesce", func(ctx context.Context, srv *e2eServer) (e2eClient, error) {
		return dialStompout(ctx, srv, stomp.WithReadCoalesce(time.Millisecond))
	}, nil},
	// The two libraries mixed, stompout's consumer with go-stomp's
	// producer and the other way round: which half of a client makes a
	// server slower or faster (BENCHMARKS.md, profile item 15).
	{"stompout-consumer", dialStompoutE2E, dialGoStompE2E},
	{"stompout-producer", dialGoStompE2E, dialStompoutE2E},
}

// e2eClient is one client connection.
type e2eClient interface {
	// send sends one message without a receipt.
	send(ctx context.Context, dest string, body []byte) error
	// sendReceipt sends one message and waits for its receipt.
	sendReceipt(ctx context.Context, dest string, body []byte) error
	// sendPipelined sends n messages, body(i, buf) filling the i-th, each
	// with a receipt, with at most window receipts outstanding; it returns
	// once every receipt has arrived.
	sendPipelined(ctx context.Context, dest string, n, window int, body func(i int, buf []byte) []byte) error
	// subscribe subscribes to dest in ack mode "auto" or
	// "client-individual".
	subscribe(ctx context.Context, dest, ack string) (e2eSub, error)
	// close disconnects gracefully (DISCONNECT and its receipt).
	close() error
}

// e2eSub is one subscription.
type e2eSub interface {
	// next returns the next message's body, acknowledged (one ACK frame)
	// in client-individual mode.
	next(ctx context.Context) ([]byte, error)
}

// prefetch is the prefetch both clients ask for in client-individual mode
// (RabbitMQ's default is unlimited, the stompout broker's 100). It is small
// because go-stomp's client deadlocks with more: its one loop blocks handing
// a MESSAGE to a full subscription channel (16) while the consumer blocks
// queueing an ACK to its full write channel (20), until its 10 s send
// timeout fails the ACK. With at most 16 unacknowledged, at most 16 ACKs
// can wait.
const prefetch = 16

// stompout

type stompoutClient struct{ c *stomp.Conn }

// e2eBufferEnv, when set to a number, is the stompout client's
// WithSubscriptionBuffer; unset, the client's default. (With the default of
// 256 a consumer that the scheduler holds back while a burst arrives ends
// with ErrSlowConsumer; BENCHMARKS.md shows both.)
const e2eBufferEnv = "STOMP_E2E_BUFFER"

func dialStompout(ctx context.Context, srv *e2eServer, extra ...stomp.Option) (e2eClient, error) {
	// A benchmark measures one connection: a failure is an error, not a
	// reconnect.
	opts := append([]stomp.Option{stomp.WithLogin(srv.login, srv.passcode), stomp.WithHost("/"),
		stomp.WithReconnect(reconnect.Never())}, extra...)
	if v := os.Getenv(e2eBufferEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("compat: bad %s=%q: want a positive number", e2eBufferEnv, v)
		}
		opts = append(opts, stomp.WithSubscriptionBuffer(n))
	}
	c, err := stomp.Dial(ctx, "tcp://"+srv.addr, opts...)
	if err != nil {
		return nil, err
	}
	return stompoutClient{c}, nil
}

func (s stompoutClient) send(ctx context.Context, dest string, body []byte) error {
	return s.c.Send(ctx, dest, body) // body is not retained: the caller reuses it
}

func (s stompoutClient) sendReceipt(ctx context.Context, dest string, body []byte) error {
	var r *stomp.Receipt
	if err := s.c.Send(ctx, dest, body, stomp.WithReceipt(&r)); err != nil {
		return err
	}
	return r.Wait(ctx)
}

// sendPipelined keeps a ring of window receipts: receipts are futures and
// do not serialise sends, so one goroutine pipelines.
func (s stompoutClient) sendPipelined(ctx context.Context, dest string, n, window int, body func(int, []byte) []byte) error {
	ring := make([]*stomp.Receipt, window)
	var buf []byte
	for i := range n {
		slot := &ring[i%window]
		if *slot != nil {
			if err := (*slot).Wait(ctx); err != nil {
				return err
			}
		}
		buf = body(i, buf)
		if err := s.c.Send(ctx, dest, buf, stomp.WithReceipt(slot)); err != nil {
			return err
		}
	}
	for _, r := range ring {
		if r != nil {
			if err := r.Wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s stompoutClient) subscribe(ctx context.Context, dest, ack string) (e2eSub, error) {
	opts := []stomp.SubscribeOption{stomp.WithAck(stomp.AckMode(ack))}
	if ack != "auto" {
		opts = append(opts, stomp.WithPrefetch(prefetch))
	}
	sub, err := s.c.Subscribe(ctx, dest, opts...)
	if err != nil {
		return nil, err
	}
	return &stompoutSub{sub: sub, ack: ack != "auto"}, nil
}

func (s stompoutClient) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.c.Disconnect(ctx)
}

type stompoutSub struct {
	sub *stomp.Subscription
	ack bool
}

func (s *stompoutSub) next(ctx context.Context) ([]byte, error) {
	select {
	case m, ok := <-s.sub.C():
		if !ok {
			return nil, fmt.Errorf("subscription ended: %w", s.sub.Err())
		}
		if s.ack {
			if err := m.Ack(ctx); err != nil {
				return nil, err
			}
		}
		return m.Body, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// go-stomp

type goStompClient struct{ c *gostomp.Conn }

func dialGoStompE2E(ctx context.Context, srv *e2eServer) (e2eClient, error) {
	c, err := gostomp.DialWithContext(ctx, "tcp", srv.addr,
		gostomp.ConnOpt.Login(srv.login, srv.passcode), gostomp.ConnOpt.Host("/"),
		gostomp.ConnOpt.Logger(quietLog{}))
	if err != nil {
		return nil, err
	}
	return goStompClient{c}, nil
}

// send copies body: go-stomp's Send hands the slice to its writer
// goroutine and returns before it is written, so the caller may not reuse
// it. The copy is the one allocation go-stomp's API asks of its users.
func (g goStompClient) send(_ context.Context, dest string, body []byte) error {
	return g.c.Send(dest, "", append([]byte(nil), body...))
}

func (g goStompClient) sendReceipt(_ context.Context, dest string, body []byte) error {
	return g.c.Send(dest, "", body, gostomp.SendOpt.Receipt)
}

// sendPipelined runs window goroutines, each sending with a receipt: a
// go-stomp Send with a receipt blocks until the receipt arrives, so
// concurrency is its only way to have several outstanding. (go-stomp holds
// a connection-wide mutex across that wait, so they still go one at a
// time; that is what this row measures.)
func (g goStompClient) sendPipelined(ctx context.Context, dest string, n, window int, body func(int, []byte) []byte) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for range window {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := g.c.Send(dest, "", body(i, nil), gostomp.SendOpt.Receipt); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func (g goStompClient) subscribe(_ context.Context, dest, ack string) (e2eSub, error) {
	mode := gostomp.AckAuto
	var opts []func(*gsframe.Frame) error
	if ack != "auto" {
		mode = gostomp.AckClientIndividual
		p := fmt.Sprint(prefetch)
		opts = append(opts, gostomp.SubscribeOpt.Header("prefetch-count", p),
			gostomp.SubscribeOpt.Header("activemq.prefetchSize", p))
	}
	sub, err := g.c.Subscribe(dest, mode, opts...)
	if err != nil {
		return nil, err
	}
	return &goStompSub{c: g.c, sub: sub, ack: ack != "auto"}, nil
}

func (g goStompClient) close() error { return g.c.Disconnect() }

type goStompSub struct {
	c   *gostomp.Conn
	sub *gostomp.Subscription
	ack bool
}

func (g *goStompSub) next(ctx context.Context) ([]byte, error) {
	select {
	case m, ok := <-g.sub.C:
		if !ok {
			return nil, errors.New("subscription ended")
		}
		if m.Err != nil {
			return nil, m.Err
		}
		if g.ack {
			if err := g.c.Ack(m); err != nil {
				return nil, err
			}
		}
		return m.Body, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
