package redact

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/tidwall/gjson"
	"go.yaml.in/yaml/v3"
)

// exampleConfig is the part of configs/example.yaml this package owns.
type exampleConfig struct {
	Redaction Options `yaml:"redaction"`
	Streams   []struct {
		Name         string `yaml:"name"`
		StreamConfig `yaml:",inline"`
	} `yaml:"streams"`
}

func loadExample(t testing.TB) (exampleConfig, map[string]*Engine) {
	b, err := os.ReadFile("../configs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c exampleConfig
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if errs := c.Redaction.Validate(); len(errs) > 0 {
		t.Fatalf("redaction: %v", errs)
	}
	engines := map[string]*Engine{}
	for i, s := range c.Streams {
		if errs := s.Validate(); len(errs) > 0 {
			t.Fatalf("streams[%d]: %v", i, errs)
		}
		engines[s.Name] = testEngine(t, s.StreamConfig, c.Redaction)
	}
	return c, engines
}

const fileText = "Quarterly notes\nContact jane.roe@example.com or +44 20 7946 0958.\n" +
	"Card on file 4111-1111-1111-1111, IBAN DE89 3704 0044 0532 0130 00.\n" +
	"Server 192.168.10.20 and [2001:db8::42]:8443.\n" +
	"aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n" +
	"deploy token ghp_0123456789abcdefghijABCDEFGHIJ012345 and nothing else.\n"

func gz(s string) string {
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write([]byte(s))
	w.Close()
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func zst(s string) string {
	e, _ := zstd.NewWriter(nil)
	return base64.StdEncoding.EncodeToString(e.EncodeAll([]byte(s), nil))
}

func goldenInputs() map[string][]string {
	b64 := base64.StdEncoding.EncodeToString
	return map[string][]string{
		"chat": {
			`{"event_id":"e1","type":"chat.message","tenant_id":"T1","user_id":"U1","channel_id":"C1","ts":"2026-11-22T10:00:00Z","text":"hey <@U2>, mail me at john.doe@example.com or call (415) 555-2671","attachments":[]}`,
			`{"event_id":"e2","type":"chat.message","tenant_id":"T1","user_id":"U2","channel_id":"D9","ts":"2026-11-22T10:00:01Z","text":"key AKIAIOSFODNN7EXAMPLE \u0040 https://bob:hunter2@db.example.com/x?token=abc123&page=2 \"quoted\" caf\u00e9 \ud83d\ude00 <@U1|alice>","attachments":[{"id":"F1","name":"notes for john.doe@example.com.txt","mimetype":"text/plain","content_b64":"` + b64([]byte(fileText)) + `"},{"id":"F2","name":"photo.png","mimetype":"image/png","content_b64":"iVBORw0KGgo="}]}`,
			`{"event_id":"e3","type":"chat.message","tenant_id":"T1","user_id":"U3","channel_id":"C1","ts":"2026-11-22T10:00:02Z","text":"release v1.2.3.4-beta on 2024-01-15 at 10:30, order #A-12345-678, ISBN 978-3-16-148410-0, nothing personal"}`,
			"{\n  \"event_id\": \"e4\",\n  \"tenant_id\": \"T1\",\n  \"user_id\": \"U4\",\n  \"text\": \"SSN 123-45-6789 and card 5555 5555 5555 4444\",\n  \"attachments\": [ {\"id\":\"F3\",\"name\":\"a.json\",\"mimetype\":\"application/json; charset=utf-8\",\"content_encoding\":\"zstd\",\"content_b64\":\"" + zst(`{"ip":"10.1.2.3","pw":"postgres://u:p4ss@h/db"}`) + "\"} ]\n}",
		},
		"files": {
			`{"event_id":"f1","type":"file.shared","tenant_id":"T1","user_id":"U1","ts":"2026-11-22T10:00:00Z","file":{"id":"F1","name":"report for +1 415-555-2671.txt","mimetype":"text/plain","size":123,"content_encoding":"gzip","content_b64":"` + gz(fileText) + `"}}`,
			`{"event_id":"f2","type":"file.shared","tenant_id":"T1","user_id":"U1","ts":"2026-11-22T10:00:00Z","file":{"id":"F2","name":"scan.pdf","mimetype":"application/pdf","size":4,"content_b64":"JVBERi0="}}`,
			`{"event_id":"f3","type":"file.shared","tenant_id":"T1","user_id":"U5","ts":"2026-11-22T10:00:00Z","file":{"id":"F3","name":"clean.txt","mimetype":"text/plain","size":5,"content_b64":"` + b64([]byte("hello world, nothing to see")) + `"}}`,
		},
		"messages": {
			`{"event_id":"m1","type":"message","tenant_id":"T1","user_id":"U1","ts":"2026-11-22T10:00:00Z","from":"Alice Example <A@Example.com>","to":["b@example.com","a@example.com"],"subject":"Invoice for card 4111 1111 1111 1111","body":"Hi Bob,\nplease wire to GB82 WEST 1234 5698 7654 32.\nMy SSN is 078-05-1120 and phone 030 12345678.\nBest, Alice (alice@example.com)\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"}`,
			`{"event_id":"m2","type":"message","tenant_id":"T1","user_id":"U2","ts":"2026-11-22T10:00:00Z","from":"b@example.com","to":[],"subject":"re: status","body":"jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U fyi"}`,
		},
	}
}

// TestGolden runs the reference config over the reference events at both
// levels and compares with testdata/golden (refresh with -update).
func TestGolden(t *testing.T) {
	_, engines := loadExample(t)
	for _, stream := range []string{"chat", "files", "messages"} {
		e := engines[stream]
		if e == nil {
			t.Fatalf("stream %s missing from configs/example.yaml", stream)
		}
		inPath := filepath.Join("testdata/golden", stream+".input.jsonl")
		if *update {
			if err := os.WriteFile(inPath, []byte(strings.Join(goldenInputs()[stream], "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		in, err := os.ReadFile(inPath)
		if err != nil {
			t.Fatal(err)
		}
		// Pretty-printed events span lines; split on top-level values.
		dec := json.NewDecoder(bytes.NewReader(in))
		var events [][]byte
		for dec.More() {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			events = append(events, raw)
		}
		for _, lv := range []Level{LevelAnonymized, LevelAllow} {
			t.Run(stream+"/"+lv.String(), func(t *testing.T) {
				var got bytes.Buffer
				var st Stats
				for _, ev := range events {
					out, err := e.AppendRedacted(nil, ev, lv, &st)
					if err != nil {
						t.Fatalf("%s: %v", ev[:40], err)
					}
					if !json.Valid(out) {
						t.Fatalf("invalid JSON out: %s", out)
					}
					got.Write(out)
					got.WriteByte('\n')
				}
				st.Each(func(kind, name string, n uint64) {
					if n > 0 {
						fmt.Fprintf(&got, "# %s %s %d\n", kind, name, n)
					}
				})
				path := filepath.Join("testdata/golden", stream+"."+lv.String()+".golden")
				if *update {
					if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("output differs from %s (run with -update and review the diff):\n%s", path, got.Bytes())
				}
			})
		}
	}
}

// TestPseudonymConsistency: a mention, a user id and an address give the
// same pseudonym for the same id, across streams.
func TestPseudonymConsistency(t *testing.T) {
	_, engines := loadExample(t)
	red := func(stream, ev string) string {
		out, err := engines[stream].AppendRedacted(nil, []byte(ev), LevelAnonymized, nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	chat := red("chat", `{"user_id":"U2","text":"ping <@U2>"}`)
	ps := gjson.Get(chat, "user_id").Str
	if !strings.HasPrefix(ps, "ps_k1_") || len(ps) != len("ps_k1_")+22 {
		t.Fatalf("pseudonym %q", ps)
	}
	if want := "ping <@" + ps + ">"; gjson.Get(chat, "text").Str != want {
		t.Errorf("mention: got %q want %q", gjson.Get(chat, "text").Str, want)
	}
	if got := gjson.Get(red("files", `{"user_id":"U2"}`), "user_id").Str; got != ps {
		t.Errorf("files user_id %q != chat %q", got, ps)
	}
	msg := red("messages", `{"from":"Bob <B@Example.com>","to":["b@example.com"," b@example.com "]}`)
	from := gjson.Get(msg, "from").Str
	if gjson.Get(msg, "to.0").Str != from || gjson.Get(msg, "to.1").Str != from {
		t.Errorf("from/to pseudonyms differ: %s", msg)
	}
	k := testKeys(t)
	if p, _ := k.Pseudonym("", "b@example.com"); p != from {
		t.Errorf("Keyring.Pseudonym %q != engine %q", p, from)
	}
}
