package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stompout/stomp/broker"
)

// benchJSONRun runs stomp bench --json with args and decodes its output.
func benchJSONRun(t *testing.T, args ...string) benchJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	code, stdout, stderr := runCmd(t, ctx, "", append([]string{"bench", "--json"}, args...)...)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.NotContains(t, stdout, "\r", "no progress line when stdout is not a terminal")
	var res benchJSON
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&res), stdout)
	assert.False(t, dec.More(), "one JSON object: %s", stdout)
	// The keys the issue promises, by name.
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(stdout), &raw))
	for _, k := range []string{"sent", "received", "seconds", "msgs_per_sec", "p50_ms", "p99_ms"} {
		assert.Contains(t, raw, k)
	}
	return res
}

func TestBenchJSON(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		sent     int64
		received int64
	}{
		{"queue", []string{"-n", "1000", "-size", "32"}, 1000, 1000},
		{"queue, competing consumers", []string{"-n", "999", "-producers", "2", "-consumers", "3"}, 999, 999},
		{"topic fan-out", []string{"-n", "500", "-producers", "2", "-consumers", "3", "-d", "/topic/bench-test"}, 500, 1500},
		{"client-individual", []string{"-n", "600", "-a", "client-individual", "-prefetch", "10"}, 600, 600},
		{"client", []string{"-n", "600", "-a", "client", "-consumers", "2"}, 600, 600},
		{"receipts", []string{"-n", "300", "-r", "-producers", "3"}, 300, 300},
		{"empty bodies", []string{"-n", "200", "-size", "0"}, 200, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := benchJSONRun(t, tt.args...)
			assert.Equal(t, tt.sent, res.Sent)
			assert.Equal(t, tt.received, res.Expected)
			assert.Equal(t, tt.received, res.Received)
			assert.Greater(t, res.Seconds, 0.0)
			assert.InDelta(t, float64(res.Received)/res.Seconds, res.MsgsPerSec, 1e-6*res.MsgsPerSec)
			assert.True(t, res.Embedded)
			assert.Regexp(t, `^tcp://127\.0\.0\.1:\d+$`, res.URL)
			assert.Equal(t, "1.2", res.Version)
			assert.Greater(t, res.P50ms, 0.0)
			assert.LessOrEqual(t, res.P50ms, res.P90ms)
			assert.LessOrEqual(t, res.P90ms, res.P99ms)
			assert.LessOrEqual(t, res.P99ms, res.MaxMs)
		})
	}
}

// TestBenchRate offers a fixed load: the run lasts about n/rate, however
// fast the broker is.
func TestBenchRate(t *testing.T) {
	res := benchJSONRun(t, "-n", "200", "-rate", "1000", "-producers", "2")
	assert.Equal(t, int64(200), res.Received)
	assert.GreaterOrEqual(t, res.SendSeconds, 0.19)
	assert.Less(t, res.MsgsPerSec, 1100.0)
	assert.Equal(t, 1000.0, res.Rate)
}

func TestBenchDuration(t *testing.T) {
	res := benchJSONRun(t, "-duration", "300ms", "-rate", "2000")
	assert.GreaterOrEqual(t, res.SendSeconds, 0.3)
	assert.Less(t, res.SendSeconds, 5.0)
	assert.Greater(t, res.Sent, int64(100))
	assert.LessOrEqual(t, res.Sent, int64(601))
	assert.Equal(t, res.Sent, res.Received)
}

// TestBenchURL runs against a broker given with -u, with credentials in
// the URL (not echoed back).
func TestBenchURL(t *testing.T) {
	b, err := broker.Start("127.0.0.1:0", broker.WithUsers(map[string]string{"alice": "secret"}))
	require.NoError(t, err)
	defer b.Close()
	u := strings.Replace(b.URL(), "tcp://", "tcp://alice:secret@", 1)
	res := benchJSONRun(t, "-u", u, "-n", "300", "-d", "/queue/bench-url")
	assert.Equal(t, int64(300), res.Received)
	assert.False(t, res.Embedded)
	assert.NotContains(t, res.URL, "secret")
	assert.Equal(t, "/queue/bench-url", res.Destination)
}

// TestBenchSummary checks the text summary: throughput lines and the
// latency histogram.
func TestBenchSummary(t *testing.T) {
	code, stdout, stderr := runCmd(t, t.Context(), "", "bench", "-n", "400", "-size", "16", "-consumers", "2", "-d", "/topic/summary")
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	assert.NotContains(t, stdout, "\r")
	assert.Regexp(t, `(?m)^broker +tcp://127\.0\.0\.1:\d+ \(embedded\), STOMP 1\.2$`, stdout)
	assert.Regexp(t, `(?m)^work +1 producer to 2 consumers, /topic/summary; ack auto, no receipts, as fast as they go$`, stdout)
	assert.Regexp(t, `(?m)^send +400 x 16 B in .*: \d+ msg/s, [\d.]+ MB/s$`, stdout)
	assert.Regexp(t, `(?m)^receive +800 in .* end to end: \d+ msg/s$`, stdout)
	assert.Regexp(t, `(?m)^latency +send to receive, 800 messages: min [\d.]+ ms, mean [\d.]+ ms$`, stdout)
	for _, p := range []string{"p50", "p90", "p99", "max"} {
		assert.Regexp(t, `(?m)^  `+p+` +[\d.]+ ms  #+$`, stdout)
	}
	assert.Regexp(t, `(?m)^  max +[\d.]+ ms  #{40}$`, stdout, "max has the longest bar")
	assert.Contains(t, stdout, "distribution:")
	rows := regexp.MustCompile(`(?m)^  < \S+ +(\d+) +[\d.]+%`).FindAllStringSubmatch(stdout, -1)
	require.NotEmpty(t, rows)
	total := 0
	for _, r := range rows {
		n := 0
		for _, c := range r[1] {
			n = n*10 + int(c-'0')
		}
		total += n
	}
	assert.Equal(t, 800, total, "the distribution counts every delivery")
}

func TestBenchFlags(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-n", "0"}, "-n must be at least 1"},
		{[]string{"-n", "5", "-duration", "1s"}, "-n and -duration exclude each other"},
		{[]string{"-duration", "-1s"}, "-duration must be positive"},
		{[]string{"-a", "sometimes"}, `bad -a "sometimes"`},
		{[]string{"-producers", "0"}, "-producers must be 1 to 1000"},
		{[]string{"-consumers", "1001"}, "-consumers must be 1 to 1000"},
		{[]string{"-size", "-1"}, "-size must be 0 to 64 MiB"},
		{[]string{"-rate", "-5"}, "-rate must be 0 or more"},
		{[]string{"-buffer", "0"}, "-buffer must be at least 1"},
		{[]string{"-prefetch", "-1"}, "-prefetch must be 0 or more"},
		{[]string{"-timeout", "0s"}, "-timeout must be positive"},
		{[]string{"-n", "many"}, `invalid value "many" for flag -n`},
		{[]string{"extra"}, `unexpected argument "extra"`},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCmd(t, t.Context(), "", append([]string{"bench"}, tt.args...)...)
		assert.Equal(t, 2, code, "%v", tt.args)
		assert.Contains(t, stderr, tt.want, "%v", tt.args)
		assert.Empty(t, stdout, "%v", tt.args)
	}
}

func TestBenchUnreachable(t *testing.T) {
	code, _, stderr := runCmd(t, t.Context(), "", "bench", "-u", "tcp://127.0.0.1:1", "-n", "10")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "stomp bench:")
}

// TestBenchRabbitMQ runs stomp bench against RabbitMQ when the interop
// suite is on (STOMP_INTEROP=1).
func TestBenchRabbitMQ(t *testing.T) {
	if os.Getenv("STOMP_INTEROP") == "" {
		t.Skip("STOMP_INTEROP not set: run ./scripts/test.sh for the interop suite")
	}
	addr := os.Getenv("STOMP_RABBITMQ_ADDR")
	if addr == "" {
		addr = "127.0.0.1:61613"
	}
	res := benchJSONRun(t, "-u", "tcp://guest:guest@"+addr, "-n", "500", "-a", "client-individual", "-prefetch", "50",
		"-d", "/queue/stompout-bench-test")
	assert.Equal(t, int64(500), res.Received)
}

func TestProgressLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out syncBuffer
		var sent, received atomic.Int64
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { progressLine(ctx, &out, &sent, &received, 100*time.Millisecond); close(done) }()
		// Counts change half-way between ticks (at 50ms, 150ms, ...), so
		// each of the ten ticks sees one more step.
		time.Sleep(50 * time.Millisecond)
		for range 10 {
			sent.Add(1000)
			received.Add(500)
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
		<-done
		s := out.String()
		lines := strings.Split(s, "\r\033[K")
		// An empty string before the first, and the clearing at the end.
		require.Len(t, lines, 12, "%q", s)
		assert.Empty(t, lines[0])
		assert.Empty(t, lines[11])
		assert.Equal(t, "     5000 msg/s   sent 1000   received 500", lines[1])
		assert.Equal(t, "     5000 msg/s   sent 10000   received 5000", lines[10])
	})
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func (b *syncBuffer) lock() {
	if b.mu == nil {
		b.mu = make(chan struct{}, 1)
	}
	b.mu <- struct{}{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.lock()
	defer func() { <-b.mu }()
	return b.buf.String()
}

func TestIsTerminal(t *testing.T) {
	assert.False(t, isTerminal(&bytes.Buffer{}))
	f, err := os.CreateTemp(t.TempDir(), "out")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, isTerminal(f), "a regular file")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	assert.False(t, isTerminal(w), "a pipe")
	if tty, err := os.OpenFile("/dev/null", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		assert.True(t, isTerminal(tty), "a character device")
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets are contiguous and ordered, and each is at most 1/16 of its
	// values wide.
	var next uint64
	for i := range histBuckets {
		lo, hi := histBounds(i)
		require.Equal(t, next, lo, "bucket %d", i)
		require.LessOrEqual(t, lo, hi)
		if lo >= histSub {
			require.LessOrEqual(t, float64(hi-lo+1), float64(lo)/histSub, "bucket %d", i)
		}
		require.Equal(t, i, histIndex(lo))
		require.Equal(t, i, histIndex(hi))
		next = hi + 1
		if next == 0 {
			break
		}
	}
	assert.Equal(t, histBuckets-1, histIndex(math.MaxInt64))
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	assert.Zero(t, h.quantile(.5))
	assert.Zero(t, h.mean())
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	h.record(-time.Second) // counts as 0
	assert.Equal(t, uint64(1001), h.n)
	assert.Equal(t, time.Duration(0), h.min)
	assert.Equal(t, time.Millisecond, h.max)
	for q, want := range map[float64]time.Duration{.5: 500 * time.Microsecond, .9: 900 * time.Microsecond, .99: 990 * time.Microsecond} {
		got := h.quantile(q)
		assert.InEpsilon(t, float64(want), float64(got), 1.0/16, "q%v = %v, want about %v", q, got, want)
		assert.GreaterOrEqual(t, got, want-time.Microsecond, "q%v is an upper bound", q)
	}
	assert.Equal(t, time.Millisecond, h.quantile(1))
	assert.Equal(t, time.Duration(0), h.quantile(0))

	var a, b histogram
	a.record(time.Millisecond)
	b.record(3 * time.Millisecond)
	b.record(2 * time.Millisecond)
	a.merge(&b)
	a.merge(&histogram{})
	assert.Equal(t, uint64(3), a.n)
	assert.Equal(t, time.Millisecond, a.min)
	assert.Equal(t, 3*time.Millisecond, a.max)
	assert.Equal(t, 2*time.Millisecond, a.mean())
}

func TestHistogramDraw(t *testing.T) {
	var out bytes.Buffer
	var h histogram
	h.draw(&out)
	assert.Equal(t, "  no latencies measured\n", out.String())

	out.Reset()
	for range 90 {
		h.record(100 * time.Microsecond)
	}
	for range 10 {
		h.record(800 * time.Microsecond)
	}
	h.draw(&out)
	// 100µs is in the bucket [98304ns, 102399ns]: its upper bound is the
	// quantile (at most 1/16 above).
	assert.Equal(t, `  p50      0.102 ms  #####
  p90      0.102 ms  #####
  p99      0.800 ms  ########################################
  max      0.800 ms  ########################################
  distribution:
  < 131µs            90  90.0%  ########################################
  < 262µs             0   0.0%  
  < 524µs             0   0.0%  
  < 1.05ms           10  10.0%  ####
`, out.String())
	assert.Equal(t, "812ns 16.4µs 1.05ms 2.1s", strings.Join([]string{short(812), short(16384), short(1048576), short(2100 * time.Millisecond)}, " "))
}
