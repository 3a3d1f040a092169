package loadtest

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/consent"
	"gonum.org/v1/plot"
)

// syntheticReport builds a report from a made-up verdict, the way Run does.
func syntheticReport(t *testing.T, mode string) *Report {
	t.Helper()
	start := time.Unix(1_800_000_000, 0).UTC()
	rng := rand.New(rand.NewPCG(1, 2))
	v := &Verdict{
		Counts:     Counts{Expected: 30000, InputsRead: 30000, Malformed: 300, Forwarded: 25000, Denied: 4700, Quarantined: 300, ForwardedRecords: 25010, Duplicates: 10},
		Violations: map[string]int64{}, Warnings: map[string]int64{WForeign: 3},
		FirstInput: start, LastOutcome: start.Add(31 * time.Second),
	}
	for s := range int64(31) {
		v.Series = append(v.Series, SecondSample{Second: s, Produced: 1000, Forwarded: 830 + s, Denied: 160, Quarantined: 10})
	}
	for range 30000 {
		v.Latencies = append(v.Latencies, 5+rng.ExpFloat64()*20)
	}
	for i := range 40 {
		v.Propagation = append(v.Propagation, Propagation{Key: "u:T:U", Acked: start.Add(time.Duration(i) * 700 * time.Millisecond),
			Observed: i%5 != 0, DelayMs: rng.Float64() * 900, Subjects: 1})
	}
	rep := &Report{RunID: "abc", Mode: mode, Started: start, GenerationEnded: start.Add(30 * time.Second),
		Ended: start.Add(33 * time.Second), Drained: true,
		Settings: settingsOf(Config{Brokers: []string{"127.0.0.1:9092"}}.withDefaults(), 40)}
	fillReport(rep, v, NewConsentLog([numStreams]consent.Level{}), Config{}.withDefaults())
	return rep
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := syntheticReport(t, "stage")
	if !rep.Passed || rep.Latency.Count != 30000 || rep.Propagation.Revocations != 40 || rep.Propagation.Observed != 32 {
		t.Fatalf("summary: passed %v, latency %+v, propagation %d/%d", rep.Passed, rep.Latency.Count,
			rep.Propagation.Observed, rep.Propagation.Revocations)
	}
	if p := rep.Throughput.ProcessedPerSec; p < 960 || p > 970 {
		t.Errorf("processed/s %.1f, want 30000/31 s", p)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*rep, back) {
		t.Errorf("report changed in a JSON round trip:\n%s", b)
	}
}

func TestReportFailuresExplained(t *testing.T) {
	rep := syntheticReport(t, "stage")
	rep.Violations[VLeak] = 2
	rep.Drained = false
	rep.judge()
	if rep.Passed || len(rep.Failures) != 2 || !strings.Contains(rep.Failures[0], "canary") {
		t.Fatalf("failures %q", rep.Failures)
	}
	var txt bytes.Buffer
	if err := rep.WriteText(&txt); err != nil || !strings.Contains(txt.String(), "FAILED") {
		t.Fatalf("text report: %v\n%s", err, txt.String())
	}
}

// TestReportHTML checks that the page is self-contained and carries the
// three plots. With LOADTEST_PLOT_DIR set, it also writes the page and the
// plots as PNG there, to look at.
func TestReportHTML(t *testing.T) {
	for _, mode := range []string{"stage", "baseline"} {
		t.Run(mode, func(t *testing.T) {
			rep := syntheticReport(t, mode)
			var b bytes.Buffer
			if err := rep.WriteHTML(&b); err != nil {
				t.Fatal(err)
			}
			html := b.String()
			want := 3
			if mode == "baseline" {
				want = 2
			}
			if n := strings.Count(html, "<svg"); n != want {
				t.Errorf("%d inline svg plots, want %d", n, want)
			}
			bare := strings.NewReplacer(`"http://www.w3.org/2000/svg"`, "", `"http://www.w3.org/1999/xlink"`, "").Replace(html)
			for _, banned := range []string{"<script", "http:", "https:", "<link", "@import"} {
				if strings.Contains(bare, banned) {
					t.Errorf("page is not self-contained: contains %q", banned)
				}
			}
			for _, s := range []string{"Throughput over time", "Latency distribution", "events generated", "passed"} {
				if !strings.Contains(html, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			if dir := os.Getenv("LOADTEST_PLOT_DIR"); dir != "" {
				if err := rep.WriteFiles(filepath.Join(dir, mode)); err != nil {
					t.Fatal(err)
				}
				for name, pl := range map[string]*plot.Plot{"throughput": rep.ThroughputPlot(), "latency": rep.LatencyPlot(), "propagation": rep.PropagationPlot()} {
					f, err := os.Create(filepath.Join(dir, mode, name+".png"))
					if err != nil {
						t.Fatal(err)
					}
					if err := WritePNG(pl, f); err != nil {
						t.Fatal(err)
					}
					f.Close()
				}
			}
		})
	}
}
