// Package heartbeat implements STOMP 1.1/1.2 heart-beating: parsing and
// formatting the heart-beat header, negotiating the intervals in force, and
// the timing rules for both directions. It starts no goroutines of its own;
// a [Monitor] uses [time.AfterFunc] and a [Pacer] a [time.Timer].
//
// A connection uses it like this:
//
//	local := heartbeat.Settings{Send: 10 * time.Second, Recv: 10 * time.Second}
//	// send local.String() in CONNECT (or CONNECTED), read the peer's header:
//	remote, err := heartbeat.Parse(connected.Header.Get("heart-beat"))
//	send, recv := heartbeat.Negotiate(local, remote)
//	mon := heartbeat.NewMonitor(recv, 0) // reader goroutine: mon.Touch() on every read
//	pace := heartbeat.NewPacer(send, 0)  // writer goroutine: select on pace.C(), pace.Due(), pace.Wrote()
//	defer mon.Stop()
//	defer pace.Stop()
//	// <-mon.Dead() means the peer went silent: close the connection with mon.Err().
package heartbeat
