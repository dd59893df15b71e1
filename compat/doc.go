// Package compat holds the tests that set stompout beside go-stomp
// (github.com/go-stomp/stomp/v3): benchmarks of the frame codecs
// (BenchmarkFrame*), end-to-end benchmarks of both clients against both
// servers and against RabbitMQ and ActiveMQ (BenchmarkE2E, with TestE2E
// running every scenario once in plain `go test`), idle memory per
// connection, the broker's flow control under go-stomp's client, and
// interoperability tests. It is a module of its own so that the main
// module never depends on go-stomp. BENCHMARKS.md at the top of the
// repository has the commands and the figures.
package compat
