package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/configs"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
)

func TestReplayFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-h"}, exitOK, "-from-topic"},
		{"no source", []string{"-config", "x.yaml"}, exitUsage, "set one source"},
		{"two sources", []string{"-from-topic", "t", "-from-file", "f"}, exitUsage, "set one source"},
		{"two outputs", []string{"-from-topic", "t", "-to-topic", "a", "-to-file", "b"}, exitUsage, "set one output"},
		{"file needs stream", []string{"-from-file", "f", "-to-file", "o"}, exitUsage, "-stream NAME is required"},
		{"time and offset", []string{"-from-topic", "t", "-from-time", "2026-01-01T00:00:00Z", "-from-offset", "3"}, exitUsage, "not both"},
		{"time on files", []string{"-stream", "chat", "-from-file", "f", "-to-time", "2026-01-01T00:00:00Z"}, exitUsage, "-from-topic only"},
		{"bad time", []string{"-from-topic", "t", "-from-time", "yesterday"}, exitUsage, "-from-time"},
		{"glob without match", []string{"-stream", "chat", "-from-file", "/nonexistent/*.jsonl"}, exitUsage, "no file matches"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := dispatch(append([]string{"replay"}, tc.args...), nil, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
		})
	}
}

// TestReplayCommandFiles runs `anonproxy replay` from a zstd file to a file
// against the real broker's consent topic, then resumes the finished replay.
func TestReplayCommandFiles(t *testing.T) {
	addr := kafkatest.Brokers(t)
	t.Setenv("ANONPROXY_HMAC_KEY", "k1:some-test-key-at-least-16-bytes")
	t.Setenv("ANONPROXY_BROKERS", addr)
	dir := t.TempDir()
	consentTopic := kafkatest.Topic(t, "rpcmd")
	kafkatest.CreateCompactedTopic(t, addr, consentTopic, 1)
	kafkatest.Produce(t, addr, consentTopic, kafka.Zstd,
		kafka.Message{Key: []byte("u:T1:U1"), Value: []byte(`{"default":"anonymized"}`)})
	cfg := strings.Replace(string(configs.Example), "topic: consent", "topic: "+consentTopic, 1)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "chat.jsonl")
	lines := `{"event_id":"a","tenant_id":"T1","user_id":"U1","text":"mail alice@example.com"}
{"event_id":"b","tenant_id":"T1","user_id":"U2","text":"no consent"}
not json
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.jsonl.zst")
	args := []string{"replay", "-config", cfgPath, "-stream", "chat", "-from-file", filepath.Join(dir, "chat*.jsonl"), "-to-file", out, "-quiet"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- dispatch(args, nil, &stdout, &stderr) }()
	select {
	case code := <-done:
		if code != exitOK {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
		}
	case <-ctx.Done():
		t.Fatal("replay did not finish")
	}
	for _, want := range []string{"replay complete", "in           3", "anonymized 1", "denied       1", "quarantined  1"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	for _, f := range []string{out, out + ".quarantine.jsonl", out + ".audit.jsonl", out + ".checkpoint.json"} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	audit, _ := os.ReadFile(out + ".audit.jsonl")
	if !strings.Contains(string(audit), `"source":"chat.jsonl/0/2"`) {
		t.Errorf("audit file: %s", audit)
	}
	// Without -resume the checkpoint is not overwritten; with it, a finished
	// replay does nothing.
	stdout.Reset()
	stderr.Reset()
	if code := dispatch(args, nil, &stdout, &stderr); code != exitRuntime || !strings.Contains(stderr.String(), "-resume") {
		t.Errorf("rerun without -resume: exit %d, %s", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := dispatch(append(args, "-resume"), nil, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "replay complete") {
		t.Errorf("resume of a finished replay: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}
