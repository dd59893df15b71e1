package broker

import (
	"cmp"
	"slices"
)

// counters are the broker's running totals. Guarded by Broker.mu.
type counters struct {
	in, out, acked, nacked, redelivered, refused, slow, undeliverable uint64
}

// Stats is a snapshot of the broker.
type Stats struct {
	Sessions int          // connected sessions
	Queues   []QueueStats // by name
	Topics   []TopicStats // by name, those with subscribers

	MessagesIn    uint64 // messages accepted from SEND (queues and topics)
	MessagesOut   uint64 // MESSAGE frames handed to sessions (redeliveries included)
	Acked         uint64 // messages acknowledged (auto mode: written out)
	Nacked        uint64 // messages NACKed
	Redelivered   uint64 // deliveries marked redelivered
	Refused       uint64 // SENDs refused because a queue was full
	SlowConsumers uint64 // topic subscribers disconnected as slow consumers
	Undeliverable uint64 // messages a subscriber's version could not encode (topic: skipped for it; queue: dropped when no consumer could; logged)
}

// QueueStats describes one queue.
type QueueStats struct {
	Name      string
	Depth     int // messages waiting for a consumer
	Unacked   int // messages delivered and not yet acknowledged (auto mode: not yet written)
	Consumers int
}

// TopicStats describes one topic.
type TopicStats struct {
	Name        string
	Subscribers int
}

// Stats returns a snapshot of the broker's queues, topics, sessions and
// counters. It takes the broker's lock and allocates the slices.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{
		Sessions:      len(b.sessions),
		MessagesIn:    b.st.in,
		MessagesOut:   b.st.out,
		Acked:         b.st.acked,
		Nacked:        b.st.nacked,
		Redelivered:   b.st.redelivered,
		Refused:       b.st.refused,
		SlowConsumers: b.st.slow,
		Undeliverable: b.st.undeliverable,
	}
	for _, q := range b.queues {
		s.Queues = append(s.Queues, QueueStats{Name: q.name, Depth: q.depth(), Unacked: q.held - q.depth(), Consumers: len(q.consumers)})
	}
	for _, t := range b.topics {
		s.Topics = append(s.Topics, TopicStats{Name: t.name, Subscribers: len(t.subs)})
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
	return QueueStats{Name: q.name, Depth: q.depth(), Unacked: q.held - q.depth(), Consumers: len(q.consumers)}, true
}
