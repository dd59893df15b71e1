package stomp_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/stompout/stomp"
	"github.com/stompout/stomp/broker"
)

// Request sends a message with a reply-to header and a correlation-id and
// waits for the reply; the answering side is a subscriber that replies to
// each request with Conn.Reply (here a Pool of handlers on its own
// connection). Against RabbitMQ the replies use its /temp-queue/; elsewhere
// the requester's Conn subscribes to a private reply queue of its own.
func ExampleConn_Request() {
	ctx := context.Background()
	b, _ := broker.Start("127.0.0.1:0")
	defer b.Close()

	// The service: upper-cases what it is sent.
	service, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer service.Disconnect(ctx)
	sub, _ := service.Subscribe(ctx, "/queue/upper", stomp.WithAck(stomp.AckClientIndividual))
	pool, _ := sub.Serve(ctx, 4, func(ctx context.Context, m stomp.Message) error {
		return service.Reply(ctx, m, []byte(strings.ToUpper(string(m.Body))))
	})
	defer pool.Stop(ctx)

	// The client.
	conn, err := stomp.Dial(ctx, b.URL())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Disconnect(ctx)
	for _, word := range []string{"hello", "stomp"} {
		reply, err := conn.Request(ctx, "/queue/upper", []byte(word))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(string(reply.Body))
	}
	// Output:
	// HELLO
	// STOMP
}
