package broker

import (
	"cmp"
	"slices"
)

// counters are the broker's running totals. Guarded by Broker.mu.
type counters struct {
	in, out, acked, nacked, redelivered, refused, slow, undeliverable, deadLettered uint64
}

// Stats is a snapshot of the broker.
type Stats struct {
	Sessions int          // connected sessions
	Queues   []QueueStats // by name
	Topics   []TopicStats // by name, those with subscribers

	// Bytes is what the broker holds of messages (bodies and headers): in
	// queues, in topic subscribers' backlogs (a message in several counts
	// once) and in SENDs waiting for room in a queue. WithMemoryLimit
	// bounds it.
	Bytes int64
	// DeferredSends counts the SENDs whose completion (RECEIPT) the broker
	// holds back: waiting for room in a queue, for a subscriber's backlog
	// to drain, or for memory.
	DeferredSends int

	MessagesIn    uint64 // messages accepted from SEND (queues and topics)
	MessagesOut   uint64 // MESSAGE frames handed to sessions (redeliveries included)
	Acked         uint64 // messages acknowledged (auto mode: written out)
	Nacked        uint64 // messages NACKed
	Redelivered   uint64 // deliveries marked redelivered
	Refused       uint64 // SENDs refused because a queue stayed full past WithQueueFullTimeout
	SlowConsumers uint64 // sessions cut off as slow consumers (a backlog and no progress)
	Undeliverable uint64 // messages a subscriber's version could not encode (topic: skipped for it; queue: dropped when no consumer could; logged)
	DeadLettered  uint64 // queue messages moved to a dead-letter queue (WithMaxRedeliveries)
}

// QueueStats describes one queue.
type QueueStats struct {
	Name      string
	Depth     int   // messages waiting for a consumer
	Unacked   int   // messages delivered and not yet acknowledged (auto mode: not yet written), or NACKed and waiting for their redelivery delay
	Bytes     int64 // bytes of the Depth and Unacked messages
	Waiting   int   // SENDs waiting for room (the queue is full)
	Consumers int
}

// TopicStats describes one topic.
type TopicStats struct {
	Name        string
	Subscribers int
	// Backlog and BacklogBytes sum the subscribers' backlogs: messages
	// they could not take yet (a message in several backlogs counts in
	// each).
	Backlog      int
	BacklogBytes int64
}

func (q *queue) stats() QueueStats {
	return QueueStats{Name: q.name, Depth: q.depth(), Unacked: q.held - q.depth(), Bytes: q.bytes, Waiting: len(q.waiting), Consumers: len(q.consumers)}
}

// Stats returns a snapshot of the broker's queues, topics, sessions and
// counters. It takes the broker's lock, walks every queue, topic
// subscriber and session, and allocates the slices.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{
		Sessions:      len(b.sessions),
		Bytes:         b.bytes,
		DeferredSends: b.deferred,
		MessagesIn:    b.st.in,
		MessagesOut:   b.st.out,
		Acked:         b.st.acked,
		Nacked:        b.st.nacked,
		Redelivered:   b.st.redelivered,
		Refused:       b.st.refused,
		SlowConsumers: b.st.slow,
		Undeliverable: b.st.undeliverable,
		DeadLettered:  b.st.deadLettered,
	}
	for _, q := range b.queues {
		s.Queues = append(s.Queues, q.stats())
	}
	for _, t := range b.topics {
		ts := TopicStats{Name: t.name, Subscribers: len(t.subs)}
		for _, c := range t.subs {
			ts.Backlog += c.blen()
			ts.BacklogBytes += c.bbytes
		}
		s.Topics = append(s.Topics, ts)
	}
	slices.SortFunc(s.Queues, func(a, b QueueStats) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Topics, func(a, b TopicStats) int { return cmp.Compare(a.Name, b.Name) })
	return s
}

// Queue returns the stats of the named queue, and false if the broker has
// no such queue (it holds nothing and has no consumers).
func (b *Broker) Queue(name string) (QueueStats, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[name]
	if q == nil {
		return QueueStats{Name: name}, false
	}
	return q.stats(), true
}
