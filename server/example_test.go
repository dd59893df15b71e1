package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/stompout/stomp/server"
)

// logins accepts one user and prints what is sent; NopHandler does the rest.
type logins struct {
	server.NopHandler
}

func (logins) Connect(ctx context.Context, s *server.Session, req *server.ConnectRequest) error {
	if req.Login != "admin" || req.Passcode != "secret" {
		return &server.ApplicationError{Message: "access refused"}
	}
	req.SessionID = "session-1"
	return nil
}

func (logins) Send(ctx context.Context, s *server.Session, m *server.Message) error {
	fmt.Printf("%s sent %q to %s\n", s.Login(), m.Body, m.Destination)
	return nil
}

// A custom Handler, served over an in-memory pipe by a scripted client.
func ExampleNew() {
	srv, err := server.New(logins{}, server.WithHeartBeat(0, 0), server.WithName("example/1.0"))
	if err != nil {
		fmt.Println(err)
		return
	}
	client, conn := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), conn) }()

	r := bufio.NewReader(client)
	readFrame := func() string {
		s, _ := r.ReadString(0)
		return strings.Join(strings.Fields(strings.TrimSuffix(s, "\x00")), " ")
	}
	io.WriteString(client, "CONNECT\naccept-version:1.2\nhost:/\nlogin:admin\npasscode:secret\n\n\x00")
	fmt.Println(readFrame())
	io.WriteString(client, "SEND\ndestination:/queue/a\nreceipt:1\n\nhi\x00")
	fmt.Println(readFrame())
	io.WriteString(client, "DISCONNECT\nreceipt:2\n\n\x00")
	fmt.Println(readFrame())
	client.Close()
	fmt.Println(<-done)
	// Output:
	// CONNECTED version:1.2 heart-beat:0,0 session:session-1 server:example/1.0
	// admin sent "hi" to /queue/a
	// RECEIPT receipt-id:1
	// RECEIPT receipt-id:2
	// <nil>
}
