package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/anonproxy/anonproxy/redact"
)

func cmdRedact(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("redact", "-config FILE -stream NAME [-level anonymized|allow] < in.jsonl > out.jsonl", stderr)
	path := fs.String("config", "", "config file (YAML)")
	name := fs.String("stream", "", "stream whose rules apply (e.g. chat)")
	level := fs.String("level", "anonymized", "consent level to redact for: anonymized or allow")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var lvl redact.Level
	switch *level {
	case "anonymized":
		lvl = redact.LevelAnonymized
	case "allow":
		lvl = redact.LevelAllow
	default:
		fmt.Fprintf(stderr, "anonproxy redact: -level %q: want anonymized or allow\n", *level)
		return exitUsage
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitUsage
	}
	if *name == "" {
		fmt.Fprintln(stderr, "anonproxy redact: -stream NAME is required")
		return exitUsage
	}
	sc, err := cfg.Stream(*name)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy redact: %v\n", err)
		return exitUsage
	}
	keys, err := redact.KeyringFromEnv()
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy redact: %v\n", err)
		return exitRuntime
	}
	eng, err := redact.Compile(sc.StreamConfig, cfg.Redaction, keys)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy redact: %v\n", err)
		return exitUsage
	}
	return redactLines(eng, lvl, stdin, stdout, stderr)
}

// redactLines streams JSON lines through eng in order. A line that is not
// valid JSON (or that the engine must reject) is reported on stderr with its
// line number and not written; the status is then exitFailed.
func redactLines(eng *redact.Engine, lvl redact.Level, stdin io.Reader, stdout, stderr io.Writer) int {
	in := bufio.NewReaderSize(stdin, 1<<20)
	out := bufio.NewWriterSize(stdout, 1<<20)
	defer out.Flush()
	var (
		line, buf []byte
		st        redact.Stats
		status    = exitOK
	)
	for n := 1; ; n++ {
		line = line[:0]
		var err error
		for {
			var frag []byte
			frag, err = in.ReadSlice('\n')
			line = append(line, frag...)
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if len(line) == 0 && err != nil {
			if err != io.EOF {
				fmt.Fprintf(stderr, "anonproxy redact: reading stdin: %v\n", err)
				return exitFailed
			}
			return status
		}
		body := line
		if l := len(body); l > 0 && body[l-1] == '\n' {
			body = body[:l-1]
			if l := len(body); l > 0 && body[l-1] == '\r' {
				body = body[:l-1]
			}
		}
		var rerr error
		buf, rerr = eng.AppendRedacted(buf[:0], body, lvl, &st)
		if rerr != nil {
			fmt.Fprintf(stderr, "line %d: %s: not written\n", n, redactError(rerr))
			status = exitFailed
		} else {
			out.Write(buf)
			out.WriteByte('\n')
		}
		if err == io.EOF {
			return status
		}
	}
}

// redactError describes err without quoting input bytes.
func redactError(err error) string {
	var re *redact.Error
	if errors.As(err, &re) {
		if re.Reason == "invalid_json" {
			return "not valid JSON (invalid_json)"
		}
		return re.Reason
	}
	return err.Error()
}
