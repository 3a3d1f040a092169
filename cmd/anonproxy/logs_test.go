package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

// logCanary marks customer content. It is put into every part of the events
// (ids, free text, e-mail addresses, tokens, file names and contents,
// record keys and headers) and into the free-form fields of consent values,
// and must then appear in no log line and no metric.
const logCanary = "CANARYq7Zx"

// syncBuffer is a log sink shared by the stage's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoPayloadInLogsOrMetrics runs the stage, wired as `anonproxy run`
// wires it, with the command's JSON logger at debug level, over
// canary-laden traffic that is forwarded (allow and anonymized), denied and
// quarantined (invalid JSON, invalid UTF-8, too large, bad base64,
// duplicate ids, missing ids), next to malformed consent records. No log
// line and nothing /metrics serves may contain the canary (CONTRACT §6).
func TestNoPayloadInLogsOrMetrics(t *testing.T) {
	addr := kafkatest.Brokers(t)
	t.Setenv("ANONPROXY_HMAC_KEY", "k1:logs-test-key-0123456789abcdef")
	t.Setenv("ANONPROXY_BROKERS", "")
	cfg, err := config.Load("../../configs/example.yaml")
	if err != nil {
		t.Fatalf("reference config: %v", err)
	}
	cfg.PrefixTopics(kafkatest.Topic(t, "lg"))
	cfg.Kafka.Brokers = []string{addr}
	cfg.Stage.FetchMaxWait = proxy.Duration(20 * time.Millisecond)
	cfg.Stage.MaxEventBytes = 64 << 10
	cfg.Log = config.LogConfig{Level: "debug", Format: "json"}
	kafkatest.CreateCompactedTopic(t, addr, cfg.Consent.Topic, 3)
	for _, topic := range []string{cfg.Stage.QuarantineTopic, cfg.Stage.AuditTopic} {
		kafkatest.CreateTopic(t, addr, topic, 1, nil)
	}
	stream := map[string]proxy.StreamConfig{}
	for _, s := range cfg.Streams {
		kafkatest.CreateTopic(t, addr, s.Input, 2, nil)
		kafkatest.CreateTopic(t, addr, s.Output, 2, nil)
		stream[s.Name] = s
	}

	c := logCanary
	consentRecords := []kafka.Message{
		{Key: []byte(consent.TenantKey("TA")), Value: []byte(`{"default":"allow","updated_by":"admin:` + c + `"}`)},
		{Key: []byte(consent.TenantKey("TN")), Value: []byte(`{"default":"anonymized","updated_by":"` + c + `","note":"` + c + `"}`)},
		{Key: []byte(consent.TenantKey("TD")), Value: []byte(`{"default":"deny","updated_at":"` + c + `"}`)},
		// Malformed values (deny, logged at warn once the table is ready,
		// at debug during the initial load: both are captured).
		{Key: []byte(consent.UserKey("TA", "bad1")), Value: []byte(`{"default":"allow","updated_by":"` + c)},
		{Key: []byte(consent.UserKey("TA", "bad2")), Value: []byte(`{"default":{"` + c + `":1}}`)},
		{Key: []byte(consent.UserKey("TA", "bad3")), Value: []byte(`{"categories":["` + c + `"]}`)},
		{Key: []byte(consent.UserKey("TA", "bad4")), Value: []byte("\xff" + c)},
		{Key: []byte("no-prefix"), Value: []byte(`{"default":"allow","updated_by":"` + c + `"}`)}, // malformed key
	}
	kafkatest.Produce(t, addr, cfg.Consent.Topic, kafka.Zstd, consentRecords...)

	logs := &syncBuffer{}
	log := newLogger(cfg.Log, logs)
	app, err := wire.Build(cfg, log, nil)
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, 30*time.Second) }()
	stopped := false
	stopStage := func() {
		if !stopped {
			stopped = true
			stop()
			if err := <-done; err != nil {
				t.Errorf("stage exit: %v", err)
			}
		}
	}
	defer stopStage()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := app.Loader.WaitReady(wctx); err != nil {
		t.Fatalf("consent table not ready: %v", err)
	}
	// More malformed consent after the table is ready: logged at warn.
	kafkatest.Produce(t, addr, cfg.Consent.Topic, kafka.Zstd,
		kafka.Message{Key: []byte(consent.UserKey("TA", "bad5")), Value: []byte(`{"default":"allow","updated_by":"` + c)},
		kafka.Message{Key: []byte(consent.UserKey("TA", "bad6")), Value: []byte(`[{"` + c + `":true}]`)})

	secretFile := base64.StdEncoding.EncodeToString([]byte("notes " + c + " mail " + c + "@example.com ghp_" + c + "abcdefghijklmnopqrstuvwxyz01"))
	chat := func(tenant, user, text string) string {
		b, _ := json.Marshal(map[string]any{"event_id": "ev-" + c, "type": "chat.message", "tenant_id": tenant, "user_id": user,
			"channel_id": "C-" + c, "ts": "2026-11-22T10:00:00Z", "text": text,
			"attachments": []map[string]any{{"id": "F-" + c, "name": c + ".txt", "mimetype": "text/plain", "content_b64": secretFile}}})
		return string(b)
	}
	text := "hi " + c + ", mail " + c + "@example.com, call +1 415 555 0134, token ghp_" + c + "abcdefghijklmnopqrstuvwxyz01 <@U-" + c + ">"
	events := map[string][]string{
		"chat": {
			chat("TA", "U-"+c, text),                               // allow
			chat("TN", "U-"+c, text),                               // anonymized
			chat("TD", "U-"+c, text),                               // denied by the tenant
			chat("T-"+c, "U-"+c, text),                             // denied by default (opt-in)
			chat("TA", "bad1", text),                               // denied: malformed consent
			`{"tenant_id":"TA","user_id":"` + c + `","text":"` + c, // invalid JSON
			"{\"tenant_id\":\"TA\",\"user_id\":\"U1\",\"text\":\"" + c + "\xff\"}",                 // invalid UTF-8
			`{"tenant_id":"TA","tenant_id":"` + c + `","user_id":"U1","text":"` + c + `"}`,         // duplicate id
			`{"tenant_id":"TA","text":"` + c + `"}`,                                                // no user
			`{"tenant_id":"TA","user_id":"U1","text":"` + c + strings.Repeat(" "+c, 20_000) + `"}`, // too large
			`{"tenant_id":"TA","user_id":"U1","text":"` + c + `","x":` + strings.Repeat("[", 300) + strings.Repeat("]", 300) + `}`,
		},
		"files": {
			`{"tenant_id":"TA","user_id":"U-` + c + `","file":{"name":"` + c + `","mimetype":"text/plain","content_b64":"` + c + `!!"}}`,
			`{"tenant_id":"TA","user_id":"U-` + c + `","file":{"name":"` + c + `","mimetype":"text/plain","content_encoding":"gzip","content_b64":"` + secretFile + `"}}`,
			`{"tenant_id":"TN","user_id":"U-` + c + `","file":{"name":"` + c + `.txt","mimetype":"text/plain","content_b64":"` + secretFile + `"}}`,
		},
		"messages": {
			`{"tenant_id":"TN","user_id":"U-` + c + `","from":"` + c + ` <` + c + `@example.com>","to":["` + c + `@example.com"],"subject":"` + c + `","body":"` + c + `"}`,
			`{"tenant_id":"TA","user_id":"U-` + c + `","from":"` + c + `@example.com","to":["` + c + `@example.com"],"subject":"` + c + `","body":"` + c + `"}`,
		},
	}
	total := 0
	for name, evs := range events {
		msgs := make([]kafka.Message, len(evs))
		for i, ev := range evs {
			msgs[i] = kafka.Message{Key: []byte(fmt.Sprintf("%s-%d-%s", name, i, c)), Value: []byte(ev),
				Headers: []kafka.Header{{Key: "x-" + c, Value: []byte(c)}}}
		}
		kafkatest.Produce(t, addr, stream[name].Input, kafka.Lz4, msgs...)
		total += len(msgs)
	}

	// Wait until every event is accounted for in the output, quarantine
	// and audit topics.
	count := func() int {
		n := 0
		for _, s := range cfg.Streams {
			n += len(kafkatest.ReadAll(t, addr, s.Output, 30*time.Second))
		}
		n += len(kafkatest.ReadAll(t, addr, cfg.Stage.QuarantineTopic, 30*time.Second))
		for _, m := range kafkatest.ReadAll(t, addr, cfg.Stage.AuditTopic, 30*time.Second) {
			if bytes.Contains(m.Value, []byte(`"kind":"deny"`)) {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(60 * time.Second); count() < total; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d events accounted for", count(), total)
		}
	}

	rec := httptest.NewRecorder()
	app.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	metrics := rec.Body.String()
	stopStage() // the shutdown path logs too

	if !strings.Contains(metrics, "anonproxy_events_quarantined_total") || !strings.Contains(metrics, "anonproxy_consent_malformed_total") {
		t.Fatalf("scrape lacks the stage's metrics:\n%s", metrics)
	}
	if strings.Contains(metrics, c) {
		for _, line := range strings.Split(metrics, "\n") {
			if strings.Contains(line, c) {
				t.Errorf("metric carries the canary: %s", line)
			}
		}
	}

	out := logs.String()
	lines, debug := 0, 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		lines++
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("log line is not JSON: %v: %.200q", err, sc.Text())
		}
		if rec["level"] == "DEBUG" {
			debug++
		}
		if strings.Contains(sc.Text(), c) {
			t.Errorf("log line carries the canary: %.300s", sc.Text())
		}
	}
	if lines == 0 || debug == 0 || !strings.Contains(out, "malformed value counts as deny") {
		t.Errorf("captured %d log lines (%d at debug), want the stage's debug log with the malformed-consent lines:\n%s", lines, debug, out)
	}
	if testing.Verbose() {
		_, _ = io.WriteString(&tLogWriter{t}, out)
	}
}

// tLogWriter writes through t.Log, for -v runs.
type tLogWriter struct{ t *testing.T }

func (w *tLogWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
