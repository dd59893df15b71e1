package stomp_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sort"
	"sync"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// The examples run against the embedded broker, so they need no external
// server; against RabbitMQ or ActiveMQ only the address and login change.

func Example() {
	ctx := context.Background()
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Disconnect(ctx)

	sub, err := conn.Subscribe(ctx, "/queue/greetings")
	if err != nil {
		log.Fatal(err)
	}
	if err := conn.Send(ctx, "/queue/greetings", []byte("hello, STOMP")); err != nil {
		log.Fatal(err)
	}
	m := <-sub.C()
	fmt.Printf("%s from %s over STOMP %s\n", m.Body, m.Destination, conn.Version())
	// Output: hello, STOMP from /queue/greetings over STOMP 1.2
}

// Serve hands a subscription to a pool of handlers: each message is
// acknowledged when its handler returns nil, and nacked (redelivered) when
// it returns an error or panics. Acks are correct in whatever order the
// handlers finish, and Stop lets the handlers in progress finish and ack
// before it unsubscribes.
func ExampleSubscription_Serve() {
	ctx := context.Background()
	b, _ := broker.Start("127.0.0.1:0")
	defer b.Close()
	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Disconnect(ctx)

	sub, err := conn.Subscribe(ctx, "/queue/jobs",
		stomp.WithAck(stomp.AckClient), stomp.WithPrefetch(8))
	if err != nil {
		log.Fatal(err)
	}
	var (
		mu   sync.Mutex
		done []string
		all  = make(chan struct{})
	)
	pool, err := sub.Serve(ctx, 4, func(ctx context.Context, m stomp.Message) error {
		mu.Lock()
		defer mu.Unlock()
		done = append(done, string(m.Body))
		if len(done) == 5 {
			close(all)
		}
		return nil // acknowledged
	})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 5 {
		conn.Send(ctx, "/queue/jobs", fmt.Appendf(nil, "job-%d", i))
	}
	<-all
	if err := pool.Stop(ctx); err != nil { // handlers finished and acked, then UNSUBSCRIBE
		log.Fatal(err)
	}
	sort.Strings(done)
	fmt.Println(done, "acked:", pool.Stats().Acked)
	// Output: [job-0 job-1 job-2 job-3 job-4] acked: 5
}

// Receipts are futures: ask for one with WithReceipt on any call, keep
// sending, and wait for them when it matters.
func ExampleWithReceipt() {
	ctx := context.Background()
	b, _ := broker.Start("127.0.0.1:0")
	defer b.Close()
	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Disconnect(ctx)

	var receipts []*stomp.Receipt
	for i := range 100 {
		var r *stomp.Receipt
		if err := conn.Send(ctx, "/queue/audit", fmt.Appendf(nil, "%d", i), stomp.WithReceipt(&r)); err != nil {
			log.Fatal(err)
		}
		receipts = append(receipts, r)
	}
	confirmed := 0
	for _, r := range receipts {
		if err := r.Wait(ctx); err == nil {
			confirmed++
		}
	}
	fmt.Println(confirmed, "sends confirmed")
	// Output: 100 sends confirmed
}

// Client acknowledgement: in client mode an ACK covers the message and
// every earlier one of the subscription; NACK hands a message back to
// the broker, which redelivers it.
func ExampleMessage_Ack() {
	ctx := context.Background()
	b, _ := broker.Start("127.0.0.1:0")
	defer b.Close()
	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Disconnect(ctx)

	sub, _ := conn.Subscribe(ctx, "/queue/tasks", stomp.WithAck(stomp.AckClient))
	conn.Send(ctx, "/queue/tasks", []byte("flaky"))

	m := <-sub.C()
	fmt.Println(string(m.Body), "redelivered:", m.Redelivered)
	m.Nack(ctx) // not now: the broker sends it again

	m = <-sub.C()
	fmt.Println(string(m.Body), "redelivered:", m.Redelivered)
	if err := m.Ack(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// flaky redelivered: false
	// flaky redelivered: true
}

// Transact runs a function in a transaction: it commits when the function
// returns nil and aborts when it returns an error, so nothing it sent is
// delivered.
func ExampleConn_Transact() {
	ctx := context.Background()
	b, _ := broker.Start("127.0.0.1:0")
	defer b.Close()
	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Disconnect(ctx)
	sub, _ := conn.Subscribe(ctx, "/queue/ledger")

	errInsufficient := errors.New("insufficient funds")
	err = conn.Transact(ctx, func(tx *stomp.Tx) error {
		tx.Send(ctx, "/queue/ledger", []byte("debit 100"))
		return errInsufficient // aborted: the debit is never delivered
	})
	fmt.Println("first:", err)

	err = conn.Transact(ctx, func(tx *stomp.Tx) error {
		tx.Send(ctx, "/queue/ledger", []byte("debit 10"))
		return tx.Send(ctx, "/queue/ledger", []byte("credit 10"))
	})
	fmt.Println("second:", err)
	fmt.Println(string((<-sub.C()).Body))
	fmt.Println(string((<-sub.C()).Body))
	// Output:
	// first: insufficient funds
	// second: <nil>
	// debit 10
	// credit 10
}

// SendJSON and Message.JSON carry Go values as application/json.
func ExampleConn_SendJSON() {
	ctx := context.Background()
	b, _ := broker.Start("127.0.0.1:0")
	defer b.Close()
	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Disconnect(ctx)

	type Order struct {
		ID    int      `json:"id"`
		Items []string `json:"items"`
	}
	sub, _ := conn.Subscribe(ctx, "/topic/orders")
	conn.SendJSON(ctx, "/topic/orders", Order{ID: 7, Items: []string{"tea", "scones"}})

	m := <-sub.C()
	var o Order
	if err := m.JSON(&o); err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.ContentType, o.ID, o.Items)
	// Output: application/json 7 [tea scones]
}

// Connect runs STOMP over any io.ReadWriteCloser: here the client end of
// an in-memory pipe that the embedded broker serves.
func ExampleConnect() {
	ctx := context.Background()
	b, err := broker.New()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()

	conn, err := stomp.Connect(ctx, b.Pipe(), stomp.WithVersions(stomp.V11), stomp.WithLogin("demo", "demo"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("connected, version", conn.Version())
	if err := conn.Disconnect(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("disconnected:", conn.Err())
	// Output:
	// connected, version 1.1
	// disconnected: <nil>
}
