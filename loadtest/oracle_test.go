package loadtest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/segmentio/kafka-go"
)

// world is a synthetic run without Kafka: a generator's population and
// canaries, a consent log, and an oracle fed hand-made records.
type world struct {
	t     *testing.T
	gen   *Generator
	clog  *ConsentLog
	orc   *Oracle
	t0    time.Time
	next  [numStreams]int64 // next input offset per stream (partition 0)
	coord map[uint64]string // seq → source
	tp    Topics
}

const testBound = 3 * time.Second

func newWorld(t *testing.T, baseline bool) *world {
	w := &world{t: t, t0: time.Unix(1_800_000_000, 0), coord: map[uint64]string{}, tp: Topics{}.withDefaults()}
	w.gen = NewGenerator("test", 1, 2, 2, 0, NewCanaries(1))
	w.clog = NewConsentLog([numStreams]consent.Level{})
	w.orc = NewOracle("test", Topics{}, testBound, baseline, w.gen, w.clog, w.t0)
	for s := range numStreams {
		w.orc.SetInputStart(s, 0, 100)
		w.next[s] = 100
	}
	return w
}

func (w *world) at(d time.Duration) time.Time { return w.t0.Add(d) }

func (w *world) canary(k CanaryKind) (int, Canary) {
	for i, c := range w.gen.Canaries {
		if c.Kind == k {
			return i, c
		}
	}
	w.t.Fatalf("no canary of kind %s", k)
	return 0, Canary{}
}

// event registers an event of subject subj on stream with the given
// canaries and feeds its input record at time t; it returns seq and value.
func (w *world) event(stream uint8, subj int32, mal Malformed, t time.Time, kinds ...CanaryKind) (uint64, []byte) {
	var mask uint64
	var texts []string
	for _, k := range kinds {
		i, c := w.canary(k)
		mask |= 1 << i
		texts = append(texts, c.Text)
	}
	seq := w.gen.Ledger.add(EventInfo{Stream: stream, Subject: subj, Canaries: mask, Malformed: mal})
	s := w.gen.Subjects[subj]
	value := fmt.Appendf(nil, `{"event_id":%q,"tenant_id":%q,"user_id":%q,"text":%q}`,
		EventID("test", seq), s.Tenant, s.User, strings.Join(texts, " and "))
	if mal == InvalidJSON {
		value = value[:10]
	}
	off := w.next[stream]
	w.next[stream]++
	w.coord[seq] = fmt.Sprintf("%s/0/%d", w.tp.Inputs[stream], off)
	w.orc.Input(int(stream), kafka.Message{Topic: w.tp.Inputs[stream], Partition: 0, Offset: off, Value: value, Time: t,
		Headers: []kafka.Header{{Key: HeaderRun, Value: []byte("test")}, {Key: HeaderSeq, Value: []byte(strconv.FormatUint(seq, 10))}}})
	return seq, value
}

func (w *world) forward(seq uint64, decision string, value []byte, t time.Time) {
	info, _ := w.gen.Ledger.Get(seq)
	w.orc.Output(int(info.Stream), kafka.Message{Topic: w.tp.Outputs[info.Stream], Value: value, Time: t,
		Headers: []kafka.Header{{Key: HeaderSource, Value: []byte(w.coord[seq])}, {Key: HeaderDecision, Value: []byte(decision)}}})
}

func (w *world) deny(seq uint64, t time.Time) {
	info, _ := w.gen.Ledger.Get(seq)
	s := w.gen.Subjects[info.Subject]
	v := fmt.Appendf(nil, `{"kind":"deny","source":%q,"stream":"chat","subject":%q,"category":"chat","reason":"user_record","at":"x"}`,
		w.coord[seq], UserKey(s.Tenant, s.User))
	w.orc.Audit(kafka.Message{Value: v, Time: t, Headers: []kafka.Header{{Key: HeaderSource, Value: []byte(w.coord[seq])}}})
}

func (w *world) quarantine(seq uint64, t time.Time) {
	v := fmt.Appendf(nil, `{"source":%q,"stream":"chat","reason":"invalid_json","error":"x","size":10}`, w.coord[seq])
	w.orc.Quarantine(kafka.Message{Value: v, Time: t, Headers: []kafka.Header{{Key: HeaderSource, Value: []byte(w.coord[seq])}}})
}

func (w *world) consent(key, value string, acked time.Time) {
	var v []byte
	if value != "" {
		v = []byte(value)
	}
	w.clog.Add(ConsentWrite{Key: key, Value: v, Sent: acked.Add(-time.Millisecond), Acked: acked})
}

func (w *world) finish() *Verdict {
	w.orc.SetExpected(int64(w.gen.Ledger.Len()))
	return w.orc.Finish()
}

func scrub(v []byte, cs Canaries) []byte {
	for _, c := range cs {
		v = bytes.ReplaceAll(v, []byte(c.Value), []byte("[X]"))
	}
	return v
}

func allowAll(w *world) {
	for _, s := range w.gen.Subjects {
		w.consent(TenantKey(s.Tenant), `{"default":"allow"}`, w.at(-time.Hour))
	}
}

func wantViolations(t *testing.T, v *Verdict, want map[string]int64) {
	t.Helper()
	for k, n := range v.Violations {
		if n != want[k] {
			t.Errorf("violation %s: got %d, want %d (examples %+v)", k, n, want[k], v.Examples)
		}
	}
	for k, n := range want {
		if v.Violations[k] != n {
			t.Errorf("violation %s: got %d, want %d (examples %+v)", k, v.Violations[k], n, v.Examples)
		}
	}
}

func TestOracleAccounting(t *testing.T) {
	tests := []struct {
		name  string
		run   func(w *world)
		want  map[string]int64
		check func(t *testing.T, v *Verdict)
	}{
		{"clean run", func(w *world) {
			allowAll(w)
			s1, v1 := w.event(0, 0, WellFormed, w.at(0), KindEmail, KindGitHub)
			w.forward(s1, "allow", scrub(v1, w.gen.Canaries), w.at(time.Millisecond))
			s2, _ := w.event(1, 1, InvalidJSON, w.at(0), KindEmail)
			w.quarantine(s2, w.at(2*time.Millisecond))
		}, nil, func(t *testing.T, v *Verdict) {
			if v.Counts.Forwarded != 1 || v.Counts.Quarantined != 1 || v.Counts.Lost != 0 || v.Failed != 0 {
				t.Errorf("counts %+v", v.Counts)
			}
			if len(v.Latencies) != 2 || v.Latencies[0] != 1 || v.Latencies[1] != 2 {
				t.Errorf("latencies %v, want [1 2] ms", v.Latencies)
			}
		}},
		{"loss", func(w *world) {
			allowAll(w)
			w.event(0, 0, WellFormed, w.at(0))
			s, v := w.event(0, 1, WellFormed, w.at(0))
			w.forward(s, "allow", v, w.at(time.Millisecond))
		}, map[string]int64{VLost: 1}, func(t *testing.T, v *Verdict) {
			if v.Counts.Lost != 1 || v.Examples[0].EventID != EventID("test", 0) {
				t.Errorf("lost %d, examples %+v", v.Counts.Lost, v.Examples)
			}
		}},
		{"PII passes at allow, credentials do not", func(w *world) {
			allowAll(w)
			s1, v1 := w.event(0, 0, WellFormed, w.at(0), KindEmail, KindPhone)
			w.forward(s1, "allow", v1, w.at(time.Millisecond)) // PII at allow: fine
			s2, v2 := w.event(0, 0, WellFormed, w.at(0), KindEmail, KindAWSKey)
			w.forward(s2, "allow", v2, w.at(time.Millisecond)) // credential at allow: leak
		}, map[string]int64{VLeak: 1}, nil},
		{"any canary at anonymized leaks", func(w *world) {
			allowAll(w)
			s, v := w.event(0, 0, WellFormed, w.at(0), KindIBAN)
			w.forward(s, "anonymized", v, w.at(time.Millisecond))
		}, map[string]int64{VLeak: 1}, nil},
		{"canary inside gzip file content", func(w *world) {
			allowAll(w)
			_, c := w.canary(KindPrivateKey)
			s, _ := w.event(1, 0, WellFormed, w.at(0), KindPrivateKey)
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write([]byte("notes\n" + c.Text + "\n"))
			zw.Close()
			out := fmt.Appendf(nil, `{"event_id":%q,"file":{"content_encoding":"gzip","content_b64":%q}}`,
				EventID("test", s), base64.StdEncoding.EncodeToString(gz.Bytes()))
			w.forward(s, "allow", out, w.at(time.Millisecond))
		}, map[string]int64{VLeak: 1}, nil},
		{"duplicates are counted, not failed", func(w *world) {
			allowAll(w)
			s, v := w.event(2, 0, WellFormed, w.at(0))
			w.forward(s, "allow", v, w.at(time.Millisecond))
			w.forward(s, "allow", v, w.at(5*time.Millisecond))
		}, nil, func(t *testing.T, v *Verdict) {
			if v.Counts.Duplicates != 1 || v.Counts.ForwardedRecords != 2 || v.Counts.Forwarded != 1 {
				t.Errorf("counts %+v", v.Counts)
			}
		}},
		{"output before its input is read", func(w *world) {
			allowAll(w)
			seq := w.gen.Ledger.add(EventInfo{Stream: 0, Subject: 0})
			w.coord[seq] = w.tp.Inputs[0] + "/0/100"
			v := fmt.Appendf(nil, `{"event_id":%q}`, EventID("test", seq))
			w.forward(seq, "allow", v, w.at(time.Millisecond))
			w.orc.Input(0, kafka.Message{Topic: w.tp.Inputs[0], Offset: 100, Value: v, Time: w.at(0),
				Headers: []kafka.Header{{Key: HeaderRun, Value: []byte("test")}, {Key: HeaderSeq, Value: []byte("0")}}})
		}, nil, func(t *testing.T, v *Verdict) {
			if v.Counts.Forwarded != 1 {
				t.Errorf("counts %+v", v.Counts)
			}
		}},
		{"foreign outputs are ignored", func(w *world) {
			w.orc.Output(0, kafka.Message{Value: []byte(`{}`), Headers: []kafka.Header{
				{Key: HeaderSource, Value: []byte(w.tp.Inputs[0] + "/0/5")}, {Key: HeaderDecision, Value: []byte("allow")}}})
		}, nil, func(t *testing.T, v *Verdict) {
			if v.Warnings[WForeign] != 1 {
				t.Errorf("warnings %v", v.Warnings)
			}
		}},
		{"too permissive after the bound", func(w *world) {
			allowAll(w)
			s := w.gen.Subjects[0]
			w.consent(UserKey(s.Tenant, s.User), `{"default":"anonymized","categories":{"chat":"deny"}}`, w.at(10*time.Second))
			a, va := w.event(0, 0, WellFormed, w.at(11*time.Second))
			w.forward(a, "allow", va, w.at(11*time.Second)) // within the bound: may still be the old state
			b, vb := w.event(0, 0, WellFormed, w.at(14*time.Second))
			w.forward(b, "anonymized", vb, w.at(14*time.Second)) // chat is deny now
			c, vc := w.event(2, 0, WellFormed, w.at(14*time.Second))
			w.forward(c, "anonymized", vc, w.at(14*time.Second)) // messages: anonymized is fine
			d, vd := w.event(2, 0, WellFormed, w.at(14*time.Second))
			w.forward(d, "allow", vd, w.at(14*time.Second)) // messages at allow: too permissive
		}, map[string]int64{VTooPermissive: 2}, func(t *testing.T, v *Verdict) {
			if len(v.Propagation) != 1 || !v.Propagation[0].Observed || v.Propagation[0].DelayMs != 4000 {
				t.Errorf("propagation %+v, want one observed with 4000 ms", v.Propagation)
			}
		}},
		{"tenant and user: the more restrictive wins; malformed is deny", func(w *world) {
			s0, s1 := w.gen.Subjects[0], w.gen.Subjects[1]
			w.consent(TenantKey(s0.Tenant), `{"default":"anonymized"}`, w.at(-time.Hour))
			w.consent(UserKey(s0.Tenant, s0.User), `{"default":"allow"}`, w.at(-time.Hour))
			w.consent(UserKey(s1.Tenant, s1.User), `{"default":"allow","categories":{"chat":"sometimes"}}`, w.at(-time.Hour))
			a, va := w.event(0, 0, WellFormed, w.at(0))
			w.forward(a, "allow", va, w.at(time.Millisecond)) // min(anonymized, allow): too permissive
			b, vb := w.event(0, 1, WellFormed, w.at(0))
			w.forward(b, "anonymized", vb, w.at(time.Millisecond)) // malformed user record: deny
			c, _ := w.event(0, 1, WellFormed, w.at(0))
			w.deny(c, w.at(time.Millisecond)) // correct
		}, map[string]int64{VTooPermissive: 2}, nil},
		{"no record: the configured default (deny)", func(w *world) {
			a, va := w.event(0, 2, WellFormed, w.at(0))
			w.forward(a, "anonymized", va, w.at(time.Millisecond))
		}, map[string]int64{VTooPermissive: 1}, nil},
		{"tombstone falls back to the tenant", func(w *world) {
			s := w.gen.Subjects[0]
			w.consent(TenantKey(s.Tenant), `{"default":"allow"}`, w.at(-time.Hour))
			w.consent(UserKey(s.Tenant, s.User), `{"default":"deny"}`, w.at(-time.Hour))
			w.consent(UserKey(s.Tenant, s.User), ``, w.at(-time.Minute))
			a, va := w.event(0, 0, WellFormed, w.at(0))
			w.forward(a, "allow", va, w.at(time.Millisecond))
		}, nil, nil},
		{"malformed must be quarantined", func(w *world) {
			allowAll(w)
			a, va := w.event(0, 0, MissingUserID, w.at(0))
			w.forward(a, "allow", va, w.at(time.Millisecond))
			b, _ := w.event(0, 0, InvalidJSON, w.at(0))
			w.deny(b, w.at(time.Millisecond))
			c, _ := w.event(0, 0, WellFormed, w.at(0))
			w.quarantine(c, w.at(time.Millisecond))
		}, map[string]int64{VMalformedForward: 2, VUnexpectedQuar: 1}, nil},
		{"payload in quarantine", func(w *world) {
			_, c := w.canary(KindSSN)
			a, _ := w.event(0, 0, InvalidJSON, w.at(0), KindSSN)
			w.orc.Quarantine(kafka.Message{Value: []byte(`{"source":"` + w.coord[a] + `","error":"near ` + c.Value + `"}`), Time: w.at(time.Millisecond)})
		}, map[string]int64{VPayloadInSide: 1}, nil},
		{"broken outputs", func(w *world) {
			allowAll(w)
			a, va := w.event(0, 0, WellFormed, w.at(0))
			w.forward(a, "allow", va[:len(va)-1], w.at(time.Millisecond))
			b, _ := w.event(0, 0, WellFormed, w.at(0))
			w.forward(b, "maybe", []byte(`{"event_id":"other"}`), w.at(time.Millisecond))
			w.orc.Output(0, kafka.Message{Value: []byte(`{}`)})
		}, map[string]int64{VInvalidJSON: 1, VBadDecision: 1, VEventIDChanged: 1, VBadSource: 1}, nil},
		{"audit subject key", func(w *world) {
			s, _ := w.event(0, 3, WellFormed, w.at(0))
			w.orc.Audit(kafka.Message{Value: []byte(`{"kind":"deny","subject":"u:wrong:key"}`), Time: w.at(time.Millisecond),
				Headers: []kafka.Header{{Key: HeaderSource, Value: []byte(w.coord[s])}}})
		}, map[string]int64{VAuditSubject: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, false)
			tt.run(w)
			v := w.finish()
			wantViolations(t, v, tt.want)
			if tt.check != nil {
				tt.check(t, v)
			}
		})
	}
}

func TestOracleBaselineChecksOnlyLossAndDuplicates(t *testing.T) {
	w := newWorld(t, true)
	a, va := w.event(0, 0, InvalidJSON, w.at(0), KindGitHub)
	w.forward(a, "allow", va, w.at(time.Millisecond))
	w.forward(a, "allow", va, w.at(time.Millisecond))
	w.event(0, 0, WellFormed, w.at(0))
	v := w.finish()
	wantViolations(t, v, map[string]int64{VLost: 1})
	if v.Counts.Duplicates != 1 {
		t.Errorf("duplicates %d", v.Counts.Duplicates)
	}
}

func TestOracleDone(t *testing.T) {
	w := newWorld(t, false)
	allowAll(w)
	a, va := w.event(0, 0, WellFormed, w.at(0))
	if w.orc.Done() {
		t.Fatal("done before SetExpected")
	}
	w.orc.SetExpected(1)
	if w.orc.Done() {
		t.Fatal("done before the outcome")
	}
	w.forward(a, "allow", va, w.at(time.Millisecond))
	if !w.orc.Done() {
		t.Fatal("not done after the outcome")
	}
}

func TestKeys(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{TenantKey("T1"), "t:T1"},
		{UserKey("T1", "U1"), "u:T1:U1"},
		{UserKey("", "U1"), "u::U1"},
		{UserKey("a:b", "ext:U1/ü x~y"), "u:a%3Ab:ext%3AU1%2F%C3%BC%20x~y"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	// The load test builds keys from the contract, independently of the
	// stage; both must agree, or consent lookups miss.
	for _, ids := range [][2]string{{"T1", "U1"}, {"a:b", "ext:U1/ü x~y"}, {"", "u@x.example"}} {
		if UserKey(ids[0], ids[1]) != consent.UserKey(ids[0], ids[1]) || TenantKey(ids[0]) != consent.TenantKey(ids[0]) {
			t.Errorf("keys of %q differ from package consent's: %q vs %q", ids, UserKey(ids[0], ids[1]), consent.UserKey(ids[0], ids[1]))
		}
	}
	if !sameKey("u:a%3ab:x", "u:a%3Ab:x") {
		t.Error("hex case must not matter")
	}
}

func TestConsentBounds(t *testing.T) {
	clog := NewConsentLog([numStreams]consent.Level{consent.LevelAnonymized})
	t0 := time.Unix(1000, 0)
	add := func(key, v string, ack time.Duration) {
		clog.Add(ConsentWrite{Key: key, Value: []byte(v), Sent: t0.Add(ack - 10*time.Millisecond), Acked: t0.Add(ack)})
	}
	add(UserKey("T", "U"), `{"default":"allow"}`, 0)
	add(UserKey("T", "U"), `{"default":"deny"}`, 10*time.Second)
	for _, tt := range []struct {
		at          time.Duration
		most, least consent.Level
	}{
		{-time.Second, consent.LevelAnonymized, consent.LevelAnonymized}, // nothing sent yet: default for chat
		{5 * time.Second, consent.LevelAllow, consent.LevelAllow},
		{10*time.Second - 5*time.Millisecond, consent.LevelAllow, consent.LevelDeny}, // sent, not acked: either
		{11 * time.Second, consent.LevelAllow, consent.LevelDeny},                    // within the bound
		{13 * time.Second, consent.LevelDeny, consent.LevelDeny},
	} {
		most, least := clog.Bounds("T", "U", 0, t0.Add(tt.at), 2*time.Second)
		if most != tt.most || least != tt.least {
			t.Errorf("at %v: got [%s, %s], want [%s, %s]", tt.at, least, most, tt.least, tt.most)
		}
	}
}
