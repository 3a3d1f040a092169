package loadtest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/segmentio/kafka-go"
	"github.com/tidwall/gjson"
)

// Headers the stage writes (CONTRACT §5 and the loadtest issue).
const (
	HeaderDecision = "anonproxy-decision"
	HeaderSource   = "anonproxy-source"
	HeaderReason   = "anonproxy-reason"
)

// Violation kinds: any of them fails the run.
const (
	VLost             = "lost"                // an input with no outcome after the drain
	VLeak             = "leak"                // a forbidden canary in a forwarded record
	VPayloadInSide    = "payload_in_side"     // a canary in a quarantine or audit record
	VTooPermissive    = "too_permissive"      // forwarded above what consent allowed, past the staleness bound
	VInvalidJSON      = "invalid_json_output" // a forwarded value that is not valid JSON
	VEventIDChanged   = "event_id_changed"    // output event_id differs from the input's
	VMalformedForward = "malformed_forwarded" // a malformed input forwarded or denied instead of quarantined
	VUnexpectedQuar   = "unexpected_quarantine"
	VBadDecision      = "bad_decision_header" // missing or unknown anonproxy-decision
	VBadSource        = "bad_source_header"   // missing or unparsable anonproxy-source
	VWrongOutput      = "wrong_output_topic"  // forwarded to another stream's output
	VAuditSubject     = "audit_subject_mismatch"
)

// Warning kinds: reported, not failed on.
const (
	WOverRestrictive = "over_restrictive" // denied or anonymized though consent allowed more at every candidate state
	WUnknownAudit    = "unknown_audit_record"
	WForeign         = "foreign_record" // an output whose source is not an input of this run
)

// A Violation is one example of a failed check, with enough to find the
// records: never payload bytes beyond canary kinds.
type Violation struct {
	Kind    string `json:"kind"`
	Source  string `json:"source,omitempty"`
	EventID string `json:"event_id,omitempty"`
	Detail  string `json:"detail"`
}

// At most maxExamples examples are kept, maxExamplesPerKind of each kind,
// so that one flood does not hide the other kinds.
const (
	maxExamples        = 25
	maxExamplesPerKind = 5
)

type coord struct {
	stream    uint8
	partition int32
	offset    int64
}

// Outcome kinds of an input.
const (
	outNone uint8 = iota
	outForward
	outDeny
	outQuarantine
)

type inputState struct {
	inTime    int64 // input record timestamp, unix ns; 0: not read yet
	outcome   uint8 // first outcome
	outcomes  uint16
	firstTime int64
}

// decisionRec is a forwarded or denied outcome, checked against the consent
// log once the log is final (a write in flight cannot be judged earlier).
type decisionRec struct {
	t     int64
	seq   uint64
	cat   uint8
	level consent.Level
}

type pendingRec struct {
	kind   uint8
	stream uint8
	msg    kafka.Message
}

// Oracle does the accounting of one run: it is fed the run's input records
// and everything the stage wrote (outputs, quarantine, audit), in any order,
// and decides whether every input was accounted for and every output was
// permitted. It knows the truth from the generator's Ledger and the consent
// writes from the ConsentLog. An Oracle is not safe for concurrent use: one
// goroutine feeds it.
type Oracle struct {
	runID    string
	topics   Topics
	bound    time.Duration
	baseline bool
	ledger   *Ledger
	subjects []Subject
	canaries Canaries
	consent  *ConsentLog
	t0       time.Time

	inStart map[coord]int64 // per (stream, partition) with offset 0: first offset of this run
	coords  map[coord]uint64
	inputs  []inputState
	pending map[coord][]pendingRec

	expected   int64
	inputsSeen int64
	accounted  int64

	counts     Counts
	receipts   int64
	violations map[string]int64
	warnings   map[string]int64
	examples   []Violation

	firstInput, lastOutcome int64           // unix ns
	latencies               []float64       // ms, first outcome of each input
	decisions               [][]decisionRec // per subject
	series                  map[int64]*SecondSample

	forbidAllow, forbidAnon uint64
}

// NewOracle returns an oracle for a run. t0 is the start of generation (the
// origin of the throughput series); bound is max_staleness plus the batch
// allowance. In baseline mode only loss and duplicates are checked.
func NewOracle(runID string, topics Topics, bound time.Duration, baseline bool, gen *Generator, cl *ConsentLog, t0 time.Time) *Oracle {
	return &Oracle{
		runID: runID, topics: topics.withDefaults(), bound: bound, baseline: baseline,
		ledger: gen.Ledger, subjects: gen.Subjects, canaries: gen.Canaries, consent: cl, t0: t0,
		inStart: map[coord]int64{}, coords: map[coord]uint64{}, pending: map[coord][]pendingRec{},
		violations: map[string]int64{}, warnings: map[string]int64{},
		decisions: make([][]decisionRec, len(gen.Subjects)), series: map[int64]*SecondSample{},
		forbidAllow: gen.Canaries.Forbidden(false), forbidAnon: gen.Canaries.Forbidden(true),
	}
}

// SetInputStart records the first offset this run can occupy in an input
// partition: an outcome whose source lies below it belongs to an earlier run.
func (o *Oracle) SetInputStart(stream int, partition int, offset int64) {
	o.inStart[coord{stream: uint8(stream), partition: int32(partition)}] = offset
}

// SetExpected tells the oracle how many inputs the run produced; Done is
// false before.
func (o *Oracle) SetExpected(n int64) { o.expected = n }

// Done reports whether every produced input was read and has an outcome.
func (o *Oracle) Done() bool {
	return o.expected > 0 && o.inputsSeen >= o.expected && o.accounted >= o.expected
}

// Progress returns the number of inputs read and of inputs accounted for.
func (o *Oracle) Progress() (inputs, accounted int64) { return o.inputsSeen, o.accounted }

func (o *Oracle) violate(kind, src string, seq uint64, hasSeq bool, format string, args ...any) {
	o.violations[kind]++
	if len(o.examples) < maxExamples && o.violations[kind] <= maxExamplesPerKind {
		v := Violation{Kind: kind, Source: src, Detail: fmt.Sprintf(format, args...)}
		if hasSeq {
			v.EventID = EventID(o.runID, seq)
		}
		o.examples = append(o.examples, v)
	}
}

func header(m *kafka.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

func (o *Oracle) streamOf(topic string) (uint8, bool) {
	for i, t := range o.topics.Inputs {
		if t == topic {
			return uint8(i), true
		}
	}
	return 0, false
}

// parseSource parses "<topic>/<partition>/<offset>"; the topic may contain '/'.
func (o *Oracle) parseSource(s string) (coord, bool) {
	j := strings.LastIndexByte(s, '/')
	if j < 0 {
		return coord{}, false
	}
	i := strings.LastIndexByte(s[:j], '/')
	if i < 0 {
		return coord{}, false
	}
	st, ok := o.streamOf(s[:i])
	p, err1 := strconv.ParseInt(s[i+1:j], 10, 32)
	off, err2 := strconv.ParseInt(s[j+1:], 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return coord{}, false
	}
	return coord{stream: st, partition: int32(p), offset: off}, true
}

// Input feeds one record read from input stream `stream`.
func (o *Oracle) Input(stream int, m kafka.Message) {
	if run, _ := header(&m, HeaderRun); run != o.runID {
		return
	}
	s, _ := header(&m, HeaderSeq)
	seq, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return
	}
	if _, ok := o.ledger.Get(seq); !ok {
		return
	}
	for uint64(len(o.inputs)) <= seq {
		o.inputs = append(o.inputs, inputState{})
	}
	st := &o.inputs[seq]
	if st.inTime != 0 {
		return // read twice (a producer retry wrote it twice): the first copy counts
	}
	st.inTime = m.Time.UnixNano()
	o.inputsSeen++
	if o.firstInput == 0 || st.inTime < o.firstInput {
		o.firstInput = st.inTime
	}
	o.bucket(m.Time).Produced++
	c := coord{stream: uint8(stream), partition: int32(m.Partition), offset: m.Offset}
	o.coords[c] = seq
	if ps, ok := o.pending[c]; ok {
		delete(o.pending, c)
		for _, p := range ps {
			o.outcome(p.kind, p.stream, p.msg, c, seq)
		}
	}
}

// Output feeds one record read from output stream `stream`.
func (o *Oracle) Output(stream int, m kafka.Message) {
	src, ok := header(&m, HeaderSource)
	if !ok {
		o.violate(VBadSource, "", 0, false, "output %s/%d/%d has no %s header", m.Topic, m.Partition, m.Offset, HeaderSource)
		return
	}
	o.route(outForward, uint8(stream), m, src)
}

// Quarantine feeds one record read from the quarantine topic.
func (o *Oracle) Quarantine(m kafka.Message) {
	src, ok := header(&m, HeaderSource)
	if !ok {
		src = gjson.GetBytes(m.Value, "source").String()
	}
	o.route(outQuarantine, 0, m, src)
}

// Audit feeds one record read from the audit topic.
func (o *Oracle) Audit(m kafka.Message) {
	switch gjson.GetBytes(m.Value, "kind").String() {
	case "consent":
		o.receipts++
	case "deny":
		src, ok := header(&m, HeaderSource)
		if !ok {
			src = gjson.GetBytes(m.Value, "source").String()
		}
		o.route(outDeny, 0, m, src)
	default:
		o.warnings[WUnknownAudit]++
	}
}

func (o *Oracle) route(kind, stream uint8, m kafka.Message, src string) {
	c, ok := o.parseSource(src)
	if !ok {
		if kind == outForward {
			o.violate(VBadSource, src, 0, false, "unparsable %s on %s/%d/%d", HeaderSource, m.Topic, m.Partition, m.Offset)
		} else {
			o.warnings[WForeign]++
		}
		return
	}
	if start, ok := o.inStart[coord{stream: c.stream, partition: c.partition}]; ok && c.offset < start {
		o.warnings[WForeign]++
		return
	}
	if seq, ok := o.coords[c]; ok {
		o.outcome(kind, stream, m, c, seq)
		return
	}
	o.pending[c] = append(o.pending[c], pendingRec{kind: kind, stream: stream, msg: m})
}

func (o *Oracle) bucket(t time.Time) *SecondSample {
	sec := int64(t.Sub(o.t0) / time.Second)
	if t.Before(o.t0) {
		sec = -1
	}
	b := o.series[sec]
	if b == nil {
		b = &SecondSample{Second: sec}
		o.series[sec] = b
	}
	return b
}

func (o *Oracle) outcome(kind, stream uint8, m kafka.Message, c coord, seq uint64) {
	info, _ := o.ledger.Get(seq)
	st := &o.inputs[seq]
	src := fmt.Sprintf("%s/%d/%d", o.topics.Inputs[c.stream], c.partition, c.offset)
	st.outcomes++
	if st.outcome == outNone {
		st.outcome, st.firstTime = kind, m.Time.UnixNano()
		o.accounted++
		o.lastOutcome = max(o.lastOutcome, st.firstTime)
		o.latencies = append(o.latencies, float64(st.firstTime-st.inTime)/1e6)
		b := o.bucket(m.Time)
		switch kind {
		case outForward:
			b.Forwarded++
		case outDeny:
			b.Denied++
		case outQuarantine:
			b.Quarantined++
		}
	} else {
		o.counts.Duplicates++
		if st.outcome != kind {
			o.counts.DuplicatesDiffering++
		}
	}
	switch kind {
	case outForward:
		o.counts.ForwardedRecords++
		o.checkForward(stream, m, c, seq, info, src)
	case outDeny:
		o.counts.DeniedRecords++
		if o.baseline {
			return
		}
		if info.Malformed != WellFormed {
			o.violate(VMalformedForward, src, seq, true, "%s input was denied, not quarantined", info.Malformed)
			return
		}
		o.checkSide(m, seq, info, src, "audit")
		s := o.subjects[info.Subject]
		if got := gjson.GetBytes(m.Value, "subject").String(); !sameKey(got, UserKey(s.Tenant, s.User)) {
			o.violate(VAuditSubject, src, seq, true, "audit subject %q, want %q", got, UserKey(s.Tenant, s.User))
		}
		o.decisions[info.Subject] = append(o.decisions[info.Subject],
			decisionRec{t: m.Time.UnixNano(), seq: seq, cat: info.Stream, level: consent.LevelDeny})
	case outQuarantine:
		o.counts.QuarantinedRecords++
		if o.baseline {
			return
		}
		if info.Malformed == WellFormed {
			o.violate(VUnexpectedQuar, src, seq, true, "well-formed input quarantined (reason %q)",
				gjson.GetBytes(m.Value, "reason").String())
		}
		o.checkSide(m, seq, info, src, "quarantine")
	}
}

// sameKey compares consent keys after percent-decoding, so that the hex
// case of an escape does not matter.
func sameKey(a, b string) bool {
	if a == b {
		return true
	}
	da, err1 := url.PathUnescape(a)
	db, err2 := url.PathUnescape(b)
	return err1 == nil && err2 == nil && da == db
}

// checkSide fails any canary of the event found in a quarantine or audit
// record: those carry coordinates and reasons, never payload.
func (o *Oracle) checkSide(m kafka.Message, seq uint64, info EventInfo, src, what string) {
	found := o.canaries.Find(m.Value, info.Canaries) | o.canaries.Find(m.Key, info.Canaries)
	for _, h := range m.Headers {
		found |= o.canaries.Find(h.Value, info.Canaries)
	}
	if found != 0 {
		o.violate(VPayloadInSide, src, seq, true, "%s record carries %v", what, o.canaries.Kinds(found))
	}
}

func (o *Oracle) checkForward(stream uint8, m kafka.Message, c coord, seq uint64, info EventInfo, src string) {
	if o.baseline {
		return
	}
	if stream != c.stream {
		o.violate(VWrongOutput, src, seq, true, "input of %s forwarded to %s", o.topics.Inputs[c.stream], m.Topic)
	}
	d, _ := header(&m, HeaderDecision)
	var level consent.Level
	switch d {
	case "allow":
		level = consent.LevelAllow
	case "anonymized":
		level = consent.LevelAnonymized
	default:
		o.violate(VBadDecision, src, seq, true, "%s is %q", HeaderDecision, d)
		level = consent.LevelAllow // judge the bytes by the weakest rules
	}
	if info.Malformed != WellFormed {
		o.violate(VMalformedForward, src, seq, true, "%s input forwarded", info.Malformed)
		return
	}
	if !gjson.ValidBytes(m.Value) {
		o.violate(VInvalidJSON, src, seq, true, "forwarded value of %d bytes is not valid JSON", len(m.Value))
		return
	}
	if got := gjson.GetBytes(m.Value, "event_id").String(); got != EventID(o.runID, seq) {
		o.violate(VEventIDChanged, src, seq, true, "event_id %q", got)
	}
	forbid := info.Canaries & o.forbidAllow
	if level == consent.LevelAnonymized {
		forbid = info.Canaries & o.forbidAnon
	}
	if forbid != 0 {
		found := o.canaries.Find(m.Value, forbid)
		for _, content := range decodedContents(m.Value) {
			found |= o.canaries.Find(content, forbid&^found)
		}
		if found != 0 {
			o.violate(VLeak, src, seq, true, "%s output carries %v", d, o.canaries.Kinds(found))
		}
	}
	o.decisions[info.Subject] = append(o.decisions[info.Subject],
		decisionRec{t: m.Time.UnixNano(), seq: seq, cat: info.Stream, level: level})
}

// decodedContents returns the decoded file contents of an output value
// (file.content_b64 and attachments[].content_b64, gunzipped where
// content_encoding says gzip), where canaries hide from a raw byte search.
func decodedContents(v []byte) [][]byte {
	var out [][]byte
	add := func(b64, enc string) {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return
		}
		if enc == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				return
			}
			raw, _ = io.ReadAll(io.LimitReader(zr, 64<<20))
		}
		out = append(out, raw)
	}
	if f := gjson.GetBytes(v, "file"); f.Exists() {
		add(f.Get("content_b64").String(), f.Get("content_encoding").String())
	}
	gjson.GetBytes(v, "attachments").ForEach(func(_, a gjson.Result) bool {
		add(a.Get("content_b64").String(), a.Get("content_encoding").String())
		return true
	})
	return out
}

// Finish judges what needs the final consent log (permissive levels,
// revocation propagation) and the final loss, and returns the verdict.
func (o *Oracle) Finish() *Verdict {
	v := &Verdict{Counts: o.counts}
	v.Counts.Expected = o.expected
	v.Counts.InputsRead = o.inputsSeen
	for seq := int64(0); seq < o.expected; seq++ {
		info, _ := o.ledger.Get(uint64(seq))
		if info.Malformed != WellFormed {
			v.Counts.Malformed++
		}
		var st inputState
		if seq < int64(len(o.inputs)) {
			st = o.inputs[seq]
		}
		switch st.outcome {
		case outForward:
			v.Counts.Forwarded++
		case outDeny:
			v.Counts.Denied++
		case outQuarantine:
			v.Counts.Quarantined++
		default:
			v.Counts.Lost++
			why := "no output, denial or quarantine record"
			if st.inTime == 0 {
				why = "input record never read back from the input topic"
			}
			o.violate(VLost, "", uint64(seq), true, "%s", why)
		}
	}
	for _, ps := range o.pending {
		o.warnings[WForeign] += int64(len(ps))
	}
	if !o.baseline {
		o.judgeDecisions(v)
		v.Propagation = o.propagation()
	}
	v.Receipts = o.receipts
	v.Violations = o.violations
	v.Warnings = o.warnings
	v.Examples = o.examples
	v.Latencies = o.latencies
	if o.firstInput != 0 {
		v.FirstInput, v.LastOutcome = time.Unix(0, o.firstInput), time.Unix(0, o.lastOutcome)
	}
	for _, b := range o.series {
		v.Series = append(v.Series, *b)
	}
	sort.Slice(v.Series, func(i, j int) bool { return v.Series[i].Second < v.Series[j].Second })
	for _, n := range o.violations {
		v.Failed += n
	}
	return v
}

func (o *Oracle) judgeDecisions(v *Verdict) {
	for subj, ds := range o.decisions {
		s := o.subjects[subj]
		for _, d := range ds {
			t := time.Unix(0, d.t)
			most, least := o.consent.Bounds(s.Tenant, s.User, int(d.cat), t, o.bound)
			switch {
			case d.level > most:
				o.violate(VTooPermissive, "", d.seq, true, "%s at %s; consent allowed at most %s (bound %v)",
					d.level, t.Format(time.RFC3339Nano), most, o.bound)
			case d.level < least:
				o.warnings[WOverRestrictive]++
			}
			if d.level == consent.LevelAllow {
				v.Counts.ForwardedAllow++
			} else if d.level == consent.LevelAnonymized {
				v.Counts.ForwardedAnonymized++
			}
		}
	}
}

// Propagation is the revocation propagation of one consent write that made
// at least one subject's effective level more restrictive.
type Propagation struct {
	Key      string    `json:"key"`
	Acked    time.Time `json:"acked"`
	Observed bool      `json:"observed"` // some event of an affected subject had an outcome after the ack
	DelayMs  float64   `json:"delay_ms"` // last forward at the old, more permissive level minus the ack; 0: none after the ack
	Subjects int       `json:"subjects"` // affected (subject, category) pairs
}

func (o *Oracle) propagation() []Propagation {
	userSubj := map[string]int{}
	tenantSubj := map[string][]int{}
	for i, s := range o.subjects {
		userSubj[UserKey(s.Tenant, s.User)] = i
		tenantSubj[TenantKey(s.Tenant)] = append(tenantSubj[TenantKey(s.Tenant)], i)
	}
	for _, ds := range o.decisions {
		slices.SortFunc(ds, func(a, b decisionRec) int { return int(a.t - b.t) })
	}
	var out []Propagation
	for _, w := range o.consent.Writes() {
		if w.seed || w.Uncertain {
			continue
		}
		var affected []int
		if i, ok := userSubj[w.Key]; ok {
			affected = []int{i}
		} else {
			affected = tenantSubj[w.Key]
		}
		p := Propagation{Key: w.Key, Acked: w.Acked}
		ack := w.Acked.UnixNano()
		for _, i := range affected {
			s := o.subjects[i]
			o.consent.mu.RLock()
			end := o.consent.nextChange(s.Tenant, s.User, w.Acked)
			var newL, oldL [numStreams]consent.Level
			for c := range numStreams {
				oldL[c] = o.consent.stateAt(s.Tenant, s.User, c, w.Acked.Add(-time.Nanosecond))
				newL[c] = o.consent.stateAt(s.Tenant, s.User, c, w.Acked)
			}
			o.consent.mu.RUnlock()
			ds := o.decisions[i]
			k := sort.Search(len(ds), func(j int) bool { return ds[j].t >= ack })
			for c := range numStreams {
				if newL[c] >= oldL[c] {
					continue
				}
				p.Subjects++
				for _, d := range ds[k:] {
					if !end.IsZero() && d.t >= end.UnixNano() {
						break
					}
					if int(d.cat) != c {
						continue
					}
					p.Observed = true
					if d.level > newL[c] {
						p.DelayMs = max(p.DelayMs, float64(d.t-ack)/1e6)
					}
				}
			}
		}
		if p.Subjects > 0 {
			out = append(out, p)
		}
	}
	return out
}

// Verdict is the oracle's result.
type Verdict struct {
	Counts      Counts
	Receipts    int64
	Failed      int64 // total violations
	Violations  map[string]int64
	Warnings    map[string]int64
	Examples    []Violation
	Latencies   []float64 // ms, one per accounted input
	FirstInput  time.Time // earliest input timestamp
	LastOutcome time.Time // latest first-outcome timestamp
	Series      []SecondSample
	Propagation []Propagation
}

// Counts are the oracle's event accounting.
type Counts struct {
	Expected            int64 `json:"expected"`             // inputs the generator produced
	InputsRead          int64 `json:"inputs_read"`          // of those, read back from the input topics
	Malformed           int64 `json:"malformed"`            // inputs generated malformed (must be quarantined)
	Forwarded           int64 `json:"forwarded"`            // inputs whose first outcome was an output record
	Denied              int64 `json:"denied"`               // ... a denial audit record
	Quarantined         int64 `json:"quarantined"`          // ... a quarantine record
	Lost                int64 `json:"lost"`                 // inputs with no outcome at all
	ForwardedAllow      int64 `json:"forwarded_allow"`      // output records with decision allow (duplicates included)
	ForwardedAnonymized int64 `json:"forwarded_anonymized"` // ... anonymized
	ForwardedRecords    int64 `json:"forwarded_records"`    // output records of this run (duplicates included)
	DeniedRecords       int64 `json:"denied_records"`
	QuarantinedRecords  int64 `json:"quarantined_records"`
	Duplicates          int64 `json:"duplicates"`           // outcome records beyond the first for the same source
	DuplicatesDiffering int64 `json:"duplicates_differing"` // ... whose kind differs from the first (e.g. denied, then forwarded after a consent change)
}

// SecondSample is one second of the run, by record timestamps.
type SecondSample struct {
	Second      int64 `json:"second"` // since the start of generation; -1: before
	Produced    int64 `json:"produced"`
	Forwarded   int64 `json:"forwarded"`
	Denied      int64 `json:"denied"`
	Quarantined int64 `json:"quarantined"`
}
