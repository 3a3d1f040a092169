package configs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/redact"
)

// TestExampleConfigsLoad lints every YAML file here the way `anonproxy
// config check` does, and compiles every stream's redaction rules.
func TestExampleConfigsLoad(t *testing.T) {
	files, _ := filepath.Glob("*.yaml")
	if len(files) == 0 {
		t.Fatal("no YAML files in configs/")
	}
	keys, err := redact.NewKeyring("k1", map[string][]byte{"k1": []byte("test-key-0123456789abcdef0123456789")})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatalf("%v", err)
			}
			for _, s := range cfg.Streams {
				if _, err := redact.Compile(s.StreamConfig, cfg.Redaction, keys); err != nil {
					t.Errorf("stream %s: %v", s.Name, err)
				}
			}
		})
	}
}

// TestReferenceStreams: the contract's three streams, topics and categories.
func TestReferenceStreams(t *testing.T) {
	cfg, err := config.Load("example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]string{
		"chat":     {"raw.chat", "train.chat", "chat"},
		"files":    {"raw.files", "train.files", "files"},
		"messages": {"raw.messages", "train.messages", "messages"},
	}
	for name, w := range want {
		s, err := cfg.Stream(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := [3]string{s.Input, s.Output, s.Category}; got != w {
			t.Errorf("stream %s: %v, want %v", name, got, w)
		}
	}
	if cfg.Consent.Topic != "consent" || cfg.Stage.QuarantineTopic != "anonproxy.quarantine" || cfg.Stage.AuditTopic != "anonproxy.audit" {
		t.Errorf("topics: consent %q quarantine %q audit %q", cfg.Consent.Topic, cfg.Stage.QuarantineTopic, cfg.Stage.AuditTopic)
	}
	// Every free-text field of the reference shapes is scanned at anonymized.
	scanned := map[string][]string{"chat": {"text", "attachments.#"}, "files": {"file"}, "messages": {"subject", "body"}}
	for name, paths := range scanned {
		s, _ := cfg.Stream(name)
		for _, p := range paths {
			found := false
			for _, r := range s.Anonymized {
				if r.Path == p && (r.Action == "scan" || r.Action == "file") {
					found = true
				}
			}
			if !found {
				t.Errorf("stream %s: %s is not scanned at anonymized", name, p)
			}
		}
	}
	if !strings.Contains(string(mustRead(t, "example.yaml")), "ANONPROXY_HMAC_KEY") {
		t.Error("example.yaml does not say where the key comes from")
	}
}

func mustRead(t *testing.T, f string) []byte {
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
