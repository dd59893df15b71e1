package reconnect_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/stompout/stomp/reconnect"
)

// Without jitter the delays are plain to see: doubling from Initial, capped
// at Max, and given up on after MaxAttempts rounds.
func ExampleExponential() {
	p, err := reconnect.Exponential(
		reconnect.Initial(time.Second),
		reconnect.Max(10*time.Second),
		reconnect.Jitter(0),
		reconnect.MaxAttempts(6),
	)
	if err != nil {
		panic(err)
	}
	fmt.Println(p)
	s := p.Start()
	for {
		d, ok := s.Next()
		if !ok {
			break
		}
		fmt.Println("round", s.Attempts(), "failed: wait", d)
	}
	fmt.Println(s.Err())

	_, err = reconnect.Exponential(reconnect.Jitter(2))
	fmt.Println(err)
	// Output:
	// exponential(initial 1s, multiplier 2, max 10s, jitter 0, max attempts 6)
	// round 1 failed: wait 1s
	// round 2 failed: wait 2s
	// round 3 failed: wait 4s
	// round 4 failed: wait 8s
	// round 5 failed: wait 10s
	// reconnect: gave up after 6 rounds (MaxAttempts 6)
	// reconnect: Jitter must be between 0 and 1, not 2
}

// A reconnect loop over a failover list: every address once per round,
// then a delay from the schedule.
func ExampleRotation() {
	p, _ := reconnect.FromBackOff(func() backoff.BackOff {
		return backoff.WithMaxRetries(backoff.NewConstantBackOff(time.Millisecond), 2)
	})
	rot := reconnect.NewRotation([]string{"tcp://a:61613", "tcp://b:61613"}, false)
	dial := func(addr string) error { return fmt.Errorf("%s is down", addr) }

	sched := p.Start()
	for {
		for _, addr := range rot.Round() {
			fmt.Println("dial", addr, "->", dial(addr))
		}
		d, ok := sched.Next()
		if !ok {
			fmt.Println(sched.Err(), errors.Is(sched.Err(), reconnect.ErrGaveUp))
			return
		}
		if err := reconnect.Sleep(context.Background(), d); err != nil {
			return
		}
	}
	// Output:
	// dial tcp://a:61613 -> tcp://a:61613 is down
	// dial tcp://b:61613 -> tcp://b:61613 is down
	// dial tcp://a:61613 -> tcp://a:61613 is down
	// dial tcp://b:61613 -> tcp://b:61613 is down
	// dial tcp://a:61613 -> tcp://a:61613 is down
	// dial tcp://b:61613 -> tcp://b:61613 is down
	// reconnect: gave up after 3 rounds (the backoff said stop) true
}
