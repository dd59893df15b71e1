package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/internal/faultproxy"
)

// testCtx bounds one test's commands.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sendLines sends each line to dest with receipts and requires success.
func sendLines(t *testing.T, ctx context.Context, url, dest string, lines ...string) {
	t.Helper()
	code, stdout, stderr := runCmd(t, ctx, strings.Join(lines, "\n")+"\n", "send", "-q", "-u", url, "-d", dest, "-r")
	require.Equal(t, 0, code, "send stderr:\n%s", stderr)
	require.Equal(t, fmt.Sprintf("sent %d messages to %s, %d receipts\n", len(lines), dest, len(lines)), stdout)
}

// TestRecvAcrossBrokerRestart leaves recv running while the broker is
// closed and a new one started on the same address: recv says so on
// stderr, reconnects, subscribes again and prints the message sent after
// the restart.
func TestRecvAcrossBrokerRestart(t *testing.T) {
	ctx := testCtx(t)
	b1, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	addr := b1.Addr()
	url := b1.URL()

	recv := start(ctx, nil, "recv", "-u", url, "-d", "/queue/restart", "-n", "2")
	sendLines(t, ctx, url, "/queue/restart", "before")
	recv.stdout.waitContains(t, recv.done, "before\n", 1)

	require.NoError(t, b1.Close())
	recv.stderr.waitContains(t, recv.done, "connection to "+url+" lost", 1)
	b2, err := broker.Start(addr)
	require.NoError(t, err)
	defer b2.Close()
	recv.stderr.waitContains(t, recv.done, "connected to "+url, 2)
	sendLines(t, ctx, url, "/queue/restart", "after")

	require.Equal(t, 0, recv.wait(t), recv.stderr.String())
	assert.Equal(t, "before\nafter\n", recv.stdout.String())
	assert.Contains(t, recv.stderr.String(), "received 2 messages\n")
}

// TestRecvBacklog: recv -n 2000 on a 2,000-message backlog prints all
// 2,000, in every ack mode: far more than the subscription's channel
// holds, so the rest waits in the client's backlog or (client modes) at
// the broker, behind the prefetch.
func TestRecvBacklog(t *testing.T) {
	const n = 2000
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("m%04d %s", i, strings.Repeat("x", 100))
	}
	for _, ack := range []string{"default", "auto", "client", "client-individual"} {
		t.Run(ack, func(t *testing.T) {
			ctx := testCtx(t)
			dest := "/queue/backlog-" + ack
			sendLines(t, ctx, b.URL(), dest, lines...)
			args := []string{"recv", "-u", b.URL(), "-d", dest, "-n", fmt.Sprint(n)}
			if ack != "default" {
				args = append(args, "-a", ack)
			}
			code, stdout, stderr := runCmd(t, ctx, "", args...)
			require.Equal(t, 0, code, stderr)
			assert.Equal(t, strings.Join(lines, "\n")+"\n", stdout, "every message, once, in order")
			assert.Contains(t, stderr, fmt.Sprintf("received %d messages\n", n))
			assert.NotContains(t, stderr, "slow consumer")
		})
	}
}

// TestSendReconnects cuts every connection between two messages that
// send reads from stdin: it reconnects and sends the second. With -r the
// second line is written at once after the cut, so it may meet the dead
// transport: its receipt is then lost with it and send sends it again
// (and so it does with the first if its receipt was still on its way:
// at least once, so a duplicate is allowed, a loss is not). Without -r
// the test waits for send to say it has reconnected.
func TestSendReconnects(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	for _, receipts := range []bool{true, false} {
		t.Run(fmt.Sprintf("receipts=%v", receipts), func(t *testing.T) {
			ctx := testCtx(t)
			p, err := faultproxy.Start(b.Addr())
			require.NoError(t, err)
			defer p.Close()
			dest := fmt.Sprintf("/queue/send-reconnects-%v", receipts)
			recvCtx, stopRecv := context.WithCancel(ctx)
			defer stopRecv()
			recv := start(recvCtx, nil, "recv", "-u", b.URL(), "-d", dest)

			in, feed := io.Pipe()
			args := []string{"send", "-u", p.URL(), "-d", dest}
			if receipts {
				args = append(args, "-r")
			}
			send := start(ctx, in, args...)
			_, err = io.WriteString(feed, "one\n")
			require.NoError(t, err)
			recv.stdout.waitContains(t, recv.done, "one\n", 1)

			p.Cut()
			if !receipts {
				send.stderr.waitContains(t, send.done, "connected to "+p.URL(), 2)
			}
			_, err = io.WriteString(feed, "two\n")
			require.NoError(t, err)
			require.NoError(t, feed.Close())

			require.Equal(t, 0, send.wait(t), send.stderr.String())
			assert.Contains(t, send.stderr.String(), "connection to "+p.URL()+" lost")
			recv.stdout.waitContains(t, recv.done, "two\n", 1)
			stopRecv()
			require.Equal(t, 0, recv.wait(t), recv.stderr.String())

			got := strings.Fields(recv.stdout.String())
			if !receipts {
				assert.Equal(t, []string{"one", "two"}, got)
				assert.Equal(t, "sent 2 messages to "+dest+"\n", send.stdout.String())
				return
			}
			m := regexp.MustCompile(`^sent 2 messages to \S+, 2 receipts(?: \((\d) sent again after a lost connection\))?\n$`).FindStringSubmatch(send.stdout.String())
			require.NotNil(t, m, send.stdout.String())
			resent, _ := strconv.Atoi(m[1])
			assert.Subset(t, got, []string{"one", "two"})
			assert.LessOrEqual(t, len(got), 2+resent, "a duplicate only for a message sent again: %q", got)
			for _, line := range got {
				assert.Contains(t, []string{"one", "two"}, line)
			}
		})
	}
}

// TestNoReconnect: with --no-reconnect, a cut ends recv and send with an
// error (exit 1) instead of a reconnect.
func TestNoReconnect(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()

	t.Run("recv", func(t *testing.T) {
		ctx := testCtx(t)
		p, err := faultproxy.Start(b.Addr())
		require.NoError(t, err)
		defer p.Close()
		recv := start(ctx, nil, "recv", "--no-reconnect", "-u", p.URL(), "-d", "/queue/no-reconnect", "-r")
		recv.stderr.waitContains(t, recv.done, "subscribed to /queue/no-reconnect", 1)
		p.Cut()
		assert.Equal(t, 1, recv.wait(t))
		assert.Contains(t, recv.stderr.String(), "stomp recv: ")
		assert.Contains(t, recv.stderr.String(), "connection lost")
		assert.Equal(t, 1, strings.Count(recv.stderr.String(), "connected to "), "no reconnect:\n%s", recv.stderr)
		assert.Equal(t, 1, p.Accepted())
	})
	t.Run("send", func(t *testing.T) {
		ctx := testCtx(t)
		p, err := faultproxy.Start(b.Addr())
		require.NoError(t, err)
		defer p.Close()
		in, feed := io.Pipe()
		send := start(ctx, in, "send", "--no-reconnect", "-u", p.URL(), "-d", "/queue/no-reconnect", "-r")
		send.stderr.waitContains(t, send.done, "connected to ", 1)
		_, err = io.WriteString(feed, "one\n")
		require.NoError(t, err)
		p.Cut()
		// send ends without waiting for more input: the Conn has ended.
		assert.Equal(t, 1, send.wait(t))
		feed.Close()
		assert.Contains(t, send.stderr.String(), "stomp send: ")
		assert.Equal(t, 1, p.Accepted())
	})
}

// TestRecvStaleAck cuts the connection of a client-ack recv between a
// delivery and its ACK: the ACK is not sent (the message came on the lost
// transport), recv goes on, counts it, and prints the broker's
// redelivery on the new connection.
func TestRecvStaleAck(t *testing.T) {
	ctx := testCtx(t)
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	p, err := faultproxy.Start(b.Addr())
	require.NoError(t, err)
	defer p.Close()
	sendLines(t, ctx, b.URL(), "/queue/stale", "once")

	recv := newBg()
	acks := 0
	ctx = withPhaseHook(ctx, func(phase string) {
		if phase != "ack" {
			return
		}
		acks++
		if acks == 1 {
			p.Cut()
			recv.stderr.waitContains(t, recv.done, " lost", 1)
		}
	})
	recv.start(ctx, nil, "recv", "-u", p.URL(), "-d", "/queue/stale", "-a", "client-individual", "-n", "2")
	require.Equal(t, 0, recv.wait(t), recv.stderr.String())
	assert.Equal(t, "once\nonce\n", recv.stdout.String(), "the message, and its redelivery")
	assert.Contains(t, recv.stderr.String(), "received 2 messages, 1 acks not sent (messages from a lost connection: the broker redelivers them)\n")

	// The second ACK was sent: the queue holds nothing before a marker.
	sendLines(t, testCtx(t), b.URL(), "/queue/stale", "marker")
	code, stdout, stderr := runCmd(t, testCtx(t), "", "recv", "-u", b.URL(), "-d", "/queue/stale", "-a", "client", "-q", "-n", "1")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "marker\n", stdout)
}

// TestFailover: -u takes a failover list; the first address is down, recv
// and send use the second and say so.
func TestFailover(t *testing.T) {
	ctx := testCtx(t)
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	down, err := faultproxy.Start(b.Addr())
	require.NoError(t, err)
	down.Down()
	defer down.Close()
	list := down.URL() + "," + b.URL()

	code, stdout, stderr := runCmd(t, ctx, "", "send", "-u", list, "-d", "/queue/failover", "-m", "via the second", "-r")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "sent 1 messages to /queue/failover, 1 receipts\n", stdout)
	assert.Contains(t, stderr, "connected to "+b.URL()+"\n")

	code, stdout, stderr = runCmd(t, ctx, "", "recv", "-u", "failover:("+list+")", "-d", "/queue/failover", "-n", "1")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "via the second\n", stdout)
	assert.Contains(t, stderr, "connected to "+b.URL()+"\n")

	// -q: no state lines.
	code, _, stderr = runCmd(t, ctx, "", "send", "-q", "-u", list, "-d", "/queue/failover", "-m", "x")
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr)
}

// TestInterruptDuringOutage interrupts recv and send while the broker is
// down and they are reconnecting (send blocked in a Send that waits for
// the next transport): both exit 0 at once, with nothing to disconnect
// from.
func TestInterruptDuringOutage(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	for _, cmd := range []string{"recv", "send"} {
		t.Run(cmd, func(t *testing.T) {
			p, err := faultproxy.Start(b.Addr())
			require.NoError(t, err)
			defer p.Close()
			ctx, interrupt := context.WithCancel(testCtx(t))
			defer interrupt()
			sending := make(chan struct{}, 1)
			ctx = withPhaseHook(ctx, func(phase string) {
				if phase == "send" {
					sending <- struct{}{}
				}
			})
			in, feed := io.Pipe()
			defer feed.Close()
			c := start(ctx, in, cmd, "-u", p.URL(), "-d", "/queue/outage")
			c.stderr.waitContains(t, c.done, "connected to ", 1)
			if cmd == "recv" {
				c.stderr.waitContains(t, c.done, "subscribed to ", 1)
			}
			p.Down()
			c.stderr.waitContains(t, c.done, "reconnecting: attempt 1 failed", 1)
			if cmd == "send" {
				// The Send waits for the next transport, which never comes.
				_, err := io.WriteString(feed, "during the outage\n")
				require.NoError(t, err)
				<-sending
			}
			interrupt()
			assert.Equal(t, 0, c.wait(t), c.stderr.String())
			assert.NotContains(t, c.stderr.String(), "stomp "+cmd+":")
			in.Close()
		})
	}
}

// TestRecvAcrossServeRestart is TestRecvAcrossBrokerRestart with the
// command's own broker: "stomp serve" stopped (as by Ctrl-C) and started
// again on the same address.
func TestRecvAcrossServeRestart(t *testing.T) {
	ctx := testCtx(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	url := "tcp://" + addr
	serve := func() (*bg, context.CancelFunc) {
		sctx, stop := context.WithCancel(ctx)
		s := start(sctx, nil, "serve", "--tcp", addr, "--ws", "")
		s.stdout.waitContains(t, s.done, "serving STOMP on "+url, 1)
		return s, stop
	}
	s1, stop1 := serve()
	recv := start(ctx, nil, "recv", "-u", url, "-d", "/queue/serve-restart", "-n", "2")
	sendLines(t, ctx, url, "/queue/serve-restart", "before")
	recv.stdout.waitContains(t, recv.done, "before\n", 1)

	stop1()
	require.Equal(t, 0, s1.wait(t), s1.stderr.String())
	recv.stderr.waitContains(t, recv.done, "connection to "+url+" lost", 1)
	s2, stop2 := serve()
	defer func() {
		stop2()
		assert.Equal(t, 0, s2.wait(t), s2.stderr.String())
	}()
	sendLines(t, ctx, url, "/queue/serve-restart", "after")

	require.Equal(t, 0, recv.wait(t), recv.stderr.String())
	assert.Equal(t, "before\nafter\n", recv.stdout.String())
}

// TestRecvCountLeavesTheRest: recv -n N without -a acknowledges what it
// prints (client mode, prefetch N), so that the messages past the N-th stay
// in the queue for the next consumer instead of being consumed and
// dropped at exit, as auto mode would.
func TestRecvCountLeavesTheRest(t *testing.T) {
	ctx := testCtx(t)
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	sendLines(t, ctx, b.URL(), "/queue/count", "m0", "m1", "m2", "m3", "m4")

	code, stdout, stderr := runCmd(t, ctx, "", "recv", "-u", b.URL(), "-d", "/queue/count", "-n", "2")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "m0\nm1\n", stdout)
	assert.Contains(t, stderr, "ack client")

	code, stdout, stderr = runCmd(t, ctx, "", "recv", "-u", b.URL(), "-d", "/queue/count", "-n", "3", "-a", "auto")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "m2\nm3\nm4\n", stdout)
	assert.Contains(t, stderr, "ack auto")
}
