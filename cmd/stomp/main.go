// Command stomp serves, sends, receives, benchmarks and demonstrates STOMP.
//
//	stomp serve   run the embedded broker on TCP (and TLS) and WebSocket
//	stomp send    send messages to a destination
//	stomp recv    receive messages from a destination
//	stomp bench   measure send and receive throughput
//	stomp demo    run the embedded broker, a producer and a worker pool in-process
//
// URLs are tcp://, tls:// (or ssl://), ws:// and wss://; credentials may
// ride in the URL (tcp://guest:guest@127.0.0.1:61613). -u also takes a
// failover list (tcp://a:61613,tcp://b:61613 or failover:(...)).
//
// send and recv reconnect by default when the connection is lost (with
// backoff, trying every address of -u in turn; --no-reconnect turns it
// off) and say so on stderr, one line per state change (-q silences
// them): recv subscribes again and goes on printing, send goes on
// sending. The first connection is not retried: a wrong address fails at
// once. Ctrl-C at any moment disconnects gracefully and exits 0.
// Run "stomp COMMAND --help" for each command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

var commands = []command{
	{"serve", "run the embedded broker on TCP (and TLS) and WebSocket", runServe},
	{"send", "send messages to a destination", runSend},
	{"recv", "receive messages from a destination", runRecv},
	{"bench", "measure send and receive throughput", runBench},
	{"demo", "run the embedded broker, a producer and a worker pool in-process", runDemo},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: it returns the exit code. Tests call it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdin, stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		}
		fmt.Fprintf(stderr, "stomp %s: %v\n", c.name, err)
		return 1
	}
	fmt.Fprintf(stderr, "stomp: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: stomp COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-6s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, `Run "stomp COMMAND --help" for a command's flags.`)
}

// errUsage means the flags were wrong; the FlagSet has already said why.
var errUsage = errors.New("usage")

// parseFlags parses args into fs, printing errors and help to stderr.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, synopsis string) error {
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: stomp %s %s\n\nFlags:\n", fs.Name(), synopsis)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stomp %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

// String returns the values given so far (flag.Value).
func (m *multiFlag) String() string { return fmt.Sprint([]string(*m)) }

// Set adds one value (flag.Value).
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
