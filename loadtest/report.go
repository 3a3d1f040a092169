package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is the result of a run: what was generated, what the oracle found,
// and the measurements. It round-trips through JSON (report.json), and the
// text and HTML reports are rendered from it alone.
type Report struct {
	RunID  string `json:"run_id"`
	Mode   string `json:"mode"` // "stage" or "baseline"
	Passed bool   `json:"passed"`
	// Failures explains, one sentence each, why the run did not pass.
	Failures []string `json:"failures,omitempty"`

	Started         time.Time `json:"started"`
	GenerationEnded time.Time `json:"generation_ended"`
	Ended           time.Time `json:"ended"`
	Drained         bool      `json:"drained"` // every input was accounted for before the drain timeout

	Settings    Settings           `json:"settings"`
	Counts      Counts             `json:"counts"`
	Consent     ConsentSummary     `json:"consent"`
	Throughput  Throughput         `json:"throughput"`
	Latency     LatencySummary     `json:"latency"`
	Propagation PropagationSummary `json:"propagation"`

	Violations map[string]int64 `json:"violations"`
	Warnings   map[string]int64 `json:"warnings"`
	Examples   []Violation      `json:"examples,omitempty"`
	Stages     []StageResult    `json:"stages,omitempty"`
}

// Settings are the parts of Config a reader needs to interpret the numbers.
type Settings struct {
	Brokers          []string `json:"brokers"`
	Topics           Topics   `json:"topics"`
	DurationSeconds  float64  `json:"duration_seconds"`
	Events           int64    `json:"events"`
	Rate             float64  `json:"rate"`
	ChurnRate        float64  `json:"churn_rate"`
	Tenants          int      `json:"tenants"`
	UsersPerTenant   int      `json:"users_per_tenant"`
	MalformedRatio   float64  `json:"malformed_ratio"`
	Seed             uint64   `json:"seed"`
	MaxStalenessMs   float64  `json:"max_staleness_ms"`
	BatchAllowanceMs float64  `json:"batch_allowance_ms"`
	Instances        int      `json:"instances"`
	KillOne          bool     `json:"kill_one"`
	Canaries         int      `json:"canaries"`
}

// ConsentSummary counts the consent writes of the run.
type ConsentSummary struct {
	Seeded     int64 `json:"seeded"`     // records written before the stage started
	Writes     int64 `json:"writes"`     // churn records written during the run
	Tombstones int64 `json:"tombstones"` // of those, null values
	Malformed  int64 `json:"malformed"`  // of those, invalid JSON or unknown levels
	Receipts   int64 `json:"receipts"`   // consent receipts the stage wrote to the audit topic
	Uncertain  int64 `json:"uncertain"`  // writes whose acknowledgement the run did not see (cancelled at the end)
}

// Throughput summarises the per-second series.
type Throughput struct {
	GeneratedPerSec float64        `json:"generated_per_sec"` // inputs produced / generation time
	ProcessedPerSec float64        `json:"processed_per_sec"` // inputs accounted for / (last first-outcome − first input)
	PeakPerSec      int64          `json:"peak_per_sec"`      // busiest second of first outcomes
	Series          []SecondSample `json:"series"`
}

// LatencySummary is the end-to-end latency: input record timestamp to the
// timestamp of the first record accounting for it (output, denial or
// quarantine), in milliseconds.
type LatencySummary struct {
	Count     int64    `json:"count"`
	P50Ms     float64  `json:"p50_ms"`
	P90Ms     float64  `json:"p90_ms"`
	P99Ms     float64  `json:"p99_ms"`
	P999Ms    float64  `json:"p999_ms"`
	MaxMs     float64  `json:"max_ms"`
	Histogram []Bucket `json:"histogram"`
}

// Bucket counts the samples in (previous UpperMs, UpperMs].
type Bucket struct {
	UpperMs float64 `json:"upper_ms"`
	Count   int64   `json:"count"`
}

// PropagationSummary is the revocation propagation: for each consent write
// that made some subject more restricted, the time from its acknowledgement
// to the last event of that subject still forwarded at the old level.
type PropagationSummary struct {
	Revocations int64         `json:"revocations"` // writes that made some (subject, category) more restrictive
	Observed    int64         `json:"observed"`    // of those, with an outcome of an affected subject after the ack
	Late        int64         `json:"late"`        // ... with a forward at the old level after the ack
	P50Ms       float64       `json:"p50_ms"`      // over observed revocations (0 when nothing was late)
	P99Ms       float64       `json:"p99_ms"`
	MaxMs       float64       `json:"max_ms"`
	BoundMs     float64       `json:"bound_ms"`   // max_staleness + batch allowance
	OverBound   int64         `json:"over_bound"` // observed delays above the bound (each also a too_permissive violation)
	Samples     []Propagation `json:"samples"`
}

// StageResult is what happened to one stage instance.
type StageResult struct {
	Index  int    `json:"index"`
	Killed bool   `json:"killed"`
	Error  string `json:"error,omitempty"`
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencyBuckets are log-spaced, 10 per decade from 0.1 ms to 1000 s.
func latencyBuckets() []Bucket {
	var b []Bucket
	for e := -10; e <= 60; e++ {
		b = append(b, Bucket{UpperMs: math.Pow(10, float64(e)/10)})
	}
	return b
}

func summarizeLatency(ms []float64) LatencySummary {
	s := slices.Clone(ms)
	slices.Sort(s)
	l := LatencySummary{Count: int64(len(s)), P50Ms: percentile(s, .5), P90Ms: percentile(s, .9),
		P99Ms: percentile(s, .99), P999Ms: percentile(s, .999)}
	if len(s) > 0 {
		l.MaxMs = s[len(s)-1]
	}
	b := latencyBuckets()
	j := 0
	for _, v := range s {
		for j < len(b)-1 && v > b[j].UpperMs {
			j++
		}
		b[j].Count++
	}
	// Trim empty buckets at both ends so the plot covers the data.
	lo, hi := 0, len(b)
	for lo < hi && b[lo].Count == 0 {
		lo++
	}
	for hi > lo && b[hi-1].Count == 0 {
		hi--
	}
	l.Histogram = b[lo:hi]
	return l
}

func summarizePropagation(ps []Propagation, bound time.Duration) PropagationSummary {
	s := PropagationSummary{Revocations: int64(len(ps)), BoundMs: float64(bound) / 1e6, Samples: ps}
	var d []float64
	for _, p := range ps {
		if !p.Observed {
			continue
		}
		s.Observed++
		d = append(d, p.DelayMs)
		if p.DelayMs > 0 {
			s.Late++
		}
		if p.DelayMs > s.BoundMs {
			s.OverBound++
		}
	}
	slices.Sort(d)
	s.P50Ms, s.P99Ms = percentile(d, .5), percentile(d, .99)
	if len(d) > 0 {
		s.MaxMs = d[len(d)-1]
	}
	return s
}

func summarizeThroughput(series []SecondSample, generated int64, genTime time.Duration, first, last time.Time, accounted int64) Throughput {
	t := Throughput{Series: series}
	if genTime > 0 {
		t.GeneratedPerSec = float64(generated) / genTime.Seconds()
	}
	if span := last.Sub(first); span > 0 {
		t.ProcessedPerSec = float64(accounted) / span.Seconds()
	}
	for _, s := range series {
		t.PeakPerSec = max(t.PeakPerSec, s.Forwarded+s.Denied+s.Quarantined)
	}
	return t
}

// explainViolation is one sentence per violation kind, for the reports.
var explainViolation = map[string]string{
	VLost:             "inputs that never produced an output, a denial audit record or a quarantine record (data loss)",
	VLeak:             "forwarded records still containing a canary their decision level must remove (credentials at allow; all PII at anonymized)",
	VPayloadInSide:    "quarantine or audit records containing payload bytes (they must carry coordinates and reasons only)",
	VTooPermissive:    "events forwarded at a more permissive level than any consent state the stage could legitimately have used, allowing for max_staleness plus one batch",
	VInvalidJSON:      "forwarded values that are not valid JSON",
	VEventIDChanged:   "forwarded values whose event_id differs from the input's",
	VMalformedForward: "malformed inputs (invalid JSON, no user_id) that were forwarded or denied instead of quarantined",
	VUnexpectedQuar:   "well-formed inputs that were quarantined",
	VBadDecision:      "output records without a valid anonproxy-decision header",
	VBadSource:        "output records without a parsable anonproxy-source header",
	VWrongOutput:      "events forwarded to another stream's output topic",
	VAuditSubject:     "denial audit records naming the wrong subject key",
}

var explainWarning = map[string]string{
	WOverRestrictive: "outcomes more restrictive than every consent state the stage could have used (not a leak; a consent lookup that misses, e.g. a key-encoding mismatch, shows up here)",
	WUnknownAudit:    "audit records of an unknown kind",
	WForeign:         "records of the stage whose source is not an input of this run (earlier runs, other producers)",
}

// verdictSentences turns the counts into the reasons a run failed.
func (r *Report) judge() {
	r.Failures = nil
	kinds := make([]string, 0, len(r.Violations))
	for k := range r.Violations {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		if n := r.Violations[k]; n > 0 {
			r.Failures = append(r.Failures, fmt.Sprintf("%d %s: %s.", n, k, explainViolation[k]))
		}
	}
	if !r.Drained {
		r.Failures = append(r.Failures, "the oracle's drain timed out before every input was accounted for.")
	}
	for _, s := range r.Stages {
		if s.Error != "" && !s.Killed {
			r.Failures = append(r.Failures, fmt.Sprintf("stage instance %d failed: %s.", s.Index, s.Error))
		}
	}
	r.Passed = len(r.Failures) == 0
}

// WriteText writes the terminal summary.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "anonproxy load test %s (%s mode): %s\n", r.RunID, r.Mode, verdict)
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  ✗ %s\n", f)
	}
	c := r.Counts
	fmt.Fprintf(&b, "\nevents     %d generated (%d malformed), %d read back; %d forwarded, %d denied, %d quarantined, %d lost\n",
		c.Expected, c.Malformed, c.InputsRead, c.Forwarded, c.Denied, c.Quarantined, c.Lost)
	fmt.Fprintf(&b, "records    %d output (%d allow, %d anonymized), %d denial audit, %d quarantine; %d duplicates (%d with a different outcome)\n",
		c.ForwardedRecords, c.ForwardedAllow, c.ForwardedAnonymized, c.DeniedRecords, c.QuarantinedRecords, c.Duplicates, c.DuplicatesDiffering)
	t := r.Throughput
	fmt.Fprintf(&b, "throughput %.0f events/s generated, %.0f events/s processed (peak %d/s)\n",
		t.GeneratedPerSec, t.ProcessedPerSec, t.PeakPerSec)
	l := r.Latency
	fmt.Fprintf(&b, "latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (%d events)\n",
		fmtMs(l.P50Ms), fmtMs(l.P90Ms), fmtMs(l.P99Ms), fmtMs(l.P999Ms), fmtMs(l.MaxMs), l.Count)
	if r.Mode != "baseline" {
		p := r.Propagation
		fmt.Fprintf(&b, "revocation %d revocations, %d observed, %d late; propagation p50 %s  p99 %s  max %s  (bound %s, %d over)\n",
			p.Revocations, p.Observed, p.Late, fmtMs(p.P50Ms), fmtMs(p.P99Ms), fmtMs(p.MaxMs), fmtMs(p.BoundMs), p.OverBound)
		cs := r.Consent
		fmt.Fprintf(&b, "consent    %d seeded, %d churn writes (%d tombstones, %d malformed), %d receipts in audit\n",
			cs.Seeded, cs.Writes, cs.Tombstones, cs.Malformed, cs.Receipts)
	}
	for k, n := range r.Warnings {
		if n > 0 {
			fmt.Fprintf(&b, "warning    %d %s: %s\n", n, k, explainWarning[k])
		}
	}
	for _, e := range r.Examples {
		fmt.Fprintf(&b, "  example  %s %s %s: %s\n", e.Kind, e.Source, e.EventID, e.Detail)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func fmtMs(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0fms", ms)
	default:
		return fmt.Sprintf("%.2fms", ms)
	}
}

// WriteFiles writes report.json, report.txt and report.html into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("loadtest: report dir: %w", err)
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("loadtest: report json: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(j, '\n'), 0o644); err != nil {
		return fmt.Errorf("loadtest: write report.json: %w", err)
	}
	var txt strings.Builder
	_ = r.WriteText(&txt)
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(txt.String()), 0o644); err != nil {
		return fmt.Errorf("loadtest: write report.txt: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return fmt.Errorf("loadtest: write report.html: %w", err)
	}
	if err := r.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
