package stomp_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/reconnect"
)

// Interop tests of reconnect and of the lossless default, against the
// real brokers (STOMP_INTEROP=1; see interop_test.go).

func interopOpts() []stomp.Option {
	return []stomp.Option{stomp.WithLogin("guest", "guest"), stomp.WithHost("/")}
}

// TestInteropLosslessDefault: 100,000 messages waiting in a queue of each
// broker, a default Subscribe and 4 workers: all received.
func TestInteropLosslessDefault(t *testing.T) {
	for _, b := range stomp.InteropBrokers(t) {
		if b.Name() == "rabbitmq-ws" {
			continue // the same broker as rabbitmq
		}
		t.Run(b.Name(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			testLosslessDefault(ctx, t, b.Addr(), 100000, interopOpts())
		})
	}
}

// TestInteropUnsubscribeBusy: on RabbitMQ, unsubscribing a busy
// subscription (RabbitMQ may answer deliveries in flight with ERROR
// "Subscription not found" and keep the socket open) does not stop
// another subscription of the same connection: it receives all of its
// 2,000 messages.
func TestInteropUnsubscribeBusy(t *testing.T) {
	for _, b := range stomp.InteropBrokers(t) {
		if !b.Rabbit() || b.Name() != "rabbitmq" {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		opts := append(interopOpts(), stomp.WithReconnect(reconnect.Never()))
		c, err := stomp.Dial(ctx, b.Addr(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p, err := stomp.Dial(ctx, b.Addr(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		busyQ, otherQ := uniqueName("busy"), uniqueName("other")
		for i := range 5000 {
			if err := p.Send(ctx, busyQ, []byte("b"+string(rune('a'+i%26)))); err != nil {
				t.Fatal(err)
			}
		}
		busy, err := c.Subscribe(ctx, busyQ, stomp.WithAck(stomp.AckClientIndividual), stomp.WithPrefetch(500))
		if err != nil {
			t.Fatal(err)
		}
		other, err := c.Subscribe(ctx, otherQ)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for range 2000 {
				p.Send(ctx, otherQ, []byte("o"))
			}
		}()
		// Ack a few, then unsubscribe with hundreds in flight.
		for range 10 {
			m := <-busy.C()
			m.Ack(ctx)
		}
		if err := busy.Unsubscribe(ctx); err != nil {
			t.Fatal(err)
		}
		for n := 0; n < 2000; n++ {
			select {
			case _, ok := <-other.C():
				if !ok {
					t.Fatalf("other subscription ended after %d: %v (conn %v)", n, other.Err(), c.Err())
				}
			case <-ctx.Done():
				t.Fatalf("other subscription received %d of 2000", n)
			}
		}
		if c.Err() != nil {
			t.Fatal(c.Err())
		}
		t.Logf("unsubscribe busy: other received 2000; ERROR frames ignored: %d", c.IgnoredErrors())
	}
}

// TestInteropRestartZeroLoss: RabbitMQ restarted (rabbitmqctl stop_app,
// start_app) in the middle of 20,000 persistent receipted messages to a
// durable queue: every receipted message is received at least once. It
// runs only where it may restart the broker (STOMP_RESTART_RABBITMQ=1,
// which scripts/test.sh sets for the step that runs it alone, since other
// packages' tests use the same broker).
func TestInteropRestartZeroLoss(t *testing.T) {
	brokers := stomp.InteropBrokers(t)
	if os.Getenv("STOMP_RESTART_RABBITMQ") == "" {
		t.Skip("set STOMP_RESTART_RABBITMQ=1 to let the test restart RabbitMQ (scripts/test.sh does, in a step of its own)")
	}
	for _, b := range brokers {
		if b.Name() != "rabbitmq" {
			continue
		}
		const n = 20000
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
		defer cancel()
		policy, err := reconnect.Exponential(reconnect.Initial(50*time.Millisecond), reconnect.Max(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		opts := append(interopOpts(), stomp.WithReconnect(policy))
		producer, err := stomp.Dial(ctx, b.Addr(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer producer.Close()
		consumer, err := stomp.Dial(ctx, b.Addr(), opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer consumer.Close()
		dest := uniqueName("restart")
		sub, err := consumer.Subscribe(ctx, dest, stomp.WithAck(stomp.AckClientIndividual),
			stomp.WithHeader("durable", "true"), stomp.WithHeader("auto-delete", "false"))
		if err != nil {
			t.Fatal(err)
		}
		l := newLedger()
		var stale atomic.Int64
		workers := consume(ctx, sub, 4, l, &stale, nil)
		want := bodies("r-", n)
		restarted := make(chan error, 1)
		sent := produce(ctx, t, producer, dest, want, 256, func(k int) {
			if k == n/2 {
				go func() { restarted <- restartRabbitMQ(ctx) }()
			}
		}, stomp.WithHeader("persistent", "true"))
		if err := <-restarted; err != nil {
			t.Fatal(err)
		}
		missing := l.waitAll(ctx, want)
		unique, dups := l.counts()
		t.Logf("zero loss across a RabbitMQ restart: sent=%d receipted=%d received=%d duplicates=%d missing=%d stale-acks=%d",
			sent, n, unique, dups, missing, stale.Load())
		if missing != 0 {
			t.Fatalf("missing %d", missing)
		}
		if err := sub.Unsubscribe(ctx); err != nil {
			t.Fatal(err)
		}
		consumer.Close()
		workers.Wait()
	}
}

func restartRabbitMQ(ctx context.Context) error {
	for _, args := range [][]string{{"-q", "stop_app"}, {"-q", "start_app"}, {"-q", "-t", "60", "await_startup"}} {
		out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
		if err != nil {
			return &exec.Error{Name: "rabbitmqctl " + strings.Join(args, " ") + ": " + string(out), Err: err}
		}
	}
	return nil
}

func uniqueName(what string) string {
	return "/queue/stompout-" + what + "-" + time.Now().Format("150405.000000000")
}
