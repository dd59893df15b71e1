module github.com/stompout/stomp/compat

go 1.26.0

require (
	github.com/go-stomp/stomp/v3 v3.1.5
	github.com/stompout/stomp v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	golang.org/x/sync v0.25.0 // indirect
)

replace github.com/stompout/stomp => ../
