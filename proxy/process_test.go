package proxy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"
	"github.com/tidwall/gjson"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/configs"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/proxy"
	"github.com/anonproxy/anonproxy/redact"
)

// newProcessor builds the reference config's processor over an in-memory
// consent table holding records (key → value).
func newProcessor(t testing.TB, records map[string]string) (*proxy.Processor, *config.File) {
	t.Helper()
	cfg, err := config.Parse(configs.Example)
	if err != nil {
		t.Fatal(err)
	}
	table := consent.NewTable(cfg.Policy, "chat", "files", "messages")
	off := int64(0)
	for k, v := range records {
		table.Apply([]byte(k), []byte(v), 0, off)
		off++
	}
	table.MarkReady()
	p, err := proxy.NewProcessor(&cfg.Stage, cfg.Streams, cfg.Redaction, testKeys(t), table)
	if err != nil {
		t.Fatal(err)
	}
	return p, cfg
}

func testKeys(t testing.TB) *redact.Keyring {
	t.Helper()
	keys, err := redact.NewKeyring("k1", map[string][]byte{"k1": []byte("unit-test-key-0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestProcessorOutcomes(t *testing.T) {
	p, cfg := newProcessor(t, map[string]string{
		"t:T-allow": `{"default":"allow"}`,
		"t:T-deny":  `{"default":"deny"}`,
	})
	chat, _ := cfg.Stream("chat")
	cases := []struct {
		name, event string
		want        proxy.Outcome
		reason      string
	}{
		{"allowed", `{"tenant_id":"T-allow","user_id":"U1","text":"hi"}`, proxy.Forwarded, ""},
		{"denied", `{"tenant_id":"T-deny","user_id":"U1","text":"hi"}`, proxy.Denied, ""},
		{"no record: default deny", `{"tenant_id":"T-none","user_id":"U1","text":"hi"}`, proxy.Denied, ""},
		{"numeric ids", `{"tenant_id":7,"user_id":8,"text":"hi"}`, proxy.Denied, ""},
		{"duplicate tenant", `{"tenant_id":"T-deny","tenant_id":"T-allow","user_id":"U1"}`, proxy.Quarantined, proxy.ReasonDuplicateID},
		{"duplicate tenant, escaped", `{"tenant\u005fid":"T-allow","tenant_id":"T-deny","user_id":"U1"}`, proxy.Quarantined, proxy.ReasonDuplicateID},
		{"duplicate user", `{"tenant_id":"T-allow","user_id":"U1","user_id":"U2"}`, proxy.Quarantined, proxy.ReasonDuplicateID},
		{"id string in a value is no duplicate", `{"tenant_id":"T-allow","user_id":"U1","text":"user_id","k":"tenant_id"}`, proxy.Forwarded, ""},
		{"nested id is no duplicate", `{"tenant_id":"T-allow","user_id":"U1","meta":{"user_id":"U9"}}`, proxy.Forwarded, ""},
		{"empty user", `{"tenant_id":"T-allow","user_id":"","text":"x"}`, proxy.Quarantined, proxy.ReasonMissingUser},
		{"null tenant", `{"tenant_id":null,"user_id":"U1"}`, proxy.Quarantined, proxy.ReasonMissingTenant},
		{"array", `[1,2,3]`, proxy.Quarantined, proxy.ReasonMissingTenant},
		{"invalid", `{"tenant_id":"T-allow",`, proxy.Quarantined, proxy.ReasonInvalidJSON},
		{"empty", ``, proxy.Quarantined, proxy.ReasonInvalidJSON},
		{"too large", `{"tenant_id":"T-allow","user_id":"U1","text":"` + strings.Repeat("x", 1<<20) + `"}`, proxy.Quarantined, proxy.ReasonTooLarge},
	}
	var b proxy.Batch
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msgs := []kafka.Message{{Topic: chat.Input, Partition: 1, Offset: 42, Key: []byte("k"), Value: []byte(c.event)}}
			if err := p.Process(&b, msgs); err != nil {
				t.Fatal(err)
			}
			if b.Outcomes[0] != c.want || b.Reasons[0] != c.reason {
				t.Fatalf("outcome %v %q, want %v %q", b.Outcomes[0], b.Reasons[0], c.want, c.reason)
			}
			if len(b.Out) != 1 {
				t.Fatalf("%d records out, want exactly 1", len(b.Out))
			}
			out := b.Out[0]
			if !gjson.ValidBytes(out.Value) {
				t.Errorf("record is not valid JSON: %s", out.Value)
			}
			if got := header(out, proxy.HeaderSource); got != chat.Input+"/1/42" {
				t.Errorf("source header %q", got)
			}
			switch c.want {
			case proxy.Forwarded:
				if out.Topic != chat.Output {
					t.Errorf("forwarded to %s", out.Topic)
				}
			case proxy.Denied:
				if out.Topic != cfg.Stage.AuditTopic || strings.Contains(string(out.Value), "text") {
					t.Errorf("denial record %s: %s", out.Topic, out.Value)
				}
			case proxy.Quarantined:
				if out.Topic != cfg.Stage.QuarantineTopic || header(out, proxy.HeaderReason) != c.reason || len(out.Value) > 512 {
					t.Errorf("quarantine record %s: %.200s", out.Topic, out.Value)
				}
			}
		})
	}
}

// TestProcessorAllocs: deciding and redacting a batch allocates nothing per
// event in steady state.
func TestProcessorAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race; scripts/test.sh runs this without it")
	}
	p, cfg := newProcessor(t, map[string]string{"t:T1": `{"default":"anonymized"}`, "t:T2": `{"default":"allow"}`, "t:T3": `{"default":"deny"}`})
	chat, _ := cfg.Stream("chat")
	var msgs []kafka.Message
	for i := range 100 {
		ev := fmt.Sprintf(`{"event_id":"e%d","tenant_id":"T%d","user_id":"U%d","channel_id":"C1","text":"mail a%d@example.com <@U3> ghp_abcdefghijklmnopqrstuvwxyz0123456789"}`, i, 1+i%3, i, i)
		msgs = append(msgs, kafka.Message{Topic: chat.Input, Offset: int64(i), Value: []byte(ev)})
	}
	var b proxy.Batch
	p.Process(&b, msgs) // warm the buffers and the caches
	allocs := testing.AllocsPerRun(20, func() { p.Process(&b, msgs) })
	if allocs > 0 {
		t.Errorf("%.0f allocations per batch of %d events, want 0", allocs, len(msgs))
	}
}

// BenchmarkProcessor measures decide + redact per chat event against
// gjson.ValidBytes over the same bytes in the same run.
func BenchmarkProcessor(b *testing.B) {
	_, cfg := newProcessor(b, map[string]string{})
	chat, _ := cfg.Stream("chat")
	events := benchEvents(b)
	var msgs []kafka.Message
	var size int
	for i, ev := range events {
		msgs = append(msgs, kafka.Message{Topic: chat.Input, Offset: int64(i), Value: ev})
		size += len(ev)
	}
	b.Run("gjson.ValidBytes", func(b *testing.B) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			for _, m := range msgs {
				gjson.ValidBytes(m.Value)
			}
		}
	})
	for _, lvl := range []string{"anonymized", "allow", "deny"} {
		b.Run("process/"+lvl, func(b *testing.B) {
			recs := map[string]string{}
			for i := range 8 {
				recs[fmt.Sprintf("t:T%d", i)] = `{"default":"` + lvl + `"}`
			}
			p, _ := newProcessor(b, recs)
			var batch proxy.Batch
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := p.Process(&batch, msgs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestProcessorNestedIDPaths: ids and the category read along nested, escaped
// and array-index paths, and a key given twice at any level of such a path
// quarantines the event (one parser would read one subject, another a
// different one).
func TestProcessorNestedIDPaths(t *testing.T) {
	_, cfg := newProcessor(t, nil)
	sc := cfg.Streams[0] // chat
	sc.TenantPath, sc.UserPath = `org.id`, `who\.am\.i.0`
	sc.Category, sc.CategoryPath, sc.Categories = "", "meta.kind", map[string]string{"dm": "chat"}
	table := consent.NewTable(cfg.Policy, "chat", "files", "messages")
	table.Apply([]byte(consent.TenantKey("T-allow")), []byte(`{"default":"allow"}`), 0, 0)
	table.Apply([]byte(consent.UserKey("T-allow", "U2")), []byte(`{"default":"deny"}`), 0, 1)
	table.MarkReady()
	p, err := proxy.NewProcessor(&cfg.Stage, []proxy.StreamConfig{sc}, cfg.Redaction, testKeys(t), table)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, event string
		want        proxy.Outcome
		reason      string
	}{
		{"nested ids", `{"org":{"id":"T-allow"},"who.am.i":["U1","U2"],"meta":{"kind":"dm"}}`, proxy.Forwarded, ""},
		{"other user of the tenant", `{"org":{"id":"T-allow"},"who.am.i":["U2"],"meta":{"kind":"dm"}}`, proxy.Denied, ""},
		{"nested duplicate tenant", `{"org":{"id":"T-allow","id":"T-x"},"who.am.i":["U1"],"meta":{"kind":"dm"}}`, proxy.Quarantined, proxy.ReasonDuplicateID},
		{"duplicate parent", `{"org":{"id":"T-allow"},"org":{"id":"T-x"},"who.am.i":["U1"],"meta":{"kind":"dm"}}`, proxy.Quarantined, proxy.ReasonDuplicateID},
		{"escaped key duplicate", `{"org":{"id":"T-allow"},"who.am.i":["U1"],"who\u002eam.i":["U9"],"meta":{"kind":"dm"}}`, proxy.Quarantined, proxy.ReasonDuplicateID},
		{"duplicate category", `{"org":{"id":"T-allow"},"who.am.i":["U1"],"meta":{"kind":"dm","kind":"x"}}`, proxy.Quarantined, proxy.ReasonUnknownCategory},
		{"numeric category", `{"org":{"id":"T-allow"},"who.am.i":["U1"],"meta":{"kind":1}}`, proxy.Quarantined, proxy.ReasonUnknownCategory},
		{"index out of range", `{"org":{"id":"T-allow"},"who.am.i":[],"meta":{"kind":"dm"}}`, proxy.Quarantined, proxy.ReasonMissingUser},
		{"not an object", `{"org":"T-allow","who.am.i":["U1"],"meta":{"kind":"dm"}}`, proxy.Quarantined, proxy.ReasonMissingTenant},
	}
	var b proxy.Batch
	for _, c := range cases {
		msgs := []kafka.Message{{Topic: sc.Input, Value: []byte(c.event)}}
		if err := p.Process(&b, msgs); err != nil {
			t.Fatal(err)
		}
		if b.Outcomes[0] != c.want || b.Reasons[0] != c.reason {
			t.Errorf("%s: outcome %v %q, want %v %q", c.name, b.Outcomes[0], b.Reasons[0], c.want, c.reason)
		}
	}
}
