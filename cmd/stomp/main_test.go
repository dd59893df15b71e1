package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stompout/stomp/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runCmd runs the command in-process and returns its exit code and output.
func runCmd(t *testing.T, ctx context.Context, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	code, _, stderr := runCmd(t, t.Context(), "")
	assert.Equal(t, 2, code)
	for _, c := range commands {
		assert.Contains(t, stderr, c.name)
	}
	code, _, stderr = runCmd(t, t.Context(), "", "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)
	for _, c := range commands {
		code, _, stderr = runCmd(t, t.Context(), "", c.name, "--help")
		assert.Equal(t, 0, code, c.name)
		assert.Contains(t, stderr, "Usage: stomp "+c.name, c.name)
	}
	code, _, stderr = runCmd(t, t.Context(), "", "send", "-u", "tcp://127.0.0.1:1")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-d is required")
	code, _, stderr = runCmd(t, t.Context(), "", "recv", "-d", "/queue/a", "-a", "sometimes")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "bad -a")
}

func TestDemo(t *testing.T) {
	code, stdout, stderr := runCmd(t, t.Context(), "", "demo", "-n", "300", "-w", "3")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Contains(t, stdout, "producer sent 300 orders")
	assert.Contains(t, stdout, "acked    300 messages")
	assert.Contains(t, stdout, "committed transaction delivered")
	assert.Contains(t, stdout, "demo done")
}

func TestBenchEmbedded(t *testing.T) {
	code, stdout, stderr := runCmd(t, t.Context(), "", "bench", "-n", "500", "-s", "64")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.Regexp(t, `send +500 x 64 B`, stdout)
	assert.Regexp(t, `receive +500 in`, stdout)
}

// sendRecv sends three messages with receipts to url and receives them
// with recv in the given ack mode, with receipts.
func sendRecv(t *testing.T, url, ack string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dest := fmt.Sprintf("/queue/stompout-cmd-%d", time.Now().UnixNano())
	args := append([]string{"send", "-u", url, "-d", dest, "-r", "-H", "x-test:a:b"}, extra...)
	code, stdout, stderr := runCmd(t, ctx, "first line\nsecond line\n", args...)
	require.Equal(t, 0, code, "send stderr:\n%s", stderr)
	assert.Equal(t, "sent 2 messages to "+dest+", 2 receipts\n", stdout)

	args = append([]string{"send", "-u", url, "-d", dest, "-m", `{"n":3}`, "--json"}, extra...)
	code, _, stderr = runCmd(t, ctx, "", args...)
	require.Equal(t, 0, code, "send --json stderr:\n%s", stderr)

	args = append([]string{"recv", "-u", url, "-d", dest, "-a", ack, "-r", "-n", "3", "--headers"}, extra...)
	code, stdout, stderr = runCmd(t, ctx, "", args...)
	require.Equal(t, 0, code, "recv stderr:\n%s", stderr)
	assert.Contains(t, stdout, "x-test:a:b\n")
	assert.Contains(t, stdout, "content-type:application/json\n")
	bodies := regexp.MustCompile(`(?m)^(first line|second line|\{"n":3\})$`).FindAllString(stdout, -1)
	assert.Equal(t, []string{"first line", "second line", `{"n":3}`}, bodies)
	assert.Contains(t, stderr, "received 3 messages")
}

func TestSendRecvEmbedded(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	for _, ack := range []string{"auto", "client", "client-individual"} {
		t.Run(ack, func(t *testing.T) { sendRecv(t, b.URL(), ack) })
	}
	t.Run("1.0", func(t *testing.T) { sendRecv(t, b.URL(), "client", "-version", "1.0") })
	t.Run("1.1", func(t *testing.T) { sendRecv(t, b.URL(), "client", "-version", "1.1") })
}

// TestServe runs "stomp serve" on ephemeral ports and plays the seed's
// example against it over TCP and WebSocket: produce with a message,
// consume with an ack mode and receipts.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	users := dir + "/users"
	require.NoError(t, os.WriteFile(users, []byte("# demo users\nalice:secret\n"), 0o600))

	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	var wg sync.WaitGroup
	var code int
	var stderr bytes.Buffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = run(ctx, []string{"serve", "--tcp", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--users", users}, strings.NewReader(""), pw, &stderr)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var tcpURL, wsURL string
	for (tcpURL == "" || wsURL == "") && sc.Scan() {
		line := sc.Text()
		if u, ok := strings.CutPrefix(line, "serving STOMP on "); ok {
			if strings.HasPrefix(u, "ws://") {
				wsURL = u
			} else {
				tcpURL = u
			}
		}
	}
	go io.Copy(io.Discard, pr)
	require.NotEmpty(t, tcpURL)
	require.NotEmpty(t, wsURL)

	t.Run("tcp", func(t *testing.T) { sendRecv(t, tcpURL, "client", "-login", "alice", "-passcode", "secret") })
	t.Run("ws", func(t *testing.T) {
		sendRecv(t, strings.Replace(wsURL, "ws://", "ws://alice:secret@", 1), "client-individual")
	})
	t.Run("refused", func(t *testing.T) {
		code, _, stderr := runCmd(t, t.Context(), "", "send", "-u", tcpURL, "-d", "/queue/x", "-m", "hi", "-login", "alice", "-passcode", "wrong")
		assert.Equal(t, 1, code)
		assert.NotContains(t, stderr, "wrong", "the passcode must not be echoed")
	})

	cancel()
	wg.Wait()
	assert.Equal(t, 0, code, stderr.String())
}

// TestRabbitMQ runs send and recv against RabbitMQ when the interop suite
// is on (STOMP_INTEROP=1, as the README's test command and CI set it).
func TestRabbitMQ(t *testing.T) {
	if os.Getenv("STOMP_INTEROP") == "" {
		t.Skip("STOMP_INTEROP not set: run ./scripts/test.sh for the interop suite")
	}
	addr := os.Getenv("STOMP_RABBITMQ_ADDR")
	if addr == "" {
		addr = "127.0.0.1:61613"
	}
	ws := os.Getenv("STOMP_RABBITMQ_WS")
	if ws == "" {
		ws = "ws://127.0.0.1:15674/ws"
	}
	t.Run("tcp", func(t *testing.T) { sendRecv(t, "tcp://guest:guest@"+addr, "client") })
	t.Run("ws", func(t *testing.T) {
		sendRecv(t, strings.Replace(ws, "ws://", "ws://guest:guest@", 1), "client-individual")
	})
}

// TestActiveMQ runs send and recv against ActiveMQ Classic when the
// interop suite is on.
func TestActiveMQ(t *testing.T) {
	if os.Getenv("STOMP_INTEROP") == "" {
		t.Skip("STOMP_INTEROP not set: run ./scripts/test.sh for the interop suite")
	}
	addr := os.Getenv("STOMP_ACTIVEMQ_ADDR")
	if addr == "" {
		addr = "127.0.0.1:61614"
	}
	sendRecv(t, "tcp://"+addr, "client")
}
