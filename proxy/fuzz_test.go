package proxy_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/configs"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/proxy"
	"github.com/anonproxy/anonproxy/redact"
)

// fuzzConsent is the consent state the fuzzer decides against: one subject
// per level, per-category levels, a malformed record and a user-level deny
// under a permissive tenant (the case a duplicate id would try to escape).
var fuzzConsent = []struct{ key, value string }{
	{consent.TenantKey("T-allow"), `{"default":"allow"}`},
	{consent.TenantKey("T-anon"), `{"default":"anonymized"}`},
	{consent.TenantKey("T-deny"), `{"default":"deny"}`},
	{consent.TenantKey("T-mixed"), `{"default":"allow","categories":{"files":"deny","messages":"anonymized"}}`},
	{consent.TenantKey("T-bad"), `{"default":"allow"`},
	{consent.UserKey("T-allow", "U-deny"), `{"default":"deny"}`},
	{consent.UserKey("", "U-solo"), `{"default":"allow"}`},
	{consent.UserKey("T-allow", "1"), `{"default":"deny"}`},
}

// newFuzzProcessor builds the processor of configs/example.yaml with an
// in-memory consent table holding fuzzConsent.
func newFuzzProcessor(tb testing.TB) (*proxy.Processor, *consent.Table, *config.File) {
	tb.Helper()
	cfg, err := config.Parse(configs.Example)
	if err != nil {
		tb.Fatalf("reference config: %v", err)
	}
	table := consent.NewTable(cfg.Policy, "chat", "files", "messages")
	for i, c := range fuzzConsent {
		table.Apply([]byte(c.key), []byte(c.value), 0, int64(i))
	}
	table.MarkReady()
	keys, err := redact.NewKeyring("k1", map[string][]byte{"k1": []byte("fuzz-key-0123456789abcdef")})
	if err != nil {
		tb.Fatal(err)
	}
	p, err := proxy.NewProcessor(&cfg.Stage, cfg.Streams, cfg.Redaction, keys, table)
	if err != nil {
		tb.Fatalf("processor: %v", err)
	}
	return p, table, cfg
}

// fuzzGood is processed after every fuzzed input in the same batch: whatever
// the input did to the batch's buffers, this one must come out intact.
const fuzzGood = `{"event_id":"good","type":"chat.message","tenant_id":"T-allow","user_id":"U1","channel_id":"C1","ts":"2026-11-22T10:00:00Z","text":"hello"}`

// FuzzProcess drives the decide-and-redact entry point with arbitrary
// event bytes on every stream (and an unknown topic). Properties:
//   - it never panics and never fails (the table is ready);
//   - every input gets exactly one outcome, and exactly one record (output,
//     quarantine or audit) is produced for it;
//   - every produced record is valid UTF-8 JSON;
//   - nothing is forwarded for a subject whose consent is deny, whichever
//     occurrence of a repeated id key a downstream parser would pick;
//   - quarantine and audit records carry no payload bytes;
//   - the well-formed event after the fuzzed one is forwarded unchanged.
func FuzzProcess(f *testing.F) {
	for _, s := range []string{
		fuzzGood,
		`{"tenant_id":"T-allow","user_id":"U1","text":"mail alice@example.com CANARY"}`,
		`{"tenant_id":"T-anon","user_id":"U1","text":"mail alice@example.com <@U2> CANARY","attachments":[{"name":"a.txt","mimetype":"text/plain","content_b64":"aGk="}]}`,
		`{"tenant_id":"T-deny","tenant_id":"T-allow","user_id":"U1","text":"CANARY"}`,
		`{"tenant_id":"T-allow","user_id":"U-deny","user\u005fid":"U1","text":"CANARY"}`,
		`{"tenant_id":"T-allow","user_id":1,"text":"CANARY"}`,
		`{"tenant_id":"T-allow","user_id":1.0,"text":"CANARY"}`,
		`{"tenant_id":"T-bad","user_id":"U1","text":"CANARY"}`,
		`{"user_id":"U-solo","text":"CANARY"}`,
		"\xef\xbb\xbf{\"tenant_id\":\"T-allow\",\"user_id\":\"U1\",\"text\":\"CANARY\"}",
		"{\"tenant_id\":\"T-allow\",\"user_id\":\"U1\",\"text\":\"CANARY\xff\"}",
		`{"tenant_id":"T-allow","user_id":"U1","text":"CANARY`,
	} {
		for topic := uint8(0); topic < 4; topic++ {
			f.Add(topic, []byte(s))
		}
	}
	p, table, cfg := newFuzzProcessor(f)
	topics := []string{cfg.Streams[0].Input, cfg.Streams[1].Input, cfg.Streams[2].Input, "not.consumed"}
	outputs := map[string]bool{}
	for _, s := range cfg.Streams {
		outputs[s.Output] = true
	}
	quarantine, audit := cfg.Stage.Defaults().QuarantineTopic, cfg.Stage.Defaults().AuditTopic
	var b proxy.Batch
	f.Fuzz(func(t *testing.T, topic uint8, value []byte) {
		in := append([]byte(nil), value...)
		msgs := []kafka.Message{
			{Topic: topics[int(topic)%len(topics)], Partition: 1, Offset: 7, Key: []byte("key"), Value: value},
			{Topic: topics[0], Partition: 1, Offset: 8, Key: []byte("good"), Value: []byte(fuzzGood)},
		}
		if err := p.Process(&b, msgs); err != nil {
			t.Fatalf("Process: %v", err)
		}
		if !bytes.Equal(in, value) {
			t.Fatalf("Process modified its input")
		}
		if len(b.Outcomes) != 2 || len(b.Reasons) != 2 || len(b.Out) != 2 {
			t.Fatalf("%d outcomes, %d reasons, %d records for 2 inputs", len(b.Outcomes), len(b.Reasons), len(b.Out))
		}
		if b.Outcomes[1] != proxy.Forwarded || !bytes.Equal(b.Out[1].Value, []byte(fuzzGood)) {
			t.Fatalf("the well-formed event after the fuzzed one came out as %v: %q", b.Outcomes[1], b.Out[1].Value)
		}
		out := b.Out[0]
		if src := header(out, proxy.HeaderSource); src != msgs[0].Topic+"/1/7" {
			t.Fatalf("source header %q", src)
		}
		if !utf8.Valid(out.Value) || !json.Valid(out.Value) {
			t.Fatalf("produced record is not valid UTF-8 JSON: %q", out.Value)
		}
		switch b.Outcomes[0] {
		case proxy.Forwarded:
			if !outputs[out.Topic] || b.Reasons[0] != "" {
				t.Fatalf("forwarded to %q with reason %q", out.Topic, b.Reasons[0])
			}
			checkNotDenied(t, table, msgs[0].Topic, topics, value)
			checkNotDenied(t, table, msgs[0].Topic, topics, out.Value)
		case proxy.Quarantined:
			if out.Topic != quarantine || b.Reasons[0] == "" || header(out, proxy.HeaderReason) != b.Reasons[0] {
				t.Fatalf("quarantined to %q, reason %q, header %q", out.Topic, b.Reasons[0], header(out, proxy.HeaderReason))
			}
			checkNoPayload(t, out.Value, value, "source", "stream", "reason", "error", "size")
		case proxy.Denied:
			if out.Topic != audit {
				t.Fatalf("denied, record to %q", out.Topic)
			}
			checkNoPayload(t, out.Value, value, "kind", "source", "stream", "subject", "category", "reason", "record", "at")
		default:
			t.Fatalf("outcome %v", b.Outcomes[0])
		}
	})
}

// checkNotDenied decodes doc the way encoding/json does (the last of
// repeated keys wins, numbers as written) and fails if consent denies that
// subject: a forwarded event must not belong to a denied subject under any
// reading of its ids.
func checkNotDenied(t *testing.T, table *consent.Table, topic string, topics []string, doc []byte) {
	t.Helper()
	category := map[string]string{topics[0]: "chat", topics[1]: "files", topics[2]: "messages"}[topic]
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		return // the forwarded form of a valid document; encoding/json is stricter on nothing here
	}
	id := func(v any) (string, bool) {
		switch v := v.(type) {
		case string:
			return v, v != ""
		case json.Number:
			return string(v), true
		}
		return "", false
	}
	tenant, okT := id(ev["tenant_id"])
	user, okU := id(ev["user_id"])
	if !okT || !okU {
		return
	}
	d, err := table.Decide(tenant, user, category)
	if err != nil {
		t.Fatal(err)
	}
	if d.Level == consent.LevelDeny && !strings.HasPrefix(user, "ps_") {
		t.Fatalf("forwarded an event that encoding/json attributes to denied subject %q/%q: %q", tenant, user, doc)
	}
}

// checkNoPayload fails unless rec is a JSON object with only the given
// fields, none of which carries the event's canary (the fuzzer's seeds
// put "CANARY" into every part of an event; subject keys are exempt: they are
// the consent key of the subject by design, CONTRACT §5).
func checkNoPayload(t *testing.T, rec, _ []byte, fields ...string) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec, &m); err != nil {
		t.Fatalf("record is not a JSON object: %v: %q", err, rec)
	}
	allowed := map[string]bool{}
	for _, f := range fields {
		allowed[f] = true
	}
	for k, v := range m {
		if !allowed[k] {
			t.Fatalf("record has field %q (payload?): %q", k, rec)
		}
		s, _ := v.(string)
		if k == "subject" || k == "record" {
			continue // the consent key of the subject, by design (CONTRACT §5)
		}
		if strings.Contains(s, "CANARY") {
			t.Fatalf("record field %q = %q carries event bytes", k, s)
		}
	}
}
