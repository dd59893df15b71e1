// Package reconnect says whether and when a lost connection is dialled
// again: a [Policy] (exponential backoff with jitter by default, built on
// github.com/cenkalti/backoff/v4, or any backoff.BackOff, or never), the
// [Schedule] of delays it gives for one outage, and the [Rotation] of
// failover addresses tried in each round. A round is one try of every
// address; the schedule gives the delay between rounds. The package starts
// no goroutines; [Sleep] waits on a [time.Timer], so everything here runs
// on fake time inside a testing/synctest bubble.
//
// A client's reconnect loop uses it like this:
//
//	sched := policy.Start() // when the connection is lost
//	for {
//		for _, addr := range rot.Round() {
//			if c, err := dial(ctx, addr); err == nil {
//				return c, nil
//			}
//		}
//		d, ok := sched.Next() // the round failed
//		if !ok {
//			return nil, sched.Err() // ErrGaveUp: max attempts, max elapsed or backoff.Stop
//		}
//		if err := reconnect.Sleep(ctx, d); err != nil {
//			return nil, err
//		}
//	}
package reconnect
