package redact_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonproxy/anonproxy/redact"
)

// TestKeyRotation follows the rotation procedure of docs/security.md
// through the public API and the real environment variables: a key file
// with k1, then the same file with k2 appended. After the rotation the
// engine's pseudonyms carry k2 and differ from the k1 ones, and the rotated
// keyring still recomputes every k1 pseudonym (Keyring.Pseudonym with the
// old id), which is what re-keying joins against old data needs.
// (redact.TestKeyring covers the key file format itself.)
func TestKeyRotation(t *testing.T) {
	const (
		oldLine = "k1:old-secret-0123456789abcdef"
		newLine = "k2:new-secret-fedcba9876543210"
	)
	cfg := redact.StreamConfig{Anonymized: []redact.Rule{
		{Path: "user_id", Action: "pseudonymize"},
		{Path: "text", Action: "scan"},
	}}
	event := []byte(`{"user_id":"U2","text":"ping <@U2> and carol@example.com"}`)
	file := filepath.Join(t.TempDir(), "hmac.keys")
	t.Setenv(redact.EnvKey, "")
	t.Setenv(redact.EnvKeyID, "")
	t.Setenv(redact.EnvKeyFile, file)

	redactWith := func(t *testing.T, keys *redact.Keyring) map[string]string {
		t.Helper()
		eng, err := redact.Compile(cfg, redact.Options{}, keys)
		if err != nil {
			t.Fatal(err)
		}
		out, err := eng.AppendRedacted(nil, event, redact.LevelAnonymized, nil)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("output %s: %v", out, err)
		}
		return m
	}
	load := func(t *testing.T, lines ...string) *redact.Keyring {
		t.Helper()
		if err := os.WriteFile(file, []byte("# anonproxy pseudonymization keys\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := redact.KeyringFromEnv()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	before := load(t, oldLine)
	old := redactWith(t, before)
	oldPs, _ := before.Pseudonym("", "U2")
	if before.CurrentID() != "k1" || old["user_id"] != oldPs || !strings.HasPrefix(oldPs, "ps_k1_") {
		t.Fatalf("before rotation: current %s, user_id %q, Pseudonym %q", before.CurrentID(), old["user_id"], oldPs)
	}

	after := load(t, oldLine, newLine) // rotate: append the new key; it becomes current
	rotated := redactWith(t, after)
	if after.CurrentID() != "k2" {
		t.Fatalf("current key after appending k2: %s", after.CurrentID())
	}
	newPs, _ := after.Pseudonym("", "U2")
	if rotated["user_id"] != newPs || !strings.HasPrefix(newPs, "ps_k2_") {
		t.Errorf("after rotation user_id = %q, want the k2 pseudonym %q", rotated["user_id"], newPs)
	}
	if strings.TrimPrefix(newPs, "ps_k2_") == strings.TrimPrefix(oldPs, "ps_k1_") {
		t.Errorf("k1 and k2 pseudonyms share their hash: %q %q", oldPs, newPs)
	}
	if !strings.Contains(rotated["text"], "<@"+newPs+">") || strings.Contains(rotated["text"], oldPs) {
		t.Errorf("mention after rotation: %q", rotated["text"])
	}
	// The old key still verifies old pseudonyms.
	if got, err := after.Pseudonym("k1", "U2"); err != nil || got != old["user_id"] {
		t.Errorf("Pseudonym(k1, U2) after rotation = %q, %v; the k1 output was %q", got, err, old["user_id"])
	}
	// Pinning the old id keeps producing old pseudonyms (roll back, or
	// rotate consumers first).
	t.Setenv(redact.EnvKeyID, "k1")
	pinned := load(t, oldLine, newLine)
	if got := redactWith(t, pinned); got["user_id"] != oldPs {
		t.Errorf("ANONPROXY_HMAC_KEY_ID=k1: user_id %q, want %q", got["user_id"], oldPs)
	}
	// Retiring k1 (dropping its line) makes old pseudonyms unverifiable.
	t.Setenv(redact.EnvKeyID, "")
	retired := load(t, newLine)
	if _, err := retired.Pseudonym("k1", "U2"); err == nil {
		t.Error("a retired key id still computes pseudonyms")
	}
	if strings.Contains(after.String(), "secret") {
		t.Errorf("Keyring.String leaks a secret: %s", after)
	}
}
