package proxy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/proxy"
)

// TestTombstoneAndMalformedConsent: a tombstone reverts a subject to the
// configured default; a malformed consent value counts as deny.
func TestTombstoneAndMalformedConsent(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.UserKey("T1", "gone"), level("allow"))
	e.setConsent(consent.UserKey("T1", "gone"), nil) // tombstone: back to default deny
	e.setConsent(consent.UserKey("T1", "bad"), `{"default":"allow"`)
	e.setConsent(consent.UserKey("T1", "unknown-level"), `{"default":"sometimes"}`)
	e.setConsent(consent.UserKey("T1", "ok"), level("allow"))
	e.start()
	e.produce("chat",
		chatEvent("gone", "T1", "gone", "x"), chatEvent("bad", "T1", "bad", "x"),
		chatEvent("unknown-level", "T1", "unknown-level", "x"), chatEvent("ok", "T1", "ok", "x"))
	r := e.collect(4, 60*time.Second)
	checkOutcome(t, r, "gone", consent.LevelDeny)
	checkOutcome(t, r, "bad", consent.LevelDeny)
	checkOutcome(t, r, "unknown-level", consent.LevelDeny)
	checkOutcome(t, r, "ok", consent.LevelAllow)
	if got := r.denied["bad"]; len(got) > 0 && got[0]["reason"] != consent.ReasonMalformed.String() {
		t.Errorf("denial of a malformed record cites %v, want %q", got[0]["reason"], consent.ReasonMalformed)
	}
}

// TestQuarantine: malformed events, missing ids and oversized events are
// quarantined with a reason, never forwarded and never silently dropped.
func TestQuarantine(t *testing.T) {
	e := newEnv(t, func(c *config.File) { c.Stage.MaxEventBytes = 4096 })
	e.setConsent(consent.TenantKey("T1"), level("allow"))
	e.start()
	big := chatEvent("big", "T1", "U1", strings.Repeat("a", 5000))
	cases := []struct{ event, reason string }{
		{`{"event_id":"trunc","tenant_id":"T1","user_id":"U1","text":"x`, proxy.ReasonInvalidJSON},
		{"not json at all", proxy.ReasonInvalidJSON},
		{`{"event_id":"no-user","tenant_id":"T1","text":"x"}`, proxy.ReasonMissingUser},
		{`{"event_id":"no-tenant","user_id":"U1","text":"x"}`, proxy.ReasonMissingTenant},
		{`{"event_id":"obj-user","tenant_id":"T1","user_id":{"id":"U1"},"text":"x"}`, proxy.ReasonMissingUser},
		{`{"event_id":"dup","tenant_id":"T-deny","tenant_id":"T1","user_id":"U1","text":"x"}`, proxy.ReasonDuplicateID},
		{big, proxy.ReasonTooLarge},
	}
	var events []string
	for _, c := range cases {
		events = append(events, c.event)
	}
	events = append(events, chatEvent("fine", "T1", "U1", "hello"))
	e.produce("chat", events...)
	r := e.collect(len(events), 60*time.Second)
	if len(r.forwarded) != 1 || len(r.forwarded["fine"]) != 1 {
		t.Errorf("forwarded %d events, want only the valid one", len(r.forwarded))
	}
	reasons := map[string]int{}
	for _, qs := range r.quarantined {
		for _, q := range qs {
			reasons[q["reason"].(string)]++
			if _, ok := q["payload"]; ok {
				t.Errorf("quarantine record carries the payload by default")
			}
		}
	}
	want := map[string]int{}
	for _, c := range cases {
		want[c.reason]++
	}
	for reason, n := range want {
		if reasons[reason] != n {
			t.Errorf("quarantined for %s: %d, want %d (all: %v)", reason, reasons[reason], n, reasons)
		}
	}
}

// TestRevocationMidStream: after an opt-out is acknowledged by the broker
// and the staleness bound has passed, no event of that subject is forwarded.
func TestRevocationMidStream(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.UserKey("T1", "U1"), level("allow"))
	e.start()
	e.produce("chat", chatEvent("before", "T1", "U1", "x"))
	if r := e.collect(1, 30*time.Second); len(r.forwarded["before"]) != 1 {
		t.Fatalf("event before the revocation was not forwarded")
	}
	e.setConsent(consent.UserKey("T1", "U1"), level("deny")) // returns once acknowledged by all ISRs
	time.Sleep(time.Duration(e.cfg.Consent.MaxStalenessOrDefault()) + 200*time.Millisecond)
	var events []string
	for i := 0; i < 50; i++ {
		events = append(events, chatEvent(fmt.Sprintf("after-%d", i), "T1", "U1", "x"))
	}
	e.produce("chat", events...)
	r := e.collect(51, 60*time.Second)
	for i := 0; i < 50; i++ {
		checkOutcome(t, r, fmt.Sprintf("after-%d", i), consent.LevelDeny)
	}
}

// TestRestartResumesFromCommittedOffsets: a stage stopped (SIGTERM path)
// and started again with the same group forwards everything exactly once
// across the two runs, and the second run re-reads nothing it committed.
func TestRestartResumesFromCommittedOffsets(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.TenantKey("T1"), level("anonymized"))
	e.start()
	var first []string
	for i := 0; i < 200; i++ {
		first = append(first, chatEvent(fmt.Sprintf("a-%d", i), "T1", "U1", "mail bob@example.com"))
	}
	e.produce("chat", first...)
	if r := e.collect(200, 60*time.Second); r.accounted() != 200 {
		t.Fatalf("first run accounted for %d of 200", r.accounted())
	}
	e.stop()
	var second []string
	for i := 0; i < 200; i++ {
		second = append(second, chatEvent(fmt.Sprintf("b-%d", i), "T1", "U1", "mail bob@example.com"))
	}
	e.produce("chat", second...) // produced while no stage runs
	e.start()
	r := e.collect(400, 60*time.Second)
	for _, id := range append(ids(first), ids(second)...) {
		if n := len(r.forwarded[id]); n != 1 {
			t.Errorf("%s forwarded %d times, want exactly once after a clean stop", id, n)
		}
	}
}

func ids(events []string) []string {
	var out []string
	for _, ev := range events {
		var v struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal([]byte(ev), &v)
		out = append(out, v.EventID)
	}
	return out
}

// TestOutputWithKcat reads the output with an independent client: the
// headers are there and every value is valid JSON with the PII replaced.
func TestOutputWithKcat(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.TenantKey("T1"), level("anonymized"))
	e.start()
	e.produce("chat", chatEvent("kc-1", "T1", "U1", "call +1 415 555 0134 or mail carol@example.com"),
		chatEvent("kc-2", "T1", "U2", "token ghp_abcdefghijklmnopqrstuvwxyz0123456789 here"))
	if r := e.collect(2, 60*time.Second); len(r.forwarded) != 2 {
		t.Fatalf("forwarded %d of 2", len(r.forwarded))
	}
	out := kafkatest.Kcat(t, e.addr, 30*time.Second, "-C", "-t", e.stream("chat").Output, "-o", "beginning", "-e", "-q",
		"-f", "%h\t%s\n")
	sc := bufio.NewScanner(bytes.NewReader(out))
	n := 0
	for sc.Scan() {
		hdrs, value, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("kcat line without a tab: %q", sc.Text())
		}
		n++
		if !strings.Contains(hdrs, proxy.HeaderDecision+"=anonymized") || !strings.Contains(hdrs, proxy.HeaderSource+"=") {
			t.Errorf("headers %q lack the decision or source header", hdrs)
		}
		if !json.Valid([]byte(value)) {
			t.Errorf("kcat read invalid JSON: %s", value)
		}
		for _, pii := range []string{"carol@example.com", "555 0134", "ghp_abcdefghij", `"U1"`, `"U2"`} {
			if strings.Contains(value, pii) {
				t.Errorf("output still contains %q: %s", pii, value)
			}
		}
	}
	if n != 2 {
		t.Errorf("kcat read %d records, want 2", n)
	}
}
