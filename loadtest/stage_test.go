package loadtest_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/configs"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/loadtest"
)

func stageConfig(t *testing.T, addr string) *config.File {
	t.Helper()
	t.Setenv("ANONPROXY_HMAC_KEY", "k1:loadtest-key-0123456789abcdef0123")
	t.Setenv("ANONPROXY_BROKERS", "")
	cfg, err := config.Parse(configs.Example)
	if err != nil {
		t.Fatal(err)
	}
	cfg.PrefixTopics(kafkatest.Topic(t, "lt"))
	cfg.Kafka.Brokers = []string{addr}
	return cfg
}

func report(t *testing.T, rep *loadtest.Report) {
	t.Helper()
	var b bytes.Buffer
	rep.WriteText(&b)
	t.Logf("\n%s", b.String())
	if !rep.Passed || rep.Counts.Lost != 0 || !rep.Drained {
		t.Fatalf("load test failed: %v", rep.Failures)
	}
}

// TestStageUnderLoad is the short load test of the test command: the real
// stage, in process, under synthetic traffic with consent churn, and the
// oracle must find zero loss and zero leaks. Throughput is not asserted.
func TestStageUnderLoad(t *testing.T) {
	addr := kafkatest.Brokers(t)
	cfg := stageConfig(t, addr)
	topics, err := wire.LoadtestTopics(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Brokers: []string{addr}, Topics: topics, Partitions: 2,
		Duration: 8 * time.Second, Rate: 800, ChurnRate: 10, Quiet: true,
		MaxStaleness: cfg.Consent.MaxStalenessOrDefault(), DrainTimeout: 45 * time.Second,
		StartStage: wire.InProcessStage(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))),
	})
	if err != nil {
		t.Fatal(err)
	}
	report(t, rep)
	if rep.Counts.Expected < 1000 {
		t.Errorf("only %d events generated", rep.Counts.Expected)
	}
}

// TestScaleOutWithKill: three stage processes in one group, one killed
// with SIGKILL mid-run; the oracle still finds no loss and no leak.
func TestScaleOutWithKill(t *testing.T) {
	addr := kafkatest.Brokers(t)
	cfg := stageConfig(t, addr)
	topics, err := wire.LoadtestTopics(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	cfgPath := filepath.Join(t.TempDir(), "stage.yaml")
	if err := os.WriteFile(cfgPath, configYAML(t, cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Brokers: []string{addr}, Topics: topics, Partitions: 3,
		Duration: 10 * time.Second, Rate: 600, ChurnRate: 5, Quiet: true,
		MaxStaleness: cfg.Consent.MaxStalenessOrDefault(), DrainTimeout: 60 * time.Second,
		Instances: 3, KillOne: true,
		StartStage: wire.SubprocessStage(bin, cfgPath, []string{addr}, &syncWriter{w: &logs}),
	})
	if err != nil {
		t.Fatalf("%v\nstage logs:\n%s", err, logs.String())
	}
	report(t, rep)
}

// buildBinary builds cmd/anonproxy for tests that run it as a process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "anonproxy")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/anonproxy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// configYAML writes cfg back to YAML, and proves it loads as the same config.
func configYAML(t *testing.T, cfg *config.File) []byte {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse(b); err != nil {
		t.Fatalf("marshalled config does not load: %v\n%s", err, b)
	}
	return b
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
