package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/replay"
)

// fileList is a repeatable flag whose values may be globs.
type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func cmdReplay(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("replay", "-config FILE (-from-topic T [-from-time RFC3339 | -from-offset N] [-to-time RFC3339] | -stream NAME -from-file PATH...) [-to-topic T | -to-file PATH] [-checkpoint FILE [-resume]]", stderr)
	path := fs.String("config", "", "config `FILE` (YAML)")
	stream := fs.String("stream", "", "`NAME` of the stream whose rules, category and id paths apply (required with -from-file; default for a topic: the stream that consumes it)")
	fromTopic := fs.String("from-topic", "", "source `TOPIC`; replayed up to the end offsets read at start")
	fromTime := fs.String("from-time", "", "with -from-topic: start at the first record at or after `RFC3339` time")
	fromOffset := int64(-1)
	fs.Func("from-offset", "with -from-topic: start at offset `N` in every partition (default: the first offset)", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want a non-negative offset")
		}
		fromOffset = n
		return nil
	})
	toTime := fs.String("to-time", "", "with -from-topic: stop before the first record at or after `RFC3339` time")
	var files fileList
	fs.Var(&files, "from-file", "source JSONL `PATH`, plain, gzip or zstd (detected by content); repeatable, globs allowed")
	toTopic := fs.String("to-topic", "", "output `TOPIC` (default: the stream's output topic)")
	toFile := fs.String("to-file", "", "output JSONL `PATH` (.zst suffix: zstd); quarantine and audit records go to PATH.quarantine.jsonl and PATH.audit.jsonl unless -quarantine-topic / -audit-topic")
	quarantineTopic := fs.String("quarantine-topic", "", "quarantine `TOPIC` (default: the config's with -to-topic, a file with -to-file)")
	auditTopic := fs.String("audit-topic", "", "audit `TOPIC` (default: the config's with -to-topic, a file with -to-file)")
	checkpoint := fs.String("checkpoint", "", "checkpoint `FILE`, rewritten after every acknowledged batch (default with -to-file: PATH.checkpoint.json; none otherwise: not resumable)")
	resume := fs.Bool("resume", false, "continue the replay recorded in -checkpoint (starts a new one if the file does not exist)")
	batch := fs.Int("batch", 1000, "`N` records per batch: one acknowledgement and checkpoint per batch")
	readyTimeout := fs.Duration("ready-timeout", 5*time.Minute, "how long to wait for the consent table to catch up before giving up (nothing is read before)")
	quiet := fs.Bool("quiet", false, "no progress bar (it is also off when stderr is not a terminal)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	// The progress bar, the consent loader's logs and this command share
	// stderr from several goroutines.
	progress := !*quiet && isTerminal(stderr)
	stderr = &lockedWriter{w: stderr}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "anonproxy replay: "+format+"\n", a...)
		return exitUsage
	}
	o := replay.Options{Topic: *fromTopic, BatchSize: *batch, Checkpoint: *checkpoint, Resume: *resume}
	switch {
	case (*fromTopic == "") == (len(files) == 0):
		return usageErr("set one source: -from-topic or -from-file")
	case *toTopic != "" && *toFile != "":
		return usageErr("set one output: -to-topic or -to-file")
	case *fromTopic == "" && (*fromTime != "" || fromOffset >= 0 || *toTime != ""):
		return usageErr("-from-time, -from-offset and -to-time apply to -from-topic only")
	case *fromTime != "" && fromOffset >= 0:
		return usageErr("set -from-time or -from-offset, not both")
	case len(files) > 0 && *stream == "":
		return usageErr("-stream NAME is required with -from-file")
	case *batch <= 0:
		return usageErr("-batch must be positive")
	}
	var err error
	if *fromTime != "" {
		if o.FromTime, err = time.Parse(time.RFC3339Nano, *fromTime); err != nil {
			return usageErr("-from-time: %v", err)
		}
	}
	if *toTime != "" {
		if o.ToTime, err = time.Parse(time.RFC3339Nano, *toTime); err != nil {
			return usageErr("-to-time: %v", err)
		}
	}
	o.FromOffset = max(fromOffset, 0)
	if o.Files, err = expandFiles(files); err != nil {
		return usageErr("%v", err)
	}
	if *toFile != "" {
		o.Output.File = *toFile
		o.Quarantine.File, o.Audit.File = *toFile+".quarantine.jsonl", *toFile+".audit.jsonl"
		if o.Checkpoint == "" {
			o.Checkpoint = *toFile + ".checkpoint.json"
		}
	} else {
		o.Output.Topic = *toTopic
	}
	if *quarantineTopic != "" {
		o.Quarantine = replay.Route{Topic: *quarantineTopic}
	}
	if *auditTopic != "" {
		o.Audit = replay.Route{Topic: *auditTopic}
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitUsage
	}
	sc, err := wire.ReplayStream(cfg, *stream, *fromTopic)
	if err != nil {
		return usageErr("%v", err)
	}
	log := newLogger(cfg.Log, stderr)
	if progress {
		// Warnings only, in text: JSON info lines would tear the bar apart.
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		o.Progress = stderr
	}
	rp, err := wire.BuildReplay(cfg, sc, log)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy replay: %v\n", err)
		return exitRuntime
	}
	defer rp.Writer.Close()
	o.Processor, o.QuarantineTopic, o.AuditTopic = rp.Processor, rp.QuarantineTopic, rp.AuditTopic
	o.Consent, o.MaxStaleness, o.Clients, o.Producer, o.Log = rp.Loader, time.Duration(rp.MaxStaleness), rp.Clients, rp.Writer, log
	if err := o.Validate(); err != nil {
		return usageErr("%v", err)
	}

	ctx, stop := signalContext()
	defer stop()
	lctx, stopLoader := context.WithCancel(context.Background())
	loaderDone := make(chan struct{})
	go func() { defer close(loaderDone); rp.Loader.Run(lctx) }()
	defer func() { stopLoader(); <-loaderDone }()

	fmt.Fprintf(stderr, "anonproxy replay: loading consent from %s; nothing is read before it has caught up\n", cfg.Consent.Topic)
	rctx, cancel := context.WithTimeout(ctx, *readyTimeout)
	err = rp.Loader.WaitReady(rctx)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(stderr, "anonproxy replay: interrupted before the consent table was ready; nothing was read")
			return exitFailed
		}
		fmt.Fprintf(stderr, "anonproxy replay: consent table not ready after %s (is %s reachable, does topic %s exist?): %v\n",
			*readyTimeout, strings.Join(rp.Clients.Brokers, ","), cfg.Consent.Topic, err)
		return exitRuntime
	}
	sum, err := replay.Run(ctx, o)
	if sum != nil && (err == nil || sum.ThisRun.In > 0 || sum.Done) {
		sum.WriteText(stdout)
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, replay.ErrInterrupted):
		fmt.Fprintf(stderr, "anonproxy replay: %v\n", err)
		if o.Checkpoint != "" {
			fmt.Fprintf(stderr, "anonproxy replay: resume with the same flags and -resume (checkpoint %s)\n", o.Checkpoint)
		}
		return exitFailed
	default:
		fmt.Fprintf(stderr, "anonproxy replay: %v\n", err)
		return exitRuntime
	}
}

// expandFiles expands globs (sorted matches) and keeps plain paths as given.
func expandFiles(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[") {
			out = append(out, a)
			continue
		}
		m, err := filepath.Glob(a)
		if err != nil {
			return nil, fmt.Errorf("-from-file %s: %v", a, err)
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("-from-file %s: no file matches", a)
		}
		sort.Strings(m)
		out = append(out, m...)
	}
	return out, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
