package proxy

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/segmentio/kafka-go"
	"github.com/tidwall/gjson"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/redact"
)

// Header keys written on every output record (CONTRACT §5).
const (
	HeaderDecision = "anonproxy-decision"
	HeaderSource   = "anonproxy-source"
	HeaderReason   = "anonproxy-reason"
)

// Quarantine reasons decided by the processor itself; the redaction engine
// adds its own (redact.Error.Reason).
const (
	ReasonTooLarge        = "too_large"
	ReasonInvalidJSON     = "invalid_json"
	ReasonMissingTenant   = "missing_tenant"
	ReasonMissingUser     = "missing_user"
	ReasonUnknownCategory = "unknown_category"
	ReasonDuplicateID     = "duplicate_id"
	ReasonUnknownTopic    = "unknown_topic"
	ReasonIDTooLong       = "id_too_long"
)

// Decider is the consent side of a decision: the one code path that the
// stage, replay and `anonproxy consent explain` share. *consent.Table
// implements it. Decide must be safe for concurrent use.
type Decider interface {
	Decide(tenant, user, category string) (consent.Decision, error)
}

// Outcome is what happened to one input record.
type Outcome uint8

const (
	Forwarded Outcome = iota
	Denied
	Quarantined
)

// Processor decides and redacts records; it does no I/O. The stage and
// replay run the same Processor, so a backfill decides exactly as the live
// stage would. A Processor is safe for concurrent use; each goroutine brings
// its own *Batch.
type Processor struct {
	byInput           map[string]*stream
	byName            map[string]*stream
	decider           Decider
	quarantineTopic   string
	auditTopic        string
	maxEventBytes     int
	maxRecordBytes    int // largest record the stage's producer accepts (its BatchBytes less framing)
	quarantinePayload bool
	now               func() time.Time
}

type stream struct {
	cfg        StreamConfig
	engine     *redact.Engine
	tenantPath string
	userPath   string
	tenantID   idPath
	userID     idPath
	categoryOf idPath
	allow      map[string]bool
}

// NewProcessor compiles every stream's redaction rules.
func NewProcessor(cfg *Config, streams []StreamConfig, opts redact.Options, keys *redact.Keyring, decider Decider) (*Processor, error) {
	p := &Processor{
		byInput: map[string]*stream{}, byName: map[string]*stream{},
		decider: decider, quarantineTopic: cfg.quarantine(), auditTopic: cfg.audit(),
		maxEventBytes: cfg.maxEventBytes(), maxRecordBytes: cfg.writeBatchBytes() - recordOverhead,
		quarantinePayload: cfg.QuarantinePayload, now: time.Now,
	}
	for _, sc := range streams {
		eng, err := redact.Compile(sc.StreamConfig, opts, keys)
		if err != nil {
			return nil, fmt.Errorf("proxy: stream %s: %w", sc.Name, err)
		}
		s := &stream{cfg: sc, engine: eng, tenantPath: sc.TenantPath, userPath: sc.UserPath,
			tenantID: newIDPath(sc.TenantPath), userID: newIDPath(sc.UserPath), categoryOf: newIDPath(sc.CategoryPath),
			allow: map[string]bool{}}
		for _, h := range sc.HeadersAllow {
			s.allow[h] = true
		}
		p.byInput[sc.Input], p.byName[sc.Name] = s, s
	}
	return p, nil
}

// InputTopics lists the topics the processor consumes.
func (p *Processor) InputTopics() []string {
	out := make([]string, 0, len(p.byInput))
	for t := range p.byInput {
		out = append(out, t)
	}
	return out
}

// StreamOf returns the name of the stream that consumes topic, or "".
func (p *Processor) StreamOf(topic string) string {
	if s := p.byInput[topic]; s != nil {
		return s.cfg.Name
	}
	return ""
}

// Batch holds one batch's output. It is reused across calls: Out and every
// slice in it are valid until the next Process on the same Batch. The
// zero value is ready to use; a Batch must not be shared between goroutines.
type Batch struct {
	// Out are the records to produce, in input order: forwarded events,
	// quarantine records and audit records.
	Out []kafka.Message
	// Outcomes[i] is the outcome of input i; Reasons[i] its quarantine reason or "".
	Outcomes []Outcome
	Reasons  []string
	// Redactions counts what the redaction engine replaced in this batch.
	Redactions redact.Stats
	// Decisions counts forwarded events by level (LevelAnonymized, LevelAllow).
	Forwarded [3]int

	arena []byte
	recs  []rec
	hdrs  []kafka.Header
	ev    redact.Event
}

type span struct{ start, end int }

func (s span) of(b []byte) []byte { return b[s.start:s.end:s.end] }

type rec struct {
	topic   string
	key     []byte // the input's key: owned by the input records
	value   span
	source  span
	outcome Outcome
	level   consent.Level
	reason  string
	input   int  // index of the input record, for allow-listed headers
	subject span // audit records: the key, written to the arena
}

var (
	decisionAllow      = []byte("allow")
	decisionAnonymized = []byte("anonymized")
)

// Process decides and redacts msgs, which all come from one input topic
// partition, in order. It returns an error only when the consent table
// cannot decide (consent.ErrNotReady): then nothing of the batch may be
// produced or committed. Everything else (bad events) becomes a quarantine record.
func (p *Processor) Process(b *Batch, msgs []kafka.Message) error {
	b.arena, b.recs, b.Out = b.arena[:0], b.recs[:0], b.Out[:0]
	b.Outcomes, b.Reasons = b.Outcomes[:0], b.Reasons[:0]
	b.Redactions.Reset()
	b.Forwarded = [3]int{}
	now := p.now()
	for i := range msgs {
		out, reason, err := p.one(b, i, &msgs[i], now)
		if err != nil {
			return err
		}
		b.Outcomes = append(b.Outcomes, out)
		b.Reasons = append(b.Reasons, reason)
	}
	b.ev.Reset() // no view of the last input outlives the call
	p.finish(b, msgs)
	return nil
}

func (p *Processor) one(b *Batch, i int, m *kafka.Message, now time.Time) (Outcome, string, error) {
	src := b.appendSource(m)
	s := p.byInput[m.Topic]
	if s == nil {
		return p.quarantine(b, i, m, src, nil, ReasonUnknownTopic, "no stream consumes this topic"), ReasonUnknownTopic, nil
	}
	// The key (and allow-listed headers) travel with the output too: a huge
	// key under a small value would make a record the producer refuses,
	// retried forever, stalling the partition.
	if len(m.Value) > p.maxEventBytes || len(m.Value)+carriedBytes(m, s) > p.maxRecordBytes {
		return p.quarantine(b, i, m, src, s, ReasonTooLarge, "event exceeds max_event_bytes"), ReasonTooLarge, nil
	}
	// One pass checks what must hold before anything else reads the event
	// (valid JSON; valid UTF-8, since invalid sequences are read
	// differently downstream and can rejoin PII the detectors saw split;
	// nesting of at most redact.MaxDepth, which also bounds the stack of
	// every later reader) and indexes the root's members for what follows.
	ev := &b.ev
	if err := ev.Check(m.Value); err != nil {
		reason, detail := redact.ReasonOf(err), err.Error()
		if cause := errors.Unwrap(err); cause != nil {
			detail = cause.Error() // without the offset: "not valid UTF-8"
		}
		return p.quarantine(b, i, m, src, s, reason, detail), reason, nil
	}
	var tenant string
	var tenantDup bool
	if s.tenantPath != "" {
		var ok bool
		if tenant, tenantDup, ok = s.tenantID.at(ev); !ok {
			return p.quarantine(b, i, m, src, s, ReasonMissingTenant, "no tenant id at "+s.tenantPath), ReasonMissingTenant, nil
		}
	}
	user, userDup, ok := s.userID.at(ev)
	if !ok {
		return p.quarantine(b, i, m, src, s, ReasonMissingUser, "no user id at "+s.userPath), ReasonMissingUser, nil
	}
	// No consent record can exist for ids this long (consent.MaxKeyLen), and
	// the audit record of a denial, which carries the subject key twice,
	// could outgrow what the producer accepts.
	if len(tenant)+len(user) > consent.MaxKeyLen {
		return p.quarantine(b, i, m, src, s, ReasonIDTooLong, "tenant and user id longer than a consent key"), ReasonIDTooLong, nil
	}
	// A repeated id key would let one parser see one subject and another a
	// different one: quarantine rather than guess which one consent covers.
	if tenantDup || userDup {
		return p.quarantine(b, i, m, src, s, ReasonDuplicateID, "tenant or user id key given twice"), ReasonDuplicateID, nil
	}
	category := s.cfg.Category
	if s.cfg.CategoryPath != "" {
		v, dup := s.categoryOf.value(ev)
		if dup {
			return p.quarantine(b, i, m, src, s, ReasonUnknownCategory, "category key given twice"), ReasonUnknownCategory, nil
		}
		c, ok := s.cfg.Categories[v.Str]
		if v.Type != gjson.String || !ok {
			return p.quarantine(b, i, m, src, s, ReasonUnknownCategory, "category value not in categories"), ReasonUnknownCategory, nil
		}
		category = c
	}
	d, err := p.decider.Decide(tenant, user, category)
	if err != nil {
		return 0, "", fmt.Errorf("proxy: decide: %w", err)
	}
	if d.Level == consent.LevelDeny {
		p.deny(b, i, s, src, tenant, user, category, &d, now)
		return Denied, "", nil
	}
	lvl := redact.LevelAllow
	if d.Level == consent.LevelAnonymized {
		lvl = redact.LevelAnonymized
	}
	start := len(b.arena)
	out, rerr := s.engine.AppendRedactedEvent(b.arena, ev, lvl, &b.Redactions)
	if rerr != nil {
		b.arena = b.arena[:start]
		reason := redact.ReasonOf(rerr)
		return p.quarantine(b, i, m, src, s, reason, rerr.Error()), reason, nil
	}
	// Redaction can grow an event (a 5-byte mention becomes a 31-byte
	// pseudonym): an output the producer cannot send would be retried
	// forever and stall the partition, so it is quarantined instead.
	if len(out)-start+carriedBytes(m, s) > p.maxRecordBytes {
		b.arena = out[:start]
		return p.quarantine(b, i, m, src, s, ReasonTooLarge, "redacted event exceeds the producer's write_batch_bytes"), ReasonTooLarge, nil
	}
	b.arena = out
	b.recs = append(b.recs, rec{topic: s.cfg.Output, key: m.Key, value: span{start, len(b.arena)}, source: src,
		outcome: Forwarded, level: d.Level, input: i})
	b.Forwarded[d.Level]++
	return Forwarded, "", nil
}

// recordOverhead is what a produced record needs beyond its key, value and
// copied headers: record framing and the stage's own headers (the source
// header holds a topic name of at most 249 bytes).
const recordOverhead = 4 << 10

// maxQuarantineKey bounds the input key a quarantine record keeps; a larger
// key is dropped so the quarantine record itself always fits the producer.
const maxQuarantineKey = 4 << 10

// carriedBytes is what an output record of m carries besides its value:
// the key and the allow-listed headers.
func carriedBytes(m *kafka.Message, s *stream) int {
	n := len(m.Key)
	for _, h := range m.Headers {
		if s.allow[h.Key] {
			n += len(h.Key) + len(h.Value)
		}
	}
	return n
}

// idPath reads a value (an id, a category) from a checked event along a
// plain gjson path (config check allows no modifiers, pipes, wildcards or
// '#'): keys separated by '.', '\\' escaping the next character, a number
// indexing an array. It walks the path itself rather than asking gjson, so
// that it can see every member that carries a segment's name: a key given
// twice at any level would let one parser read one value and another a
// different one.
type idPath struct {
	segs []string // unescaped
}

func newIDPath(path string) idPath {
	var segs []string
	var seg []byte
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '\\' && i+1 < len(path):
			i++
			seg = append(seg, path[i])
		case c == '.':
			segs, seg = append(segs, string(seg)), seg[:0]
		default:
			seg = append(seg, c)
		}
	}
	return idPath{segs: append(segs, string(seg))}
}

// at returns the id at the path, whether some object along it names a
// segment more than once, and whether there is an id: a non-empty string
// or a number. The first member of a name is followed, as gjson does. The
// id is a view into the event unless the JSON string has escapes.
func (p idPath) at(ev *redact.Event) (id string, dup, ok bool) {
	v, dup := p.value(ev)
	switch v.Type {
	case gjson.String:
		return v.Str, dup, v.Str != ""
	case gjson.Number:
		return v.Raw, dup, true
	}
	return "", dup, false
}

// value returns the value at the path (Type Null if there is none) and
// whether some object along it names a segment more than once.
func (p idPath) value(ev *redact.Event) (v gjson.Result, dup bool) {
	raw, n := ev.Member(p.segs[0]) // the root's index, no pass over the bytes
	if n == 0 && gjson.Parse(ev.Source()).IsArray() {
		raw = p.step(ev.Source(), p.segs[0], &dup) // an index into a root array
	}
	dup = dup || n > 1
	for _, seg := range p.segs[1:] {
		if raw == "" {
			break
		}
		raw = p.step(raw, seg, &dup)
	}
	if raw == "" {
		return gjson.Result{}, dup
	}
	return gjson.Parse(raw), dup
}

// step returns the raw value under seg of the object or array raw ("" if
// none), setting *dup if an object has seg more than once.
func (p idPath) step(raw, seg string, dup *bool) string {
	v := gjson.Parse(raw)
	switch {
	case v.IsObject():
		var first string
		n := 0
		v.ForEach(func(k, val gjson.Result) bool {
			if k.Str == seg {
				if n == 0 {
					first = val.Raw
				}
				n++
			}
			return true
		})
		*dup = *dup || n > 1
		return first
	case v.IsArray():
		idx, err := strconv.Atoi(seg)
		if err != nil || idx < 0 {
			return ""
		}
		var at string
		k := 0
		v.ForEach(func(_, val gjson.Result) bool {
			if k == idx {
				at = val.Raw
				return false
			}
			k++
			return true
		})
		return at
	}
	return ""
}

func (b *Batch) appendSource(m *kafka.Message) span {
	start := len(b.arena)
	b.arena = append(b.arena, m.Topic...)
	b.arena = append(b.arena, '/')
	b.arena = strconv.AppendInt(b.arena, int64(m.Partition), 10)
	b.arena = append(b.arena, '/')
	b.arena = strconv.AppendInt(b.arena, m.Offset, 10)
	return span{start, len(b.arena)}
}

func (p *Processor) quarantine(b *Batch, i int, m *kafka.Message, src span, s *stream, reason, detail string) Outcome {
	start := len(b.arena)
	a := append(b.arena, `{"source":`...)
	a = appendJSONString(a, src.of(b.arena))
	if s != nil {
		a = append(a, `,"stream":`...)
		a = appendJSONString(a, s.cfg.Name)
	}
	a = append(a, `,"reason":`...)
	a = appendJSONString(a, reason)
	a = append(a, `,"error":`...)
	a = appendJSONString(a, detail)
	a = append(a, `,"size":`...)
	a = strconv.AppendInt(a, int64(len(m.Value)), 10)
	if p.quarantinePayload {
		// Escaping can grow the payload sixfold: omit it rather than build
		// a record the producer refuses.
		n := len(a)
		a = append(a, `,"payload":`...)
		a = appendJSONString(a, m.Value)
		if len(a)-start > p.maxRecordBytes-maxQuarantineKey {
			a = append(a[:n], `,"payload_omitted":"too large"`...)
		}
	}
	a = append(a, '}')
	b.arena = a
	key := m.Key
	if len(key) > maxQuarantineKey {
		key = nil
	}
	b.recs = append(b.recs, rec{topic: p.quarantineTopic, key: key, value: span{start, len(b.arena)}, source: src,
		outcome: Quarantined, reason: reason, input: i})
	return Quarantined
}

func (p *Processor) deny(b *Batch, i int, s *stream, src span, tenant, user, category string, d *consent.Decision, now time.Time) {
	subj := len(b.arena)
	b.arena = consent.AppendUserKey(b.arena, tenant, user)
	subject := span{subj, len(b.arena)}
	start := len(b.arena)
	a := append(b.arena, `{"kind":"deny","source":`...)
	a = appendJSONString(a, src.of(b.arena))
	a = append(a, `,"stream":`...)
	a = appendJSONString(a, s.cfg.Name)
	a = append(a, `,"subject":`...)
	a = appendJSONString(a, subject.of(b.arena))
	a = append(a, `,"category":`...)
	a = appendJSONString(a, category)
	a = append(a, `,"reason":`...)
	a = appendJSONString(a, d.Reason.String())
	if d.Key != "" {
		a = append(a, `,"record":"`...)
		a = append(a, d.Key...)
		a = append(a, '@')
		a = strconv.AppendInt(a, int64(d.Partition), 10)
		a = append(a, '/')
		a = strconv.AppendInt(a, d.Offset, 10)
		a = append(a, '"')
	}
	a = append(a, `,"at":"`...)
	a = now.UTC().AppendFormat(a, time.RFC3339Nano)
	a = append(a, `"}`...)
	b.arena = a
	b.recs = append(b.recs, rec{topic: p.auditTopic, value: span{start, len(b.arena)}, source: src,
		outcome: Denied, input: i, subject: subject})
}

// finish turns the recorded spans into kafka.Messages once the arena has
// stopped growing, so no slice points into a reallocated buffer.
func (p *Processor) finish(b *Batch, msgs []kafka.Message) {
	nh := 0
	for i := range b.recs {
		nh += 2
		if b.recs[i].outcome == Forwarded {
			nh += len(msgs[b.recs[i].input].Headers)
		}
	}
	if cap(b.hdrs) < nh {
		b.hdrs = make([]kafka.Header, 0, nh+nh/4)
	}
	h := b.hdrs[:0]
	for i := range b.recs {
		r := &b.recs[i]
		if r.subject.end > 0 {
			r.key = r.subject.of(b.arena)
		}
		hs := len(h)
		h = append(h, kafka.Header{Key: HeaderSource, Value: r.source.of(b.arena)})
		switch r.outcome {
		case Forwarded:
			d := decisionAllow
			if r.level == consent.LevelAnonymized {
				d = decisionAnonymized
			}
			h = append(h, kafka.Header{Key: HeaderDecision, Value: d})
			s := p.byInput[msgs[r.input].Topic]
			for _, ih := range msgs[r.input].Headers {
				if s.allow[ih.Key] {
					h = append(h, ih)
				}
			}
		case Quarantined:
			h = append(h, kafka.Header{Key: HeaderReason, Value: unsafe.Slice(unsafe.StringData(r.reason), len(r.reason))})
		}
		b.Out = append(b.Out, kafka.Message{Topic: r.topic, Key: r.key, Value: r.value.of(b.arena), Headers: h[hs:len(h):len(h)]})
	}
	b.hdrs = h
}

// bytesView returns b as a string without copying; b must not change while
// the string is in use.
func bytesView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// appendJSONString appends s as a JSON string literal.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
