package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.yaml.in/yaml/v3"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

// consentEnv is the reference config with topics of the test's own, written
// to a file for the commands, and its consent topic created.
type consentEnv struct {
	t     *testing.T
	addr  string
	cfg   *config.File
	path  string
	admin *consent.Admin
}

func newConsentEnv(t *testing.T, mutate func(*config.File), streamTopics bool) *consentEnv {
	t.Helper()
	addr := kafkatest.Brokers(t)
	t.Setenv("ANONPROXY_HMAC_KEY", "k1:test-key-0123456789abcdef0123456789")
	t.Setenv("ANONPROXY_BROKERS", "")
	cfg, err := config.Load("../../configs/example.yaml")
	if err != nil {
		t.Fatalf("reference config: %v", err)
	}
	cfg.PrefixTopics(kafkatest.Topic(t, "cc"))
	cfg.Kafka.Brokers = []string{addr}
	cfg.Stage.FetchMaxWait = proxy.Duration(20 * time.Millisecond)
	if mutate != nil {
		mutate(cfg)
	}
	kafkatest.CreateCompactedTopic(t, addr, cfg.Consent.Topic, 3)
	if streamTopics {
		for _, topic := range []string{cfg.Stage.QuarantineTopic, cfg.Stage.AuditTopic} {
			kafkatest.CreateTopic(t, addr, topic, 1, nil)
		}
		for _, s := range cfg.Streams {
			kafkatest.CreateTopic(t, addr, s.Input, 2, nil)
			kafkatest.CreateTopic(t, addr, s.Output, 2, nil)
		}
	}
	// A topic just created may still answer "not leader" for a moment.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := kafkatest.Offsets(ctx, addr, cfg.Consent.Topic)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consent topic not ready: %v", err)
		}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "anonproxy.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatalf("written config does not load: %v", err)
	}
	return &consentEnv{t: t, addr: addr, cfg: cfg, path: path,
		admin: &consent.Admin{Brokers: []string{addr}, Topic: cfg.Consent.Topic}}
}

// run runs "anonproxy consent <sub> -config FILE args..." in-process.
func (e *consentEnv) run(sub string, args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(append([]string{"consent", sub, "-config", e.path}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func (e *consentEnv) records() int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, end, err := kafkatest.Offsets(ctx, e.addr, e.cfg.Consent.Topic)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	for _, o := range end {
		n += o
	}
	return n
}

func subjectArgs(s consent.Subject) []string {
	if s.Kind == consent.SubjectTenant {
		return []string{"-tenant", s.Tenant}
	}
	return []string{"-tenant", s.Tenant, "-user", s.User}
}

func murmur2Partition(key string, n int) int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(key)}, parts...)
}

// TestConsentSetGetDeleteExplain round-trips tenant, user and tenantless
// user records with ids that need percent-encoding through the commands.
func TestConsentSetGetDeleteExplain(t *testing.T) {
	e := newConsentEnv(t, nil, false)
	var subjects []consent.Subject
	for _, tenant := range []string{"acme:eu%1", "Zürich 東京"} {
		subjects = append(subjects, consent.Subject{Kind: consent.SubjectTenant, Tenant: tenant})
		for _, user := range []string{"u:1%", "ü ser/é"} {
			subjects = append(subjects, consent.Subject{Kind: consent.SubjectUser, Tenant: tenant, User: user})
		}
	}
	subjects = append(subjects, consent.Subject{Kind: consent.SubjectUser, User: "lone:%ü"})
	start := time.Now().Add(-time.Second)
	for _, s := range subjects {
		t.Run(s.Key(), func(t *testing.T) {
			args := append(subjectArgs(s), "-default", "anonymized", "-category", "chat=allow", "-category", "files=deny", "-by", "tester")
			code, out, errs := e.run("set", args...)
			if code != exitOK || !strings.Contains(out, s.Key()) {
				t.Fatalf("set: exit %d\n%s%s", code, out, errs)
			}
			code, out, errs = e.run("get", append(subjectArgs(s), "-json")...)
			if code != exitOK {
				t.Fatalf("get: exit %d\n%s%s", code, out, errs)
			}
			var got entryJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("get -json: %v\n%s", err, out)
			}
			if got.Key != s.Key() || got.Tenant != s.Tenant || got.User != s.User || got.Kind != s.Kind.String() || got.Deleted {
				t.Errorf("get: %+v", got)
			}
			if got.Partition != murmur2Partition(s.Key(), 3) {
				t.Errorf("%s in partition %d, want %d (murmur2)", s.Key(), got.Partition, murmur2Partition(s.Key(), 3))
			}
			if ts, err := time.Parse(time.RFC3339Nano, got.Time); err != nil || ts.Before(start) {
				t.Errorf("time %q: %v", got.Time, err)
			}
			r, err := consent.ParseValue(got.Value)
			if err != nil {
				t.Fatal(err)
			}
			at, err := time.Parse(time.RFC3339, r.UpdatedAt)
			if r.Default != consent.LevelAnonymized || r.Categories["chat"] != consent.LevelAllow ||
				r.Categories["files"] != consent.LevelDeny || r.UpdatedBy != "tester" || err != nil || at.Before(start) {
				t.Errorf("value %s", got.Value)
			}

			// explain sees it: for a tenant record, of any user of the tenant.
			user := s.User
			if s.Kind == consent.SubjectTenant {
				user = "someone-without-a-record"
			}
			for cat, want := range map[string]string{"chat": "allow", "files": "deny", "messages": "anonymized"} {
				x := explain(t, e, s.Tenant, user, cat)
				if x.Level != want || x.DecidedBy == nil || x.DecidedBy.Key != s.Key() || x.DecidedBy.Partition != int32(got.Partition) ||
					x.DecidedBy.Offset != got.Offset {
					t.Errorf("explain %s: %+v %+v, want %s by %s", cat, x, x.DecidedBy, want, s.Key())
				}
			}

			code, out, errs = e.run("delete", subjectArgs(s)...)
			if code != exitOK || !strings.Contains(out, "deleted "+s.Key()) {
				t.Fatalf("delete: exit %d\n%s%s", code, out, errs)
			}
			code, out, _ = e.run("get", append(subjectArgs(s), "-json")...)
			if err := json.Unmarshal([]byte(out), &got); code != exitFailed || err != nil || !got.Deleted || string(got.Value) != "null" {
				t.Errorf("get after delete: exit %d, %s", code, out)
			}
			if x := explain(t, e, s.Tenant, user, "chat"); x.Level != "deny" || x.Reason != consent.ReasonDefault.String() || x.DecidedBy != nil {
				t.Errorf("explain after delete: %+v", x)
			}
		})
	}

	// get -tenant lists the tenant record and the records of its users.
	for _, s := range subjects[:3] {
		if code, out, errs := e.run("set", append(subjectArgs(s), "-default", "allow")...); code != exitOK {
			t.Fatalf("set: %s%s", out, errs)
		}
	}
	code, out, errs := e.run("get", "-tenant", "acme:eu%1", "-json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitOK || len(lines) != 3 {
		t.Fatalf("get -tenant: exit %d\n%s%s", code, out, errs)
	}
	wantKeys := []string{subjects[0].Key(), subjects[1].Key(), subjects[2].Key()}
	sort.Strings(wantKeys[1:]) // the tenant record, then its users by key
	for i, l := range lines {
		var got entryJSON
		if err := json.Unmarshal([]byte(l), &got); err != nil || got.Key != wantKeys[i] {
			t.Errorf("get -tenant line %d: %s (want %s)", i, l, wantKeys[i])
		}
	}
	code, out, _ = e.run("get", "-tenant", "acme:eu%1")
	if code != exitOK || !strings.Contains(out, `tenant "acme:eu%1", user "u:1%"`) {
		t.Errorf("get -tenant (text): exit %d\n%s", code, out)
	}
	if code, out, _ := e.run("get", "-tenant", "nobody"); code != exitFailed || !strings.Contains(out, "t:nobody: no record") {
		t.Errorf("get of an unknown tenant: exit %d\n%s", code, out)
	}
}

func explain(t *testing.T, e *consentEnv, tenant, user, category string) explainJSON {
	t.Helper()
	code, out, errs := e.run("explain", "-tenant", tenant, "-user", user, "-category", category, "-json")
	if code != exitOK {
		t.Fatalf("explain: exit %d\n%s%s", code, out, errs)
	}
	var x explainJSON
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("explain -json: %v\n%s", err, out)
	}
	return x
}

// TestConsentSetValidates checks that nothing is written for a bad request.
func TestConsentSetValidates(t *testing.T) {
	e := newConsentEnv(t, nil, false)
	for name, args := range map[string][]string{
		"unknown default":  {"-tenant", "T", "-default", "sometimes"},
		"unknown category": {"-tenant", "T", "-category", "chat=maybe"},
		"category no =":    {"-tenant", "T", "-category", "chat"},
		"category twice":   {"-tenant", "T", "-category", "chat=allow", "-category", "chat=deny"},
		"no subject":       {"-default", "allow"},
		"empty tenant":     {"-tenant", "", "-default", "allow"},
		"user, no -tenant": {"-user", "U", "-default", "allow"},
		"empty user":       {"-tenant", "T", "-user", "", "-default", "allow"},
		"key too long":     {"-tenant", strings.Repeat("é", 1000), "-default", "allow"},
	} {
		t.Run(name, func(t *testing.T) {
			if code, out, errs := e.run("set", args...); code != exitUsage || errs == "" {
				t.Errorf("exit %d, want %d\n%s%s", code, exitUsage, out, errs)
			}
		})
	}
	if code, _, errs := e.run("delete"); code != exitUsage {
		t.Errorf("delete without a subject: exit %d %s", code, errs)
	}
	if n := e.records(); n != 0 {
		t.Errorf("%d records written by rejected commands", n)
	}
}

// TestConsentExplainAgreesWithStage drives every row of the decision matrix
// (tenant record? × user record? × level, both policy modes, plus a record
// with per-category levels) and checks, for each, that "consent explain"
// gives the same level as the stage's Processor deciding an event of that
// subject, and that the running stage (internal/wire.Build) forwards or
// denies the event accordingly, citing the same consent record.
func TestConsentExplainAgreesWithStage(t *testing.T) {
	levels := []string{"", "deny", "anonymized", "allow"} // "" = no record
	for _, mode := range []struct {
		name string
		def  consent.Level
	}{{"opt-in", consent.LevelDeny}, {"opt-out", consent.LevelAnonymized}} {
		t.Run(mode.name, func(t *testing.T) {
			e := newConsentEnv(t, func(c *config.File) {
				c.Policy.Defaults = map[string]consent.Level{"chat": mode.def, "files": mode.def, "messages": mode.def}
			}, true)
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
			defer cancel()
			type row struct {
				id, tenant, user, stream, category string
				want                               consent.Level
			}
			var rows []row
			for ti, tl := range levels {
				tenant := fmt.Sprintf("T:%d%%ü", ti)
				if tl != "" {
					if _, err := e.admin.Set(ctx, consent.Subject{Kind: consent.SubjectTenant, Tenant: tenant},
						consent.Record{Default: mustLevel(tl)}); err != nil {
						t.Fatal(err)
					}
				}
				for ui, ul := range levels {
					user := fmt.Sprintf("U:%d-%d é", ti, ui)
					if ul != "" {
						if _, err := e.admin.Set(ctx, consent.Subject{Kind: consent.SubjectUser, Tenant: tenant, User: user},
							consent.Record{Default: mustLevel(ul)}); err != nil {
							t.Fatal(err)
						}
					}
					want := mode.def
					switch {
					case tl != "" && ul != "":
						want = consent.Min(mustLevel(tl), mustLevel(ul))
					case tl != "":
						want = mustLevel(tl)
					case ul != "":
						want = mustLevel(ul)
					}
					rows = append(rows, row{fmt.Sprintf("tenant-%s-user-%s", orNone(tl), orNone(ul)), tenant, user, "chat", "chat", want})
				}
			}
			// Per-category levels in a tenant record, a user without one.
			if _, err := e.admin.Set(ctx, consent.Subject{Kind: consent.SubjectTenant, Tenant: "TC"}, consent.Record{
				Default: consent.LevelAnonymized, Categories: map[string]consent.Level{"chat": consent.LevelAllow, "files": consent.LevelDeny},
			}); err != nil {
				t.Fatal(err)
			}
			rows = append(rows,
				row{"cat-chat", "TC", "UC", "chat", "chat", consent.LevelAllow},
				row{"cat-files", "TC", "UC", "files", "files", consent.LevelDeny},
				row{"cat-messages", "TC", "UC", "messages", "messages", consent.LevelAnonymized})

			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			app, err := wire.Build(e.cfg, log, nil)
			if err != nil {
				t.Fatalf("wire: %v", err)
			}
			runCtx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- app.Run(runCtx, 30*time.Second) }()
			defer func() {
				stop()
				if err := <-done; err != nil {
					t.Errorf("stage exit: %v", err)
				}
			}()
			if err := app.Loader.WaitReady(ctx); err != nil {
				t.Fatalf("consent table not ready: %v", err)
			}

			inputs := map[string][]kafka.Message{}
			explained := map[string]explainJSON{}
			for _, r := range rows {
				x := explain(t, e, r.tenant, r.user, r.category)
				explained[r.id] = x
				ev := event(r.stream, r.id, r.tenant, r.user)
				got := processorLevel(t, app, e.cfg, r.stream, ev)
				if x.Level != r.want.String() || got != r.want {
					t.Errorf("%s: explain says %s (%s), the processor decides %s, the rule says %s", r.id, x.Level, x.Reason, got, r.want)
				}
				sc, _ := e.cfg.Stream(r.stream)
				inputs[sc.Input] = append(inputs[sc.Input], kafka.Message{Key: []byte(r.id), Value: []byte(ev)})
			}

			// End to end through the running stage.
			for topic, msgs := range inputs {
				kafkatest.Produce(t, e.addr, topic, kafka.Lz4, msgs...)
			}
			forwarded, denied := map[string]string{}, map[string]map[string]any{}
			for deadline := time.Now().Add(60 * time.Second); len(forwarded)+len(denied) < len(rows) && time.Now().Before(deadline); {
				time.Sleep(200 * time.Millisecond)
				for _, s := range e.cfg.Streams {
					for _, m := range kafkatest.ReadAll(t, e.addr, s.Output, 30*time.Second) {
						for _, h := range m.Headers {
							if h.Key == proxy.HeaderDecision {
								forwarded[string(m.Key)] = string(h.Value)
							}
						}
					}
				}
				for _, m := range kafkatest.ReadAll(t, e.addr, e.cfg.Stage.AuditTopic, 30*time.Second) {
					var a map[string]any
					if json.Unmarshal(m.Value, &a) == nil && a["kind"] == "deny" {
						denied[a["subject"].(string)+"/"+a["category"].(string)] = a
					}
				}
			}
			for _, r := range rows {
				x := explained[r.id]
				a, isDenied := denied[consent.UserKey(r.tenant, r.user)+"/"+r.category]
				fw, isForwarded := forwarded[r.id]
				switch {
				case r.want == consent.LevelDeny && (!isDenied || isForwarded):
					t.Errorf("%s: the stage did not deny it (forwarded %q)", r.id, fw)
				case r.want != consent.LevelDeny && (isDenied || fw != r.want.String()):
					t.Errorf("%s: the stage forwarded it at %q (denied: %v), explain says %s", r.id, fw, isDenied, x.Level)
				case isDenied:
					if a["reason"] != x.Reason {
						t.Errorf("%s: audit reason %q, explain %q", r.id, a["reason"], x.Reason)
					}
					if x.DecidedBy != nil && a["record"] != fmt.Sprintf("%s@%d/%d", x.DecidedBy.Key, x.DecidedBy.Partition, x.DecidedBy.Offset) {
						t.Errorf("%s: audit cites %v, explain %+v", r.id, a["record"], x.DecidedBy)
					}
				}
			}
		})
	}
}

func event(stream, id, tenant, user string) string {
	ev := map[string]any{"event_id": id, "tenant_id": tenant, "user_id": user, "ts": "2026-11-22T10:00:00Z"}
	switch stream {
	case "chat":
		ev["type"], ev["channel_id"], ev["text"] = "chat.message", "C1", "write to alice@example.com"
	case "files":
		ev["type"] = "file.shared"
		ev["file"] = map[string]any{"id": "F1", "name": "a.txt", "mimetype": "text/plain", "size": 2, "content_b64": "aGk="}
	case "messages":
		ev["type"], ev["from"], ev["to"], ev["subject"], ev["body"] = "message", "a@example.com", []string{"b@example.com"}, "s", "b"
	}
	b, _ := json.Marshal(ev)
	return string(b)
}

// processorLevel is the stage's decision for one event: the Processor's
// outcome and, when forwarded, its decision header.
func processorLevel(t *testing.T, app *wire.App, cfg *config.File, stream, ev string) consent.Level {
	t.Helper()
	sc, err := cfg.Stream(stream)
	if err != nil {
		t.Fatal(err)
	}
	var b proxy.Batch
	if err := app.Processor.Process(&b, []kafka.Message{{Topic: sc.Input, Value: []byte(ev)}}); err != nil {
		t.Fatal(err)
	}
	switch b.Outcomes[0] {
	case proxy.Denied:
		return consent.LevelDeny
	case proxy.Forwarded:
		for _, m := range b.Out {
			for _, h := range m.Headers {
				if m.Topic == sc.Output && h.Key == proxy.HeaderDecision {
					l, err := consent.ParseLevel(string(h.Value))
					if err != nil {
						t.Fatal(err)
					}
					return l
				}
			}
		}
	}
	t.Fatalf("processor: outcome %v, reasons %v", b.Outcomes, b.Reasons)
	return 0
}

func mustLevel(s string) consent.Level {
	l, err := consent.ParseLevel(s)
	if err != nil {
		panic(err)
	}
	return l
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// TestConsentImportExport imports a file with good and bad lines, checks
// that exactly the good lines were written, exports the state and imports
// the export into a second topic, which must end in the same state.
func TestConsentImportExport(t *testing.T) {
	e := newConsentEnv(t, nil, false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	gone := consent.Subject{Kind: consent.SubjectTenant, Tenant: "gone"}
	if _, err := e.admin.Set(ctx, gone, consent.Record{Default: consent.LevelAllow}); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		/* 1 */ `{"tenant":"T1","value":{"default":"deny","categories":{"chat":"anonymized"},"updated_by":"migration"}}`,
		/* 2 */ `{"tenant":"T2","value":{"default":"sometimes"}}`,
		/* 3 */ `{"tenant":"acme:eu%1","user":"Zürich ü","value":{"default":"allow"}}`,
		/* 4 */ ``,
		/* 5 */ `{"tenant":"T3","usr":"U","value":{"default":"allow"}}`,
		/* 6 */ `{"key":"u:T1:U%3A1","value":{"default":"anonymized","updated_at":"2026-01-01T00:00:00Z"}}`,
		/* 7 */ `{"tenant":"T4","value":{"default":"allow"}`,
		/* 8 */ `{"tenant":"gone","value":null}`,
		/* 9 */ `{"tenant":"","user":"lone","value":{"default":"deny","categories":{"files":"allow"}}}`,
		/* 10 */ `{"tenant":"T5"}`,
		/* 11 */ `{"key":"u:T1","value":null}`,
	}
	goodLines := []int{1, 3, 6, 8, 9}
	badLines := []int{2, 5, 7, 10, 11}
	file := filepath.Join(t.TempDir(), "consent.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := e.records()

	code, out, errs := e.run("import", "-dry-run", file)
	if code != exitFailed || e.records() != before || !strings.Contains(out, "5 valid lines") {
		t.Fatalf("import -dry-run: exit %d, %d records written\n%s%s", code, e.records()-before, out, errs)
	}

	// The file before the flags works too.
	var o, eb bytes.Buffer
	code = dispatch([]string{"consent", "import", file, "-config", e.path, "-by", "importer"}, strings.NewReader(""), &o, &eb)
	out, errs = o.String(), eb.String()
	if code != exitFailed {
		t.Fatalf("import: exit %d, want %d\n%s%s", code, exitFailed, out, errs)
	}
	for _, n := range badLines {
		if !strings.Contains(errs, fmt.Sprintf("%s:%d: ", file, n)) {
			t.Errorf("line %d not reported:\n%s", n, errs)
		}
	}
	for _, n := range goodLines {
		if strings.Contains(errs, fmt.Sprintf("%s:%d: ", file, n)) {
			t.Errorf("good line %d reported:\n%s", n, errs)
		}
	}
	if n := strings.Count(errs, file+":"); n != len(badLines) {
		t.Errorf("%d lines reported, want %d:\n%s", n, len(badLines), errs)
	}

	// Exactly the good lines are in the topic, nothing else.
	var written []string
	for _, m := range kafkatest.ReadAll(t, e.addr, e.cfg.Consent.Topic, 30*time.Second) {
		if string(m.Key) != gone.Key() || m.Value == nil {
			written = append(written, string(m.Key))
		}
	}
	want := []string{consent.TenantKey("T1"), consent.UserKey("acme:eu%1", "Zürich ü"), consent.UserKey("T1", "U:1"), gone.Key(), consent.UserKey("", "lone")}
	sort.Strings(written)
	sort.Strings(want)
	if !reflect.DeepEqual(written, want) {
		t.Errorf("written keys %q, want %q", written, want)
	}
	snap, err := e.admin.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t1, _ := snap.Get(consent.Subject{Kind: consent.SubjectTenant, Tenant: "T1"})
	if t1.Record.UpdatedBy != "migration" || t1.Record.UpdatedAt == "" || t1.Record.Categories["chat"] != consent.LevelAnonymized {
		t.Errorf("T1: %+v", t1.Record)
	}
	u1, _ := snap.Get(consent.Subject{Kind: consent.SubjectUser, Tenant: "T1", User: "U:1"})
	if u1.Record.UpdatedBy != "importer" || u1.Record.UpdatedAt != "2026-01-01T00:00:00Z" {
		t.Errorf("u:T1:U%%3A1: %+v", u1.Record)
	}
	if g, _ := snap.Get(gone); !g.Deleted() {
		t.Errorf("%s not deleted: %+v", gone.Key(), g)
	}

	// export → import into a fresh topic → the same state.
	code, exported, errs := e.run("export")
	if code != exitOK {
		t.Fatalf("export: exit %d\n%s", code, errs)
	}
	if n := strings.Count(exported, "\n"); n != 4 {
		t.Errorf("export wrote %d lines, want 4:\n%s", n, exported)
	}
	e2 := newConsentEnv(t, nil, false)
	file2 := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file2, []byte(exported), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := e2.run("import", file2); code != exitOK {
		t.Fatalf("import of the export: exit %d\n%s%s", code, out, errs)
	}
	snap2, err := e2.admin.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	state := func(s *consent.Snapshot) map[string]consent.Record {
		m := map[string]consent.Record{}
		for _, e := range s.Current() {
			m[e.Key] = e.Record
		}
		return m
	}
	if a, b := state(snap), state(snap2); !reflect.DeepEqual(a, b) {
		t.Errorf("state after export/import:\n got %v\nwant %v", b, a)
	}
	if _, again, _ := e2.run("export"); again != exported {
		t.Errorf("export of the copy differs:\n%s\nwant\n%s", again, exported)
	}
}

func TestConsentUsage(t *testing.T) {
	for _, args := range [][]string{{"consent"}, {"consent", "-h"}} {
		var out, errs bytes.Buffer
		code := dispatch(args, strings.NewReader(""), &out, &errs)
		want := exitUsage
		if len(args) > 1 {
			want = exitOK
		}
		if code != want || !strings.Contains(errs.String(), "explain") {
			t.Errorf("%v: exit %d\n%s", args, code, errs.String())
		}
	}
	for _, c := range consentCommands() {
		var out, errs bytes.Buffer
		if code := dispatch([]string{"consent", c.name, "-h"}, strings.NewReader(""), &out, &errs); code != exitOK ||
			!strings.Contains(errs.String(), "-config") {
			t.Errorf("consent %s -h: exit %d\n%s", c.name, code, errs.String())
		}
		if c.name == "import" && !strings.Contains(errs.String(), `{"key":"u:T:U","value":{...}}`) {
			t.Errorf("import -h does not document the file format:\n%s", errs.String())
		}
	}
	for _, args := range [][]string{
		{"consent", "nope"},
		{"consent", "explain", "-user", "U", "-category", "chat"},   // no -tenant
		{"consent", "explain", "-tenant", "T", "-category", "chat"}, // no -user
		{"consent", "explain", "-tenant", "T", "-user", "U"},        // no -category
		{"consent", "import"},                                         // no file
		{"consent", "import", "a.jsonl", "b.jsonl"},                   // two files
		{"consent", "get", "-user", "U"},                              // no -tenant
		{"consent", "set", "-tenant", "T", "-config", "/nonexistent"}, // bad config
	} {
		var out, errs bytes.Buffer
		if code := dispatch(args, strings.NewReader(""), &out, &errs); code != exitUsage || errs.Len() == 0 {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, errs.String())
		}
	}
}
