module github.com/stompout/stomp

go 1.25
