package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/anonproxy/anonproxy/demo"
)

func cmdDemo(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "[-duration 20s] [-rate 400] [-keep [-port N]]", stderr)
	duration := fs.Duration("duration", 20*time.Second, "how long to send synthetic traffic (at most 5m)")
	rate := fs.Int("rate", 400, "synthetic events per second over the three streams")
	keep := fs.Bool("keep", false, "keep the embedded broker listening on 127.0.0.1 after the summary, until Ctrl-C")
	port := fs.Int("port", 0, "port of the embedded broker (default: a free one)")
	verbose := fs.Bool("v", false, "show the stage's logs (warnings and errors)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	// The demo talks only to its own embedded broker.
	os.Unsetenv("ANONPROXY_BROKERS")
	if os.Getenv("ANONPROXY_HMAC_KEY") == "" && os.Getenv("ANONPROXY_HMAC_KEY_FILE") == "" {
		key := make([]byte, 32)
		rand.Read(key)
		os.Setenv("ANONPROXY_HMAC_KEY", "demo:"+hex.EncodeToString(key))
		fmt.Fprintln(stdout, "(no ANONPROXY_HMAC_KEY set: this demo run uses a random pseudonymization key)")
	}
	ctx, stop := signalContext()
	defer stop()
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	f, isFile := stdout.(*os.File)
	sum, err := demo.Run(ctx, demo.Options{Duration: *duration, Rate: *rate, Keep: *keep, Listen: *port,
		Color: isFile && term.IsTerminal(int(f.Fd())), Logger: log}, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy demo: %v\n", err)
		return exitRuntime
	}
	if !sum.Accounted() || sum.ForwardedAfterOptOut > 0 {
		fmt.Fprintln(stderr, "anonproxy demo: the run did not account for every event or forwarded after the opt-out")
		return exitFailed
	}
	return exitOK
}
