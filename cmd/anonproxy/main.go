// Command anonproxy is the streaming anonymization proxy: see
// ../../../shared/CONTRACT.md §2 for its commands. This package parses
// flags, loads config, wires the packages together and handles signals; it
// holds no logic of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/anonproxy/anonproxy/config"
)

// Exit codes shared by every command.
const (
	exitOK      = 0
	exitFailed  = 1 // the command ran and something failed (e.g. a bad input line)
	exitUsage   = 2 // bad flags or bad config: nothing was done
	exitRuntime = 3 // could not start (broker unreachable, key missing, ...)
)

type command struct {
	name, summary string
	run           func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run the pipeline stage until SIGINT/SIGTERM", cmdRun},
		{"demo", "run the stage on an embedded broker with synthetic traffic and print what it did", cmdDemo},
		{"redact", "redact JSON lines from stdin to stdout with one stream's rules", cmdRedact},
		{"replay", "backfill: re-run the pipeline over historical data under today's consent", cmdReplay},
		{"loadtest", "synthetic load with consent churn against a stage; verifies no leak and no loss", cmdLoadtest},
		{"consent", "set, delete, get, explain, import and export consent records", cmdConsent},
		{"config", "config check -config FILE: validate a config", cmdConfig},
	}
}

func main() { os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "anonproxy: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "anonproxy — a streaming anonymization proxy for Kafka that enforces training consent.")
	fmt.Fprintln(w, "\nUsage: anonproxy <command> [flags]   (anonproxy <command> -h for its flags)\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nEnvironment: ANONPROXY_BROKERS overrides the config's brokers; ANONPROXY_HMAC_KEY or")
	fmt.Fprintln(w, "ANONPROXY_HMAC_KEY_FILE holds the pseudonymization key.")
}

// newFlags returns a flag set whose -h prints the command's usage line and flags.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("anonproxy "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: anonproxy %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; it returns (code, false) when the command must stop.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return exitUsage, false
	}
	return 0, true
}

// loadConfig loads a config file, printing every problem with its YAML path.
func loadConfig(path string, stderr io.Writer) (*config.File, bool) {
	if path == "" {
		fmt.Fprintln(stderr, "anonproxy: -config FILE is required")
		return nil, false
	}
	f, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return nil, false
	}
	return f, true
}

// newLogger builds the structured logger: JSON by default, never payload bytes.
func newLogger(cfg config.LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	switch cfg.Level {
	case "debug":
		lvl = slog.LevelDebug
	case "warn":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func cmdConfig(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "Usage: anonproxy config check -config FILE")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitUsage
	}
	fs := newFlags("config check", "-config FILE", stderr)
	path := fs.String("config", "", "config file to validate (YAML)")
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	f, ok := loadConfig(*path, stderr)
	if !ok {
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: ok (%d streams)\n", *path, len(f.Streams))
	return exitOK
}
