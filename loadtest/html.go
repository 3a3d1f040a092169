package loadtest

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	colProduced  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colProcessed = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colDenied    = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colBound     = color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}
)

// ThroughputPlot plots events per second over the run: inputs produced and
// inputs accounted for (first outcome), by record timestamp.
func (r *Report) ThroughputPlot() *plot.Plot {
	p := plot.New()
	p.Title.Text = "Throughput: events per second"
	p.X.Label.Text = "seconds since the start of generation"
	p.Y.Label.Text = "events / s"
	var prod, proc, deny plotter.XYs
	for _, s := range r.Throughput.Series {
		if s.Second < 0 {
			continue
		}
		x := float64(s.Second)
		prod = append(prod, plotter.XY{X: x, Y: float64(s.Produced)})
		proc = append(proc, plotter.XY{X: x, Y: float64(s.Forwarded + s.Denied + s.Quarantined)})
		deny = append(deny, plotter.XY{X: x, Y: float64(s.Denied)})
	}
	addLine(p, prod, colProduced, "produced to the input topics")
	addLine(p, proc, colProcessed, "processed (forwarded + denied + quarantined)")
	if r.Mode != "baseline" {
		addLine(p, deny, colDenied, "of which denied")
	}
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

func addLine(p *plot.Plot, xys plotter.XYs, c color.Color, name string) {
	if len(xys) == 0 {
		return
	}
	sort.Slice(xys, func(i, j int) bool { return xys[i].X < xys[j].X })
	l, err := plotter.NewLine(xys)
	if err != nil {
		return
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
}

// LatencyPlot plots the cumulative distribution of end-to-end latency on a
// logarithmic time axis, with the p50, p99 and p99.9 marked.
func (r *Report) LatencyPlot() *plot.Plot {
	p := plot.New()
	p.Title.Text = "End-to-end latency (cumulative)"
	p.X.Label.Text = "latency, ms (log scale)"
	p.Y.Label.Text = "% of events at or below"
	var xys plotter.XYs
	var total, cum int64
	for _, b := range r.Latency.Histogram {
		total += b.Count
	}
	for _, b := range r.Latency.Histogram {
		cum += b.Count
		xys = append(xys, plotter.XY{X: b.UpperMs, Y: 100 * float64(cum) / float64(max(total, 1))})
	}
	if len(xys) > 0 {
		addLine(p, xys, colProcessed, "events")
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		for _, m := range []struct {
			name string
			v    float64
		}{{"p50", r.Latency.P50Ms}, {"p99", r.Latency.P99Ms}, {"p99.9", r.Latency.P999Ms}} {
			if m.v <= 0 {
				continue
			}
			addVLine(p, m.v, 0, 100, colBound, fmt.Sprintf("%s = %s", m.name, fmtMs(m.v)))
		}
	}
	p.Y.Min, p.Y.Max = 0, 100
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p
}

func addVLine(p *plot.Plot, x, y0, y1 float64, c color.Color, name string) {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: y0}, {X: x, Y: y1}})
	if err != nil {
		return
	}
	l.Color = c
	l.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
	p.Add(l)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: x, Y: y1 * 0.96}}, Labels: []string{" " + name}})
	if err == nil {
		p.Add(lb)
	}
}

// PropagationPlot plots, for every observed revocation, when it was
// acknowledged and how long events of its subjects were still forwarded at
// the old level afterwards, against the guaranteed bound.
func (r *Report) PropagationPlot() *plot.Plot {
	p := plot.New()
	p.Title.Text = "Revocation propagation"
	p.X.Label.Text = "consent write acknowledged at, seconds since the start of generation"
	p.Y.Label.Text = "last forward at the old level after the ack, ms"
	var xys plotter.XYs
	maxX := 1.0
	for _, s := range r.Propagation.Samples {
		if !s.Observed {
			continue
		}
		x := s.Acked.Sub(r.Started).Seconds()
		maxX = math.Max(maxX, x)
		xys = append(xys, plotter.XY{X: x, Y: s.DelayMs})
	}
	if len(xys) > 0 {
		sc, err := plotter.NewScatter(xys)
		if err == nil {
			sc.GlyphStyle.Color = colDenied
			sc.GlyphStyle.Shape = draw.CircleGlyph{}
			sc.GlyphStyle.Radius = vg.Points(2.5)
			p.Add(sc)
			p.Legend.Add("one revocation", sc)
		}
	}
	if b := r.Propagation.BoundMs; b > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: 0, Y: b}, {X: maxX, Y: b}})
		if err == nil {
			l.Color = colBound
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("guaranteed bound %s (max_staleness + one batch)", fmtMs(b)), l)
		}
		p.Y.Max = math.Max(b*1.15, r.Propagation.MaxMs*1.1)
	}
	p.Y.Min = 0
	p.X.Min = 0
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// plotSVG renders a plot as an inline <svg> element (the XML prolog cut).
func plotSVG(p *plot.Plot) template.HTML {
	wt, err := p.WriterTo(8*vg.Inch, 3.6*vg.Inch, "svg")
	if err != nil {
		return template.HTML("<p>plot failed: " + template.HTMLEscapeString(err.Error()) + "</p>")
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return template.HTML("<p>plot failed: " + template.HTMLEscapeString(err.Error()) + "</p>")
	}
	s := buf.String()
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	return template.HTML(s) //nolint:gosec // gonum's own SVG output, no user input
}

// WritePNG renders one of the plots as PNG (for a quick look at a plot).
func WritePNG(p *plot.Plot, w io.Writer) error {
	wt, err := p.WriterTo(8*vg.Inch, 3.6*vg.Inch, "png")
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

type htmlNumber struct {
	Name, Value, Explain string
}

// WriteHTML writes a self-contained page (inline CSS and SVG, no scripts,
// nothing fetched) that explains the run to someone who has not seen the
// load test before.
func (r *Report) WriteHTML(w io.Writer) error {
	c, t, l, pr := r.Counts, r.Throughput, r.Latency, r.Propagation
	nums := []htmlNumber{
		{"events generated", fmt.Sprintf("%d", c.Expected), fmt.Sprintf("Synthetic chat messages, shared files and e-mail-like messages written to the three input topics; %d of them deliberately malformed (invalid JSON, no user_id), which the stage must quarantine.", c.Malformed)},
		{"forwarded", fmt.Sprintf("%d", c.Forwarded), fmt.Sprintf("Inputs that reached an output topic. Output records: %d with decision allow (only credentials removed), %d anonymized (all PII replaced, ids pseudonymized).", c.ForwardedAllow, c.ForwardedAnonymized)},
		{"denied", fmt.Sprintf("%d", c.Denied), "Inputs whose subject's consent said deny: not forwarded, but recorded in the audit topic."},
		{"quarantined", fmt.Sprintf("%d", c.Quarantined), "Inputs the stage could not process (invalid JSON, no resolvable tenant or user id): recorded in the quarantine topic without payload."},
		{"lost", fmt.Sprintf("%d", c.Lost), "Inputs with none of the three outcomes when the run ended. Anything above zero is data loss."},
		{"duplicates", fmt.Sprintf("%d", c.Duplicates), fmt.Sprintf("Outcome records beyond the first for the same input (same anonproxy-source). Delivery is at-least-once, so duplicates after restarts or rebalances are expected and only counted; %d of them had a different outcome than the first (e.g. denied, then forwarded after a consent change).", c.DuplicatesDiffering)},
		{"generated rate", fmt.Sprintf("%.0f events/s", t.GeneratedPerSec), "How fast the load test wrote inputs during generation."},
		{"processed rate", fmt.Sprintf("%.0f events/s", t.ProcessedPerSec), fmt.Sprintf("Inputs accounted for, divided by the time from the first input to the last first outcome; the busiest second saw %d.", t.PeakPerSec)},
		{"latency p50 / p99 / p99.9", fmt.Sprintf("%s / %s / %s", fmtMs(l.P50Ms), fmtMs(l.P99Ms), fmtMs(l.P999Ms)), fmt.Sprintf("Time from an input record's broker timestamp to the timestamp of the first record that accounts for it; half the events took at most the p50, all but 1 in 1,000 at most the p99.9 (max %s over %d events).", fmtMs(l.MaxMs), l.Count)},
	}
	if r.Mode != "baseline" {
		nums = append(nums,
			htmlNumber{"revocations", fmt.Sprintf("%d (%d observed)", pr.Revocations, pr.Observed), fmt.Sprintf("Consent writes during the run that made some subject more restricted (%d churn writes in total, %d tombstones, %d malformed). Observed: an event of an affected subject was processed after the write was acknowledged, so the stage had a chance to get it wrong.", r.Consent.Writes, r.Consent.Tombstones, r.Consent.Malformed)},
			htmlNumber{"propagation p50 / p99 / max", fmt.Sprintf("%s / %s / %s", fmtMs(pr.P50Ms), fmtMs(pr.P99Ms), fmtMs(pr.MaxMs)), fmt.Sprintf("For each observed revocation, the time from the broker's acknowledgement to the last event of that subject still forwarded at the old, more permissive level (0 if none was). The guarantee is %s (max_staleness plus one batch); %d revocations exceeded it.", fmtMs(pr.BoundMs), pr.OverBound)},
		)
	}
	type kv struct {
		Kind, Explain string
		N             int64
	}
	var viol, warn []kv
	for k, n := range r.Violations {
		if n > 0 {
			viol = append(viol, kv{k, explainViolation[k], n})
		}
	}
	for k, n := range r.Warnings {
		if n > 0 {
			warn = append(warn, kv{k, explainWarning[k], n})
		}
	}
	sort.Slice(viol, func(i, j int) bool { return viol[i].Kind < viol[j].Kind })
	sort.Slice(warn, func(i, j int) bool { return warn[i].Kind < warn[j].Kind })
	data := map[string]any{
		"R": r, "Numbers": nums, "Viol": viol, "Warn": warn,
		"Throughput": plotSVG(r.ThroughputPlot()), "Latency": plotSVG(r.LatencyPlot()),
		"Propagation": template.HTML(""), "Baseline": r.Mode == "baseline",
	}
	if r.Mode != "baseline" {
		data["Propagation"] = plotSVG(r.PropagationPlot())
	}
	return htmlTmpl.Execute(w, data)
}

var htmlTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>anonproxy load test {{.R.RunID}}</title>
<style>
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
.pass{color:#0a7d28}.fail{color:#b00020}
table{border-collapse:collapse;width:100%}td,th{text-align:left;vertical-align:top;padding:.35rem .6rem;border-bottom:1px solid #eee}
td.n{white-space:nowrap;font-variant-numeric:tabular-nums;font-weight:600}
figure{margin:1rem 0}figcaption{color:#555;font-size:.9rem}svg{max-width:100%;height:auto}
code{background:#f4f4f4;padding:0 .2rem}
</style></head><body>
<h1>anonproxy load test <code>{{.R.RunID}}</code>:
{{if .R.Passed}}<span class="pass">passed</span>{{else}}<span class="fail">failed</span>{{end}}</h1>
<p>{{if .Baseline}}<strong>Baseline mode.</strong> Instead of anonproxy, a plain kafka-go copy
(consumer group, batch fetch, writes acknowledged by all in-sync replicas, no processing) moved
every input record to its output topic. This measures what Kafka and the client cost on this
machine, the ceiling the stage is compared with. Only loss and duplicates are checked: the copy
forwards everything as it is.{{else}}Synthetic customer-content events were written to the
stage's input topics while consent records of their tenants and users changed underneath. An
independent oracle read back the inputs and everything the stage wrote (outputs, quarantine, audit)
and checked that every input was accounted for, that no output kept PII its consent level must
remove (known <em>canary</em> values: e-mails, phone numbers, card numbers, IBANs, SSNs, IP addresses,
cloud keys, GitHub tokens, private keys, secrets in URLs, searched byte for byte, also inside
decoded file contents), and that no event was forwarded at a more permissive level than its
subject's consent allowed once the staleness bound had passed.{{end}}
Run from {{.R.Started.Format "2006-01-02 15:04:05 MST"}} to {{.R.Ended.Format "15:04:05"}},
{{.R.Settings.Instances}} instance(s){{if .R.Settings.KillOne}}, one of them killed halfway{{end}}.</p>
{{if not .R.Passed}}<h2 class="fail">Why it failed</h2><ul>{{range .R.Failures}}<li>{{.}}</li>{{end}}</ul>{{end}}

<h2>The numbers</h2>
<table>{{range .Numbers}}<tr><th>{{.Name}}</th><td class="n">{{.Value}}</td><td>{{.Explain}}</td></tr>{{end}}</table>

<h2>Throughput over time</h2>
<figure>{{.Throughput}}<figcaption>Events per second by record timestamp: blue is what the load
test produced, orange what was processed (first output, denial or quarantine record per input). When
orange follows blue, the stage keeps up; a gap that grows is a backlog; orange after blue ends is the
drain.</figcaption></figure>

<h2>Latency distribution</h2>
<figure>{{.Latency}}<figcaption>For every input, the time from its broker timestamp to the
timestamp of the first record that accounts for it, as a cumulative curve: read a point as "this
percentage of events took at most this long". The dashed lines mark the percentiles from the table.
</figcaption></figure>

{{if not .Baseline}}<h2>Revocation propagation</h2>
<figure>{{.Propagation}}<figcaption>Each dot is a consent write that made some subject more
restricted and after which that subject still had events processed. Its height is how long after
the broker acknowledged the write the stage still forwarded that subject's events at the old, more
permissive level (0: never). Dots above the dashed line break the guarantee.</figcaption></figure>{{end}}

<h2>Checks</h2>
{{if .Viol}}<table><tr><th>violation</th><th>count</th><th>meaning</th></tr>
{{range .Viol}}<tr><td><code>{{.Kind}}</code></td><td class="n">{{.N}}</td><td>{{.Explain}}</td></tr>{{end}}</table>
{{else}}<p class="pass">No violation of any kind.</p>{{end}}
{{if .Warn}}<p>Warnings (reported, not failed on):</p><table>
{{range .Warn}}<tr><td><code>{{.Kind}}</code></td><td class="n">{{.N}}</td><td>{{.Explain}}</td></tr>{{end}}</table>{{end}}
{{if .R.Examples}}<p>First examples (coordinates and event ids only, never payload):</p><table>
<tr><th>kind</th><th>source</th><th>event</th><th>detail</th></tr>
{{range .R.Examples}}<tr><td><code>{{.Kind}}</code></td><td>{{.Source}}</td><td>{{.EventID}}</td><td>{{.Detail}}</td></tr>{{end}}</table>{{end}}

<h2>Settings</h2>
<table>
<tr><th>brokers</th><td>{{range .R.Settings.Brokers}}{{.}} {{end}}</td></tr>
<tr><th>inputs → outputs</th><td>{{range $i, $t := .R.Settings.Topics.Inputs}}{{$t}} → {{index $.R.Settings.Topics.Outputs $i}}; {{end}}</td></tr>
<tr><th>quarantine, audit, consent</th><td>{{.R.Settings.Topics.Quarantine}}, {{.R.Settings.Topics.Audit}}, {{.R.Settings.Topics.Consent}}</td></tr>
<tr><th>target rate</th><td>{{if .R.Settings.Rate}}{{.R.Settings.Rate}} events/s{{else}}as fast as possible{{end}}</td></tr>
<tr><th>duration / events</th><td>{{.R.Settings.DurationSeconds}} s / {{.R.Settings.Events}}</td></tr>
<tr><th>subjects</th><td>{{.R.Settings.Tenants}} tenants × {{.R.Settings.UsersPerTenant}} users; consent churn {{.R.Settings.ChurnRate}} writes/s</td></tr>
<tr><th>staleness bound</th><td>max_staleness {{.R.Settings.MaxStalenessMs}} ms + batch allowance {{.R.Settings.BatchAllowanceMs}} ms</td></tr>
<tr><th>seed, canaries</th><td>{{.R.Settings.Seed}}, {{.R.Settings.Canaries}} canary values</td></tr>
</table>
<p>The same numbers are in <code>report.json</code> next to this page.</p>
</body></html>
`))
