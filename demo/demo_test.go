package demo

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo briefly and checks its summary: every event is
// accounted for, each outcome occurs, the opt-out took effect within the
// bound and nothing of the opted-out user leaked, and the samples print.
func TestDemo(t *testing.T) {
	t.Setenv("ANONPROXY_HMAC_KEY", "k1:demo-test-key-0123456789abcdef")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	sum, err := Run(ctx, Options{Duration: 6 * time.Second, Rate: 300}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	t.Log(out.String())
	if !sum.Accounted() {
		t.Errorf("not every event accounted for: %+v", sum)
	}
	if sum.ForwardedAllow == 0 || sum.ForwardedAnonymized == 0 || sum.Denied == 0 || sum.Quarantined == 0 {
		t.Errorf("an outcome never occurred: %+v", sum)
	}
	if !sum.OptOutSeen || sum.OptOutApplied > time.Second {
		t.Errorf("opt-out applied after %s, want within consent.max_staleness (1s)", sum.OptOutApplied)
	}
	if sum.ForwardedAfterOptOut != 0 {
		t.Errorf("%d events of the opted-out user forwarded after the bound", sum.ForwardedAfterOptOut)
	}
	for _, k := range []string{"detector email", "detector github_token", "action pseudonymize"} {
		if sum.Redactions[k] == 0 {
			t.Errorf("no redactions counted for %s: %v", k, sum.Redactions)
		}
	}
	for _, want := range []string{"Summary", "allow — ", "anonymized — ", "deny — ", "quarantined — ", "⟦[SECRET]⟧", "Live opt-out"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(sampleOut(out.String(), "anonymized — "), "@example.com") {
		t.Errorf("anonymized sample output still shows an e-mail address")
	}
}

func sampleOut(all, title string) string {
	i := strings.Index(all, title)
	if i < 0 {
		return ""
	}
	rest := all[i:]
	j := strings.Index(rest, "out: ")
	if j < 0 {
		return ""
	}
	line, _, _ := strings.Cut(rest[j:], "\n")
	return line
}

func TestMarkChanges(t *testing.T) {
	got := markChanges(`{"text":"mail bob@x.com now","u":"U1"}`, `{"text":"mail [EMAIL] now","u":"ps_k1_abc"}`, "<", ">")
	want := `{"text":"mail <[EMAIL]> now","u":"<ps_k1_abc>"}`
	if got != want {
		t.Errorf("markChanges = %s, want %s", got, want)
	}
}
