// Package compat holds the tests that set stompout beside go-stomp
// (github.com/go-stomp/stomp/v3): benchmarks of the frame codecs, and
// interoperability tests. It is a module of its own so that the main
// module never depends on go-stomp.
package compat
