package broker_test

import (
	"context"
	"fmt"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// A broker on an ephemeral port, and a client that sends itself a message.
func Example() {
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer b.Close()

	ctx := context.Background()
	c, err := stomp.Dial(ctx, b.Addr())
	if err != nil {
		panic(err)
	}
	defer c.Disconnect(ctx)
	sub, err := c.Subscribe(ctx, "/queue/greetings", stomp.WithAck(stomp.AckClientIndividual))
	if err != nil {
		panic(err)
	}
	if err := c.Send(ctx, "/queue/greetings", []byte("hello")); err != nil {
		panic(err)
	}
	m := <-sub.C()
	fmt.Println(string(m.Body))
	m.Ack(ctx)
	// Output: hello
}
