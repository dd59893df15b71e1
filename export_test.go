package stomp

import "testing"

// Exported for the external tests (package stomp_test) only.

// InteropBroker is a real broker of the interop suite.
type InteropBroker = broker

// InteropBrokers returns the real brokers to test against, or skips the
// test when STOMP_INTEROP is not set (see interopBrokers).
func InteropBrokers(t *testing.T) []InteropBroker { return interopBrokers(t) }

// Name returns the broker's name: rabbitmq, rabbitmq-ws or activemq.
func (b broker) Name() string { return b.name }

// Addr returns the broker's address.
func (b broker) Addr() string { return b.addr }

// Rabbit reports RabbitMQ semantics.
func (b broker) Rabbit() bool { return b.rabbit }
