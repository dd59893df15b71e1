package stomp_test

import (
	"context"
	"fmt"
	"time"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/reconnect"
)

// A Conn survives its broker's restart: the subscription is made again on
// the new connection, its channel stays open, and a Send made during the
// outage waits for the new connection; its receipt says the broker has it.
func ExampleConn_reconnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	addr := b.Addr()

	lost := make(chan struct{})
	states := make(chan stomp.State, 16)
	policy, _ := reconnect.Exponential(reconnect.Initial(10*time.Millisecond), reconnect.Max(100*time.Millisecond))
	conn, err := stomp.Dial(ctx, "tcp://"+addr,
		stomp.WithReconnect(policy),
		stomp.WithStateListener(func(e stomp.StateChange) {
			switch e.State {
			case stomp.StateReconnecting: // how many attempts fail depends on timing
				return
			case stomp.StateLost:
				close(lost)
			}
			states <- e.State
		}))
	if err != nil {
		panic(err)
	}
	sub, err := conn.Subscribe(ctx, "/queue/jobs")
	if err != nil {
		panic(err)
	}

	b.Close() // the broker goes away...
	<-lost
	b, err = broker.Start(addr) // ...and comes back
	if err != nil {
		panic(err)
	}
	defer b.Close()

	var r *stomp.Receipt
	if err := conn.Send(ctx, "/queue/jobs", []byte("after the restart"), stomp.WithReceipt(&r)); err != nil {
		panic(err)
	}
	if err := r.Wait(ctx); err != nil {
		panic(err)
	}
	m := <-sub.C()
	fmt.Println(string(m.Body))
	conn.Close() // returns once the listener has had every state
	close(states)
	for s := range states {
		fmt.Println(s)
	}
	// Output:
	// after the restart
	// connecting
	// connected
	// lost
	// connected
	// closed
}
