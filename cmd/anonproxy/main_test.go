package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRedactCommand(t *testing.T) {
	t.Setenv("ANONPROXY_HMAC_KEY", "k1:cmd-test-key-0123456789abcdef")
	in := `{"event_id":"e1","type":"chat.message","tenant_id":"T1","user_id":"U1","channel_id":"C1","ts":"t","text":"mail ann@example.com, token ghp_abcdefghijklmnopqrstuvwxyz0123456789"}
not json
{"event_id":"e3","type":"chat.message","tenant_id":"T1","user_id":"U2","channel_id":"C1","ts":"t","text":"hi <@U1>"}
`
	code, out, errs := run(t, in, "redact", "-config", "../../configs/example.yaml", "-stream", "chat")
	if code != exitFailed {
		t.Errorf("exit %d, want %d (a bad line)", code, exitFailed)
	}
	if !strings.Contains(errs, "line 2:") || strings.Contains(errs, "not json") {
		t.Errorf("stderr should name line 2 without quoting it: %q", errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("wrote %d lines, want 2 (in order, the bad one left out):\n%s", len(lines), out)
	}
	for i, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("line %d is not valid JSON: %s", i+1, l)
		}
	}
	if !strings.Contains(lines[0], `"event_id":"e1"`) || !strings.Contains(lines[1], `"event_id":"e3"`) {
		t.Errorf("order not kept:\n%s", out)
	}
	for _, leak := range []string{"ann@example.com", "ghp_abc", `"U1"`, "<@U1>"} {
		if strings.Contains(out, leak) {
			t.Errorf("output still contains %q", leak)
		}
	}

	// At allow only credentials go.
	code, out, _ = run(t, strings.Split(in, "\n")[0]+"\n", "redact", "-config", "../../configs/example.yaml", "-stream", "chat", "-level", "allow")
	if code != exitOK || !strings.Contains(out, "ann@example.com") || strings.Contains(out, "ghp_abc") {
		t.Errorf("allow level: exit %d, output %s", code, out)
	}
}

func TestRedactCommandErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("streams:\n  - name: chat\n    actoin: x\n"), 0o600)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad config", []string{"redact", "-config", bad, "-stream", "chat"}, exitUsage, "streams[0].actoin"},
		{"unknown stream", []string{"redact", "-config", "../../configs/example.yaml", "-stream", "nope"}, exitUsage, `no stream "nope"`},
		{"bad level", []string{"redact", "-config", "../../configs/example.yaml", "-stream", "chat", "-level", "deny"}, exitUsage, "-level"},
		{"no key", []string{"redact", "-config", "../../configs/example.yaml", "-stream", "chat"}, exitRuntime, "ANONPROXY_HMAC_KEY"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("ANONPROXY_HMAC_KEY", "")
			t.Setenv("ANONPROXY_HMAC_KEY_FILE", "")
			code, _, errs := run(t, "", c.args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, c.code, errs, c.want)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	if code, out, errs := run(t, "", "config", "check", "-config", "../../configs/example.yaml"); code != exitOK || !strings.Contains(out, "ok") {
		t.Errorf("example config: exit %d, %s %s", code, out, errs)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("kafka:\n  brokers: [x]\nconsent:\n  max_staleness: often\n"), 0o600)
	code, _, errs := run(t, "", "config", "check", "-config", bad)
	if code != exitUsage || !strings.Contains(errs, "consent.max_staleness") {
		t.Errorf("bad config: exit %d, stderr %s", code, errs)
	}
}

func TestHelpAndUnknownCommand(t *testing.T) {
	for _, c := range commands() {
		code, _, errs := run(t, "", c.name, "-h")
		if code != exitOK || !strings.Contains(errs, "Usage: anonproxy "+c.name) {
			t.Errorf("%s -h: exit %d, %q", c.name, code, errs)
		}
	}
	if code, _, _ := run(t, "", "frobnicate"); code != exitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
}
