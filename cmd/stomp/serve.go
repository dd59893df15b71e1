package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/stompout/stomp/broker"
	"github.com/stompout/stomp/server"
)

func runServe(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var (
		tcpAddr  = fs.String("tcp", "127.0.0.1:61613", "STOMP over TCP (TLS with --tls-cert) listen `address`; empty turns it off")
		wsAddr   = fs.String("ws", "127.0.0.1:15674", "STOMP over WebSocket listen `address`, endpoint /ws; empty turns it off")
		certFile = fs.String("tls-cert", "", "TLS certificate `file` (PEM); with --tls-key, both listeners use TLS")
		keyFile  = fs.String("tls-key", "", "TLS private key `file` (PEM)")
		users    = fs.String("users", "", "`file` of login:passcode lines; without it anyone may connect")
		hbSend   = fs.Duration("heart-beat-send", 10*time.Second, "interval the server can send heart-beats at (0: none)")
		hbRecv   = fs.Duration("heart-beat-recv", 10*time.Second, "interval the server wants heart-beats at (0: none)")
		queueMax = fs.Int("queue-limit", 0, "most messages a queue holds (0: the broker's default)")
		verbose  = fs.Bool("v", false, "log every session")
	)
	if err := parseFlags(fs, args, stderr, "[--tcp ADDR] [--ws ADDR] [--tls-cert FILE --tls-key FILE] [--users FILE]"); err != nil {
		return err
	}
	if *tcpAddr == "" && *wsAddr == "" {
		return errors.New("both --tcp and --ws are empty: nothing to serve")
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	var bopts []broker.Option
	if *users != "" {
		u, err := readUsers(*users)
		if err != nil {
			return err
		}
		bopts = append(bopts, broker.WithUsers(u))
	}
	if *queueMax > 0 {
		bopts = append(bopts, broker.WithQueueLimit(*queueMax))
	}
	var tlsConfig *tls.Config
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	bopts = append(bopts, broker.WithLogger(logger),
		broker.WithServerOptions(server.WithHeartBeat(*hbSend, *hbRecv), server.WithLogger(logger)))
	b, berr := broker.New(bopts...)
	if berr != nil {
		return berr
	}
	srv := b.Server()
	errc := make(chan error, 2)
	var httpSrv *http.Server

	if *tcpAddr != "" {
		l, err := net.Listen("tcp", *tcpAddr)
		if err != nil {
			return err
		}
		scheme := "tcp"
		if tlsConfig != nil {
			l, scheme = tls.NewListener(l, tlsConfig), "tls"
		}
		fmt.Fprintf(stdout, "serving STOMP on %s://%s\n", scheme, l.Addr())
		go func() { errc <- srv.Serve(l) }()
	}
	if *wsAddr != "" {
		l, err := net.Listen("tcp", *wsAddr)
		if err != nil {
			b.Close()
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/ws", srv.WebSocketHandler())
		httpSrv = &http.Server{Handler: mux, TLSConfig: tlsConfig, ReadHeaderTimeout: 10 * time.Second}
		scheme := "ws"
		if tlsConfig != nil {
			l, scheme = tls.NewListener(l, tlsConfig), "wss"
		}
		fmt.Fprintf(stdout, "serving STOMP on %s://%s/ws\n", scheme, l.Addr())
		go func() { errc <- httpSrv.Serve(l) }()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	fmt.Fprintln(stdout, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if httpSrv != nil {
		httpSrv.Shutdown(sctx)
	}
	if serr := b.Shutdown(sctx); serr != nil && err == nil {
		err = serr
	}
	if errors.Is(err, server.ErrServerClosed) || errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// readUsers reads login:passcode lines; blank lines and # comments are
// skipped.
func readUsers(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	users := make(map[string]string)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		login, pass, ok := strings.Cut(line, ":")
		if !ok || login == "" {
			return nil, fmt.Errorf("%s:%d: want login:passcode", path, n)
		}
		users[login] = pass
	}
	return users, sc.Err()
}
