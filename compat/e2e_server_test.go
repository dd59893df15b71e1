package compat

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	gostompserver "github.com/go-stomp/stomp/v3/server"
	"github.com/stompout/stomp/broker"
)

// The in-process servers (stompout's broker, go-stomp's server) run in a
// child process, the test binary started again with e2eServerEnv set: so
// getrusage in the benchmark process counts the clients' CPU only, the
// server's CPU is read from the child, and go-stomp's server (which has no
// way to stop) goes away with its process.

// e2eServerEnv names the server TestE2EServer runs: "stompout" or "gostomp".
const e2eServerEnv = "STOMPOUT_E2E_SERVER"

// e2eServer is a server the benchmarks connect to.
type e2eServer struct {
	name            string
	addr            string // host:port
	login, passcode string

	// noIndividualAck: client-individual subscriptions do not work.
	// go-stomp v3.1.5's server never records the message-id it hands a
	// client-individual subscription (Subscription.msgId stays 0), so no
	// ACK matches and delivery stops after the first message; it also
	// sends topic messages without an ack header, and reads a STOMP 1.2
	// ACK's id header as missing.
	noIndividualAck bool

	// usage, when set, returns the server process's user+system CPU time
	// and heap allocations (runtime.MemStats.Mallocs) so far; the external
	// brokers leave it nil.
	usage func() (serverUsage, error)
}

// serverUsage is what a server process has used so far.
type serverUsage struct {
	cpu      time.Duration // user+system; negative if unknown
	mallocs  uint64        // heap allocations
	syscalls int64         // read and write system calls; negative if unknown
}

// e2eServerProfileEnv, when set to a file name, makes the server process
// write a CPU profile of its whole life there (go test's -cpuprofile
// profiles only the client side).
const e2eServerProfileEnv = "STOMP_E2E_SERVER_CPUPROFILE"

// e2eServerMemProfileEnv, when set to a file name, makes the server process
// record every allocation (runtime.MemProfileRate 1) and write the heap
// profile there when it stops: go tool pprof -sample_index=alloc_space.
const e2eServerMemProfileEnv = "STOMP_E2E_SERVER_MEMPROFILE"

// TestE2EServer is not a test: it is the child process of startE2EServer
// and does nothing unless e2eServerEnv is set. It serves on an ephemeral
// loopback port, prints "addr HOST:PORT", answers each "usage" line on stdin
// with "usage NANOSECONDS MALLOCS SYSCALLS" (its own getrusage user+sys,
// runtime.MemStats.Mallocs, and its read+write system calls or -1), and
// stops when stdin closes.
func TestE2EServer(t *testing.T) {
	kind := os.Getenv(e2eServerEnv)
	if kind == "" {
		t.Skip("the server process of BenchmarkE2E and TestE2E; runs only as their child")
	}
	var (
		addr string
		stop func()
	)
	switch kind {
	case "stompout":
		b, err := broker.Start("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr, stop = b.Addr(), func() { b.Close() }
	case "gostomp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		// Serve never returns (go-stomp's server cannot be stopped): the
		// process ends instead.
		go (&gostompserver.Server{Log: quietLog{}}).Serve(l)
		addr, stop = l.Addr().String(), func() { l.Close() }
	default:
		t.Fatalf("unknown %s=%q", e2eServerEnv, kind)
	}
	if path := os.Getenv(e2eServerProfileEnv); path != "" {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	if path := os.Getenv(e2eServerMemProfileEnv); path != "" {
		runtime.MemProfileRate = 1
		defer func() {
			f, err := os.Create(path)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			runtime.GC() // the profile counts what was allocated up to the last GC
			if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
				t.Error(err)
			}
		}()
	}
	fmt.Printf("addr %s\n", addr)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "usage" {
			d, err := processCPU()
			if err != nil {
				d = -1
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			sys := int64(-1)
			if r, w, err := processSyscalls(); err == nil {
				sys = int64(r + w)
			}
			fmt.Printf("usage %d %d %d\n", d.Nanoseconds(), ms.Mallocs, sys)
		}
	}
	stop()
}

// startE2EServer starts the server named kind ("stompout" or "gostomp") in
// a child process; tb's cleanup stops it.
func startE2EServer(tb testing.TB, kind string) *e2eServer {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestE2EServer$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), e2eServerEnv+"="+kind)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	tb.Cleanup(func() {
		stdin.Close() // the child stops serving and exits
		kill := time.AfterFunc(10*time.Second, func() { cmd.Process.Kill() })
		io.Copy(io.Discard, out)
		err := cmd.Wait()
		kill.Stop()
		if err != nil {
			tb.Errorf("compat: %s server process: %v", kind, err)
		}
	})
	addr, err := readPrefixed(out, "addr ")
	if err != nil {
		tb.Fatalf("compat: %s server process: %v", kind, err)
	}
	var mu sync.Mutex
	return &e2eServer{
		name: kind, addr: addr, login: "guest", passcode: "guest",
		noIndividualAck: kind == "gostomp",
		usage: func() (serverUsage, error) {
			mu.Lock()
			defer mu.Unlock()
			if _, err := io.WriteString(stdin, "usage\n"); err != nil {
				return serverUsage{}, err
			}
			s, err := readPrefixed(out, "usage ")
			if err != nil {
				return serverUsage{}, err
			}
			var u serverUsage
			var ns int64
			if _, err := fmt.Sscanf(s, "%d %d %d", &ns, &u.mallocs, &u.syscalls); err != nil {
				return serverUsage{}, fmt.Errorf("compat: server said usage %q", s)
			}
			u.cpu = time.Duration(ns)
			return u, nil
		},
	}
}

// readPrefixed reads lines until one starts with prefix (the test
// framework of the child prints lines of its own) and returns the rest of it.
func readPrefixed(r *bufio.Reader, prefix string) (string, error) {
	for {
		line, err := r.ReadString('\n')
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(rest), nil
		}
		if err != nil {
			return "", fmt.Errorf("compat: no %q line from the server process (%v)", prefix, err)
		}
	}
}

// externalServers are RabbitMQ and ActiveMQ, when STOMP_INTEROP=1 (see
// scripts/test.sh): their addresses come from STOMP_RABBITMQ_ADDR and
// STOMP_ACTIVEMQ_ADDR.
func externalServers() []*e2eServer {
	if os.Getenv("STOMP_INTEROP") == "" {
		return nil
	}
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	return []*e2eServer{
		{name: "rabbitmq", addr: env("STOMP_RABBITMQ_ADDR", "127.0.0.1:61613"), login: "guest", passcode: "guest"},
		{name: "activemq", addr: env("STOMP_ACTIVEMQ_ADDR", "127.0.0.1:61614"), login: "guest", passcode: "guest"},
	}
}

// quietLog keeps go-stomp's server and client from logging every
// connection and subscription that ends.
type quietLog struct{}

func (quietLog) Debugf(string, ...any)   {}
func (quietLog) Infof(string, ...any)    {}
func (quietLog) Warningf(string, ...any) {}
func (quietLog) Errorf(string, ...any)   {}
func (quietLog) Debug(string)            {}
func (quietLog) Info(string)             {}
func (quietLog) Warning(string)          {}
func (quietLog) Error(string)            {}
