package compat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/stompout/stomp/broker"
)

// The burst of issue 9, with go-stomp's client on both ends: one producer
// connection sends 100,000 32-byte messages to a topic as fast as it can,
// one consumer connection reads them. The embedded broker used to send the
// consumer ERROR "slow consumer" after a few thousand; now it holds the
// producer back instead, and delivers all of them.
func TestGoStompTopicBurst(t *testing.T) {
	const n = 100000
	b, err := broker.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var peak int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			peak = max(peak, b.Stats().Bytes)
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	ours, err := burst(b.Addr(), n)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatalf("stompout broker: %v", err)
	}
	st := b.Stats()
	if st.SlowConsumers != 0 || st.Bytes != 0 {
		t.Fatalf("stats %+v", st)
	}

	t.Logf("%d messages of 32 bytes, go-stomp client to go-stomp client through a topic of the stompout broker: %v (%.0f msg/s), peak %d bytes held, %d slow consumers",
		n, ours.Round(time.Millisecond), n/ours.Seconds(), peak, st.SlowConsumers)
}

// burst sends n messages through /topic/burst on the server at addr and
// returns how long it took until the consumer had them all, in order.
func burst(addr string, n int) (time.Duration, error) {
	opts := []func(*gostomp.Conn) error{gostomp.ConnOpt.HeartBeat(0, 0)}
	cons, err := gostomp.Dial("tcp", addr, opts...)
	if err != nil {
		return 0, err
	}
	defer cons.MustDisconnect()
	sub, err := cons.Subscribe("/topic/burst", gostomp.AckAuto)
	if err != nil {
		return 0, err
	}
	prod, err := gostomp.Dial("tcp", addr, opts...)
	if err != nil {
		return 0, err
	}
	defer prod.MustDisconnect()
	// The SUBSCRIBE reaches the server before the first SEND: go-stomp's
	// Subscribe does not wait for a receipt.
	if err := cons.Send("/topic/sync", "text/plain", nil, gostomp.SendOpt.Receipt); err != nil {
		return 0, err
	}
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		for i := range n {
			select {
			case m, ok := <-sub.C:
				if !ok {
					got <- fmt.Errorf("subscription closed after %d messages", i)
					return
				}
				if m.Err != nil {
					got <- fmt.Errorf("after %d messages: %w", i, m.Err)
					return
				}
				if k := binary.BigEndian.Uint64(m.Body); k != uint64(i) {
					got <- fmt.Errorf("message %d: got %d", i, k)
					return
				}
			case <-time.After(30 * time.Second):
				got <- fmt.Errorf("no message %d", i)
				return
			}
		}
		got <- nil
	}()
	for i := range n {
		body := make([]byte, 32) // go-stomp keeps it until its writer has written it
		binary.BigEndian.PutUint64(body, uint64(i))
		if err := prod.Send("/topic/burst", "text/plain", body); err != nil {
			return 0, fmt.Errorf("send %d: %w", i, err)
		}
	}
	if err := <-got; err != nil {
		return 0, err
	}
	took := time.Since(start)
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, &gostomp.ErrUnsubscribeReceiptTimeout) {
		return took, err
	}
	return took, nil
}
