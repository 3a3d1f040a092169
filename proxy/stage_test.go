package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

// env is one stage under test on the real broker, with topics of its own.
type env struct {
	t      *testing.T
	addr   string
	cfg    *config.File
	cancel context.CancelFunc
	done   chan error
	app    *wire.App
}

// newEnv loads the reference config, renames every topic and the group to
// names unique to the test, and creates the topics.
func newEnv(t *testing.T, mutate func(*config.File)) *env {
	t.Helper()
	addr := kafkatest.Brokers(t)
	t.Setenv("ANONPROXY_HMAC_KEY", "k1:test-key-0123456789abcdef0123456789")
	t.Setenv("ANONPROXY_BROKERS", "")
	cfg, err := config.Load("../configs/example.yaml")
	if err != nil {
		t.Fatalf("reference config: %v", err)
	}
	cfg.PrefixTopics(kafkatest.Topic(t, "st"))
	cfg.Kafka.Brokers = []string{addr}
	cfg.Stage.FetchMaxWait = proxy.Duration(20 * time.Millisecond)
	if mutate != nil {
		mutate(cfg)
	}
	kafkatest.CreateCompactedTopic(t, addr, cfg.Consent.Topic, 3)
	for _, topic := range []string{cfg.Stage.QuarantineTopic, cfg.Stage.AuditTopic} {
		kafkatest.CreateTopic(t, addr, topic, 1, nil)
	}
	for _, s := range cfg.Streams {
		kafkatest.CreateTopic(t, addr, s.Input, 2, nil)
		kafkatest.CreateTopic(t, addr, s.Output, 2, nil)
	}
	return &env{t: t, addr: addr, cfg: cfg}
}

func (e *env) start() {
	e.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	app, err := wire.Build(e.cfg, log, nil)
	if err != nil {
		e.t.Fatalf("wire: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.app, e.cancel, e.done = app, cancel, make(chan error, 1)
	go func() { e.done <- app.Run(ctx, 30*time.Second) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer wcancel()
	if err := app.Loader.WaitReady(wctx); err != nil {
		e.t.Fatalf("consent table not ready: %v", err)
	}
	e.t.Cleanup(e.stop)
}

// stop drains the stage the way SIGTERM does and checks that it exits cleanly.
func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("stage exit: %v", err)
		}
	case <-time.After(45 * time.Second):
		e.t.Errorf("stage did not stop within 45 s of cancellation")
	}
}

func (e *env) setConsent(key string, value any) {
	e.t.Helper()
	m := kafka.Message{Key: []byte(key)}
	switch v := value.(type) {
	case nil:
	case string:
		m.Value = []byte(v)
	default:
		m.Value, _ = json.Marshal(v)
	}
	kafkatest.Produce(e.t, e.addr, e.cfg.Consent.Topic, kafka.Zstd, m)
}

func (e *env) stream(name string) proxy.StreamConfig {
	for _, s := range e.cfg.Streams {
		if s.Name == name {
			return s
		}
	}
	e.t.Fatalf("no stream %s", name)
	return proxy.StreamConfig{}
}

func (e *env) produce(stream string, events ...string) {
	e.t.Helper()
	msgs := make([]kafka.Message, len(events))
	for i, ev := range events {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(ev)}
	}
	kafkatest.Produce(e.t, e.addr, e.stream(stream).Input, kafka.Lz4, msgs...)
}

// result is where each input event ended up, by event id (or by source
// coordinates for events without a readable id).
type result struct {
	forwarded   map[string][]kafka.Message // by event_id
	denied      map[string][]map[string]any
	quarantined map[string][]map[string]any // by source
	sources     map[string]string           // source -> event_id
}

func (r *result) accounted() int {
	n := 0
	for _, m := range []int{len(r.forwarded), len(r.denied), len(r.quarantined)} {
		n += m
	}
	return n
}

// collect reads the inputs, outputs, quarantine and audit topics until want
// inputs are accounted for (or the deadline passes) and returns the outcome.
func (e *env) collect(want int, timeout time.Duration) *result {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := e.read()
		if r.accounted() >= want || time.Now().After(deadline) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *env) read() *result {
	r := &result{forwarded: map[string][]kafka.Message{}, denied: map[string][]map[string]any{},
		quarantined: map[string][]map[string]any{}, sources: map[string]string{}}
	for _, s := range e.cfg.Streams {
		for _, m := range kafkatest.ReadAll(e.t, e.addr, s.Input, 30*time.Second) {
			var ev struct {
				EventID string `json:"event_id"`
			}
			_ = json.Unmarshal(m.Value, &ev)
			r.sources[fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)] = ev.EventID
		}
	}
	for _, s := range e.cfg.Streams {
		for _, m := range kafkatest.ReadAll(e.t, e.addr, s.Output, 30*time.Second) {
			src := header(m, proxy.HeaderSource)
			id := r.sources[src]
			if id == "" {
				e.t.Errorf("output record with unknown source %q", src)
			}
			r.forwarded[id] = append(r.forwarded[id], m)
		}
	}
	for _, m := range kafkatest.ReadAll(e.t, e.addr, e.cfg.Stage.AuditTopic, 30*time.Second) {
		var a map[string]any
		if err := json.Unmarshal(m.Value, &a); err != nil {
			e.t.Errorf("audit record is not JSON: %v", err)
			continue
		}
		if a["kind"] == "deny" {
			id := r.sources[a["source"].(string)]
			r.denied[id] = append(r.denied[id], a)
		}
	}
	for _, m := range kafkatest.ReadAll(e.t, e.addr, e.cfg.Stage.QuarantineTopic, 30*time.Second) {
		var q map[string]any
		if err := json.Unmarshal(m.Value, &q); err != nil {
			e.t.Errorf("quarantine record is not JSON: %v", err)
			continue
		}
		src := q["source"].(string)
		r.quarantined[src] = append(r.quarantined[src], q)
	}
	return r
}

func header(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func chatEvent(id, tenant, user, text string) string {
	b, _ := json.Marshal(map[string]any{"event_id": id, "type": "chat.message", "tenant_id": tenant, "user_id": user,
		"channel_id": "C1", "ts": "2026-11-22T10:00:00Z", "text": text})
	return string(b)
}

func level(l string) map[string]any { return map[string]any{"default": l} }

// TestDecisionMatrix drives every row of the composition rules (tenant
// record, user record, both, neither × deny/anonymized/allow) in both policy
// modes, plus per-category levels, through the real stage.
func TestDecisionMatrix(t *testing.T) {
	levels := []string{"", "deny", "anonymized", "allow"} // "" = no record
	for _, mode := range []struct {
		name string
		def  consent.Level
	}{{"opt-in", consent.LevelDeny}, {"opt-out", consent.LevelAnonymized}} {
		t.Run(mode.name, func(t *testing.T) {
			e := newEnv(t, func(c *config.File) {
				c.Policy.Defaults = map[string]consent.Level{"chat": mode.def, "files": mode.def, "messages": mode.def}
			})
			want := map[string]consent.Level{}
			var events []string
			for ti, tl := range levels {
				for ui, ul := range levels {
					tenant, user := fmt.Sprintf("T%d", ti), fmt.Sprintf("U%d-%d", ti, ui)
					if tl != "" && ui == 0 {
						e.setConsent(consent.TenantKey(tenant), level(tl))
					}
					if ul != "" {
						e.setConsent(consent.UserKey(tenant, user), level(ul))
					}
					exp := mode.def
					switch {
					case tl != "" && ul != "":
						exp = consent.Min(mustLevel(tl), mustLevel(ul))
					case tl != "":
						exp = mustLevel(tl)
					case ul != "":
						exp = mustLevel(ul)
					}
					id := fmt.Sprintf("m-%s-%s", orNone(tl), orNone(ul))
					want[id] = exp
					events = append(events, chatEvent(id, tenant, user, "write to alice@example.com"))
				}
			}
			// Per-category levels: a tenant whose chat is allowed, files denied, messages default anonymized.
			e.setConsent(consent.TenantKey("TC"), map[string]any{"default": "anonymized", "categories": map[string]string{"chat": "allow", "files": "deny"}})
			events = append(events, chatEvent("cat-chat", "TC", "UC", "hi"))
			want["cat-chat"] = consent.LevelAllow
			e.start()
			e.produce("chat", events...)
			e.produce("files", `{"event_id":"cat-files","type":"file.shared","tenant_id":"TC","user_id":"UC","ts":"2026-11-22T10:00:00Z","file":{"id":"F1","name":"a.txt","mimetype":"text/plain","size":2,"content_b64":"aGk="}}`)
			want["cat-files"] = consent.LevelDeny
			e.produce("messages", `{"event_id":"cat-messages","type":"message","tenant_id":"TC","user_id":"UC","ts":"2026-11-22T10:00:00Z","from":"a@example.com","to":["b@example.com"],"subject":"s","body":"b"}`)
			want["cat-messages"] = consent.LevelAnonymized

			r := e.collect(len(want), 60*time.Second)
			for id, exp := range want {
				checkOutcome(t, r, id, exp)
			}
		})
	}
}

func checkOutcome(t *testing.T, r *result, id string, exp consent.Level) {
	t.Helper()
	fw, dn := r.forwarded[id], r.denied[id]
	switch exp {
	case consent.LevelDeny:
		if len(fw) > 0 || len(dn) == 0 {
			t.Errorf("%s: want denied (audit record, no output); got %d outputs, %d denials", id, len(fw), len(dn))
		}
	default:
		if len(fw) == 0 || len(dn) > 0 {
			t.Errorf("%s: want forwarded at %s; got %d outputs, %d denials", id, exp, len(fw), len(dn))
			return
		}
		if got := header(fw[0], proxy.HeaderDecision); got != exp.String() {
			t.Errorf("%s: decision header %q, want %q", id, got, exp)
		}
		if !json.Valid(fw[0].Value) {
			t.Errorf("%s: output is not valid JSON", id)
		}
		anonymized := strings.Contains(string(fw[0].Value), "alice@example.com")
		if exp == consent.LevelAnonymized && anonymized {
			t.Errorf("%s: e-mail address survived anonymization: %s", id, fw[0].Value)
		}
	}
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
