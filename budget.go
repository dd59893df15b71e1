package stomp

import "sync/atomic"

// budget bounds, in bytes, the messages of a Conn that wait in
// subscription backlogs for the application. The reader adds, pumps
// release, and the reader waits while it is over the limit.
type budget struct {
	limit int64
	used  atomic.Int64
	room  chan struct{} // capacity 1: signalled when used drops back under limit
}

func (b *budget) add(n int64) { b.used.Add(n) }

// release gives n bytes back. Only the release that brings used back
// under the limit signals room: the reader, the only one that adds, waits
// only once it has seen used over the limit, and then that release comes
// after its look (a signal left over from an earlier wait only makes it
// look again). The others, every message's in the normal run, touch no
// channel.
func (b *budget) release(n int64) {
	if v := b.used.Add(-n); v <= b.limit && v+n > b.limit {
		select {
		case b.room <- struct{}{}:
		default:
		}
	}
}

// full reports whether the reader must wait.
func (b *budget) full() bool { return b.used.Load() > b.limit }

// wait waits until the budget has room, or done is closed (false).
func (b *budget) wait(done <-chan struct{}) bool {
	for b.full() {
		select {
		case <-b.room:
		case <-done:
			return false
		}
	}
	return true
}

// messageOverhead is what a Message costs beyond its body and header
// text: the struct, the header's slice, the channel slot.
const messageOverhead = 256

// size estimates the memory m holds, for the receive budget.
func (m *Message) size() int64 {
	n := int64(len(m.Body)) + messageOverhead
	for k, v := range m.Header.All() {
		n += int64(len(k) + len(v) + 32)
	}
	return n
}
