package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/anonproxy/anonproxy/config"
)

const base = `
kafka:
  brokers: [127.0.0.1:9092]
consent:
  topic: consent
streams:
  - name: chat
    input: raw.chat
    output: train.chat
    tenant_path: tenant_id
    user_path: user_id
    category: chat
    anonymized:
      - {path: text, action: scan}
`

func TestParseReportsYAMLPaths(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // each must appear in the error
	}{
		{"unknown top-level key", base + "extra: 1\n", []string{"extra (line"}},
		{"unknown nested key with suggestion", strings.Replace(base, "category: chat", "category: chat\n    tenant_pth: x", 1),
			[]string{"streams[0].tenant_pth", `did you mean "tenant_path"`}},
		{"bad duration", strings.Replace(base, "topic: consent", "topic: consent\n  max_staleness: soon", 1),
			[]string{"consent.max_staleness", "soon"}},
		{"unknown level", base + "policy:\n  defaults: {chat: sometimes}\n", []string{"policy.defaults.chat", "sometimes"}},
		{"bad action", strings.Replace(base, "action: scan", "action: scrub", 1), []string{"streams[0].anonymized[0].action"}},
		{"pipe in path", strings.Replace(base, "path: text", "path: text|@reverse", 1), []string{"streams[0].anonymized[0].path"}},
		{"missing user path", strings.Replace(base, "    user_path: user_id\n", "", 1), []string{"streams[0].user_path"}},
		{"output loops into input", strings.Replace(base, "output: train.chat", "output: raw.chat", 1), []string{"streams[0].output"}},
		{"bad sasl", base + "  sasl: {mechanism: MD5}\n", []string{"(file)"}},
		{"wrong type", strings.Replace(base, "brokers: [127.0.0.1:9092]", "brokers: 7", 1), []string{"kafka.brokers"}},
		{"duplicate key", strings.Replace(base, "category: chat", "category: chat\n    category: files", 1), []string{"already defined"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := config.Parse([]byte(c.doc))
			if err == nil {
				t.Fatalf("accepted:\n%s", c.doc)
			}
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %T is not config.Problems: %v", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	f, err := config.Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.Stream("chat"); err != nil || s.Input != "raw.chat" {
		t.Fatalf("stream chat: %v %v", s, err)
	}
	if _, err := f.Stream("nope"); err == nil {
		t.Error("unknown stream found")
	}
}

func TestBrokersFromEnvironment(t *testing.T) {
	t.Setenv("ANONPROXY_BROKERS", "10.0.0.1:9092, 10.0.0.2:9092")
	f, err := config.Parse([]byte(strings.Replace(base, "  brokers: [127.0.0.1:9092]\n", "", 1)))
	if err != nil {
		t.Fatalf("brokers from the environment not accepted: %v", err)
	}
	if got := f.Kafka.BrokerList(); len(got) != 2 || got[1] != "10.0.0.2:9092" {
		t.Errorf("BrokerList = %v", got)
	}
}
