package loadtest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/internal/kafkatest"
)

func testTopics(t *testing.T) Topics {
	var tp Topics
	for i, s := range []string{"chat", "files", "messages"} {
		tp.Inputs[i] = kafkatest.Topic(t, "raw."+s)
		tp.Outputs[i] = kafkatest.Topic(t, "train."+s)
	}
	tp.Quarantine = kafkatest.Topic(t, "quarantine")
	tp.Audit = kafkatest.Topic(t, "audit")
	tp.Consent = kafkatest.Topic(t, "consent")
	return tp
}

// TestBaselineAgainstBroker runs the load test in baseline mode (the
// loadtest's own plain copy in place of the stage) against the real broker
// and requires that every input arrived: the generator, the copy, the
// readers and the oracle's accounting agree end to end.
func TestBaselineAgainstBroker(t *testing.T) {
	addr := kafkatest.Brokers(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Brokers: []string{addr}, Topics: testTopics(t), Partitions: 2,
		Duration: 3 * time.Second, Rate: 2000, Baseline: true, Quiet: true,
		DrainTimeout: 30 * time.Second, OutDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	var txt []byte
	txt, _ = os.ReadFile(filepath.Join(dir, "report.txt"))
	t.Logf("\n%s", txt)
	if !rep.Passed || rep.Counts.Lost != 0 || !rep.Drained {
		t.Fatalf("baseline run failed: %v", rep.Failures)
	}
	if rep.Counts.Expected < 500 {
		t.Fatalf("only %d events generated in 3 s at 2000/s", rep.Counts.Expected)
	}
	if rep.Counts.Forwarded != rep.Counts.Expected {
		t.Fatalf("forwarded %d of %d", rep.Counts.Forwarded, rep.Counts.Expected)
	}
	for _, f := range []string{"report.json", "report.txt", "report.html"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

// TestMeasureBaseline measures the plain-copy ceiling on this machine:
// LOADTEST_MEASURE=20s go test -run MeasureBaseline -v ./loadtest/
// (reports under LOADTEST_PLOT_DIR when set).
func TestMeasureBaseline(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("LOADTEST_MEASURE"))
	if err != nil {
		t.Skip("set LOADTEST_MEASURE to a duration to measure the baseline")
	}
	addr := kafkatest.Brokers(t)
	instances := 1
	if os.Getenv("LOADTEST_KILL") != "" {
		instances = 2
	}
	rep, err := Run(context.Background(), Config{
		Brokers: []string{addr}, Topics: testTopics(t), Duration: d, Baseline: true,
		Instances: instances, KillOne: instances == 2,
		DrainTimeout: time.Minute, OutDir: os.Getenv("LOADTEST_PLOT_DIR"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	_ = rep.WriteText(&b)
	t.Logf("\n%s", b.String())
	if !rep.Passed {
		t.Fatal(rep.Failures)
	}
}
