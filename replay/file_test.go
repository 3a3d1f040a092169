package replay_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/replay"
)

// fileOptions replays the chat stream from files to out, with the
// quarantine and audit siblings the command uses.
func fileOptions(rp *wire.Replay, out string, files ...string) replay.Options {
	return replay.Options{Processor: rp.Processor, QuarantineTopic: rp.QuarantineTopic, AuditTopic: rp.AuditTopic,
		Files: files, Output: replay.Route{File: out},
		Quarantine: replay.Route{File: out + ".quarantine.jsonl"}, Audit: replay.Route{File: out + ".audit.jsonl"},
		Checkpoint: out + ".checkpoint.json", BatchSize: 7}
}

// checkFileOutputs checks a file replay of chatEvents(n) read from the files
// named by base (in order, each holding n events): every forwarded record is
// redacted for its level, denied events are only in the audit file, malformed
// lines only in the quarantine file, each exactly once.
func checkFileOutputs(t *testing.T, out string, n int, bases ...string) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range readJSONL(t, out) {
		id, _ := m["event_id"].(string)
		seen[id]++
		text, _ := m["text"].(string)
		var line int
		fmt.Sscanf(id, "ev-%d", &line)
		switch kindOf(line) {
		case kindAnonymized:
			if strings.Contains(text, "@example.com") || !strings.Contains(text, "[EMAIL]") || m["user_id"] == "U1" {
				t.Errorf("%s: anonymized event not anonymized: %v", id, m)
			}
		case kindAllow:
			if !strings.Contains(text, fmt.Sprintf("bob%d@example.com", line)) || m["user_id"] != "U2" {
				t.Errorf("%s: allowed event changed beyond the always-on rules: %v", id, m)
			}
		default:
			t.Errorf("%s (kind %d) was forwarded", id, kindOf(line))
		}
		if strings.Contains(text, "AKIA") {
			t.Errorf("%s: credential forwarded", id)
		}
	}
	audit := map[string]int{}
	for _, m := range readJSONL(t, out+".audit.jsonl") {
		if m["kind"] != "deny" || m["subject"] != "u:T1:U3" || m["stream"] != "chat" {
			t.Errorf("audit record %v", m)
		}
		if _, ok := m["text"]; ok {
			t.Errorf("audit record carries payload: %v", m)
		}
		audit[m["source"].(string)]++
	}
	quarantine := map[string]int{}
	for _, m := range readJSONL(t, out+".quarantine.jsonl") {
		if m["reason"] != "invalid_json" {
			t.Errorf("quarantine record %v", m)
		}
		quarantine[m["source"].(string)]++
	}
	for f, base := range bases {
		for line := 1; line <= n; line++ {
			src := fmt.Sprintf("%s/0/%d", base, line)
			id := fmt.Sprintf("ev-%d", line)
			var got int
			switch kindOf(line) {
			case kindAnonymized, kindAllow:
				got = seen[id]
				if len(bases) > 1 {
					got = min(got, 1) // the same ids in every file
					seen[id]--
				}
			case kindDenied:
				got = audit[src]
			case kindMalformed:
				got = quarantine[src]
			}
			if got != 1 {
				t.Errorf("file %d line %d (kind %d): %d records, want exactly 1", f, line, kindOf(line), got)
			}
		}
	}
}

func TestReplayFiles(t *testing.T) {
	t.Setenv("ANONPROXY_HMAC_KEY", testKey)
	const n = 100
	for _, tc := range []struct{ name, codec, in, out string }{
		{"gzip to plain", "gzip", "chat.jsonl.gz", "out.jsonl"},
		{"zstd to zstd", "zstd", "chat.jsonl.zst", "out.jsonl.zst"},
		{"plain to zstd", "", "chat.jsonl", "out.jsonl.zst"},
		{"zstd without suffix", "zstd", "chat.data", "out.jsonl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rp := tableReplay(t, refConfig(t))
			in := filepath.Join(dir, tc.in)
			writeJSONL(t, in, chatEvents(n), tc.codec)
			out := filepath.Join(dir, tc.out)
			sum, err := replay.Run(context.Background(), fileOptions(rp, out, in))
			if err != nil {
				t.Fatalf("replay: %v", err)
			}
			checkFileOutputs(t, out, n, tc.in)
			var want replay.Counts
			for line := 1; line <= n; line++ {
				switch kindOf(line) {
				case kindAnonymized:
					want.Anonymized++
				case kindAllow:
					want.Allow++
				case kindDenied:
					want.Denied++
				case kindMalformed:
					want.Quarantined++
				}
			}
			want.In = n
			if sum.Counts != want || !sum.Done || sum.ThisRun != want {
				t.Errorf("summary %+v, want counts %+v", sum, want)
			}
			cp, err := replay.ReadCheckpoint(out + ".checkpoint.json")
			if err != nil || !cp.Done || cp.Files[0].Line != n {
				t.Errorf("checkpoint %+v, %v", cp, err)
			}
		})
	}
}

func TestReplayFilesSeveralAndBlankLines(t *testing.T) {
	t.Setenv("ANONPROXY_HMAC_KEY", testKey)
	dir := t.TempDir()
	rp := tableReplay(t, refConfig(t))
	a, b := filepath.Join(dir, "a.jsonl.gz"), filepath.Join(dir, "b.jsonl")
	evs := chatEvents(20)
	writeJSONL(t, a, evs, "gzip")
	withBlank := append(append([][]byte{}, evs[:5]...), []byte(""), []byte("  \r"))
	writeJSONL(t, b, append(withBlank, evs[5:]...), "")
	out := filepath.Join(dir, "out.jsonl")
	sum, err := replay.Run(context.Background(), fileOptions(rp, out, a, b))
	if err != nil {
		t.Fatal(err)
	}
	if sum.In != 40 || sum.Skipped != 2 {
		t.Errorf("in %d skipped %d, want 40 and 2", sum.In, sum.Skipped)
	}
	// Line numbers count blank lines: b's events after them moved by two.
	audit := map[string]bool{}
	for _, m := range readJSONL(t, out+".audit.jsonl") {
		audit[m["source"].(string)] = true
	}
	for _, src := range []string{"a.jsonl.gz/0/3", "a.jsonl.gz/0/6", "b.jsonl/0/3", "b.jsonl/0/8"} {
		if !audit[src] {
			t.Errorf("no audit record for %s (have %v)", src, audit)
		}
	}
}

func TestReplayRefusesToOverwrite(t *testing.T) {
	t.Setenv("ANONPROXY_HMAC_KEY", testKey)
	dir := t.TempDir()
	rp := tableReplay(t, refConfig(t))
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, chatEvents(5), "")
	out := filepath.Join(dir, "out.jsonl")
	if _, err := replay.Run(context.Background(), fileOptions(rp, out, in)); err != nil {
		t.Fatal(err)
	}
	// Again without -resume: the checkpoint belongs to the first replay.
	if _, err := replay.Run(context.Background(), fileOptions(rp, out, in)); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second replay: %v, want a refusal", err)
	}
	// Resuming a finished replay does nothing.
	o := fileOptions(rp, out, in)
	o.Resume = true
	sum, err := replay.Run(context.Background(), o)
	if err != nil || !sum.Done || sum.ThisRun.In != 0 || sum.In != 5 {
		t.Errorf("resume of a finished replay: %+v, %v", sum, err)
	}
	// Resuming with other options is refused.
	o.Files = []string{in, in + ".other"}
	if _, err := replay.Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "different replay") {
		t.Errorf("resume with other files: %v", err)
	}
	// No checkpoint, but the output exists: refused, never overwritten.
	os.Remove(out + ".checkpoint.json")
	if _, err := replay.Run(context.Background(), fileOptions(rp, out, in)); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("replay over an existing output: %v", err)
	}
}

// TestReplayFilesResume kills a replay midway, either as a crash right
// after a batch was acknowledged but before the checkpoint recorded it, or
// by cancelling it, and resumes it: the outputs are the full outputs, each
// record exactly once (the file sinks are truncated to the checkpoint).
func TestReplayFilesResume(t *testing.T) {
	t.Setenv("ANONPROXY_HMAC_KEY", testKey)
	const n = 250
	for _, tc := range []struct {
		name, codec, in, out string
		cancel               bool
	}{
		{"crash after ack, zstd", "zstd", "chat.jsonl.zst", "out.jsonl.zst", false},
		{"crash after ack, gzip", "gzip", "chat.jsonl.gz", "out.jsonl", false},
		{"crash after ack, plain", "", "chat.jsonl", "out.jsonl.zst", false},
		{"cancelled, plain", "", "chat.jsonl", "out.jsonl", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rp := tableReplay(t, refConfig(t))
			in := filepath.Join(dir, tc.in)
			writeJSONL(t, in, chatEvents(n), tc.codec)
			out := filepath.Join(dir, tc.out)
			crash := errors.New("simulated crash")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			restore := replay.SetTestHookAcked(func(b int) error {
				if b == 11 {
					if tc.cancel {
						cancel()
						return nil
					}
					return crash
				}
				return nil
			})
			sum, err := replay.Run(ctx, fileOptions(rp, out, in))
			restore()
			if tc.cancel && !errors.Is(err, replay.ErrInterrupted) || !tc.cancel && !errors.Is(err, crash) {
				t.Fatalf("first run: %v", err)
			}
			if sum.Done {
				t.Fatal("first run finished")
			}
			cp, err := replay.ReadCheckpoint(out + ".checkpoint.json")
			if err != nil {
				t.Fatal(err)
			}
			// A crash after batch 11's acknowledgement: batches 0..10 of 7
			// records are checkpointed. A cancellation: batch 11 and those
			// already processed behind it are acknowledged and checkpointed.
			wantLine := int64(11 * 7)
			if tc.cancel && cp.Files[0].Line >= 12*7 && cp.Files[0].Line < n && cp.Files[0].Line%7 == 0 {
				wantLine = cp.Files[0].Line
			}
			if cp.Files[0].Line != wantLine || cp.Done {
				t.Fatalf("checkpoint at line %d, want %d", cp.Files[0].Line, wantLine)
			}
			o := fileOptions(rp, out, in)
			o.Resume = true
			sum, err = replay.Run(context.Background(), o)
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			if !sum.Resumed || !sum.Done || sum.In != n || sum.ThisRun.In != n-wantLine {
				t.Errorf("summary after resume: %+v", sum)
			}
			checkFileOutputs(t, out, n, tc.in)
		})
	}
}
