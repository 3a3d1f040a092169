package redact

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

func TestAllocsPerEvent(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	_, engines := loadExample(t)
	for _, stream := range []string{"chat", "files", "messages"} {
		evs := benchEvents(t, stream)
		e := engines[stream]
		for _, lv := range []Level{LevelAnonymized, LevelAllow} {
			dst := make([]byte, 0, 64<<10)
			for _, ev := range evs { // warm the pool and the phone verdict cache
				dst, _ = e.AppendRedacted(dst[:0], ev, lv, nil)
			}
			i := 0
			var st Stats
			allocs := testing.AllocsPerRun(200, func() {
				dst, _ = e.AppendRedacted(dst[:0], evs[i%len(evs)], lv, &st)
				i++
			})
			t.Logf("%s/%s: %.2f allocs/event", stream, lv, allocs)
			if stream != "files" && allocs != 0 {
				t.Errorf("%s/%s: %.2f allocs/event, want 0", stream, lv, allocs)
			}
		}
	}
}

func TestDropCommas(t *testing.T) {
	e := testEngine(t, StreamConfig{Anonymized: []Rule{{Path: "a", Action: "drop"}, {Path: "b", Action: "drop"}, {Path: "l.#", Action: "drop"}}}, Options{})
	for in, want := range map[string]string{
		`{"a":1}`:                     `{}`,
		`{"a":1,"x":2}`:               `{"x":2}`,
		`{"x":2,"a":1}`:               `{"x":2}`,
		`{"x":0,"a":1,"b":2}`:         `{"x":0}`,
		`{"a":1,"b":2,"x":0}`:         `{"x":0}`,
		`{"a":1,"x":0,"b":2}`:         `{"x":0}`,
		`{"a":1,"a":2,"x":0,"a":3}`:   `{"x":0}`,
		`{ "x" : 0 , "a" : 1 }`:       `{ "x" : 0  }`,
		`{"l":[1,2,3],"x":[1]}`:       `{"l":[],"x":[1]}`,
		`{"x":{"a":1},"a":{"a":[1]}}`: `{"x":{"a":1}}`,
	} {
		out, err := e.AppendRedacted(nil, []byte(in), LevelAnonymized, nil)
		if err != nil || string(out) != want {
			t.Errorf("%s: got %s (%v), want %s", in, out, err, want)
		}
	}
}

func TestErrors(t *testing.T) {
	e := testEngine(t, StreamConfig{Anonymized: []Rule{{Path: "f", Action: "file"}, {Path: "m", Action: "scan"}}}, Options{MaxFileBytes: 1024})
	bomb := gz(strings.Repeat("a", 1<<20))
	deep := `{"m":` + strings.Repeat("[", MaxDepth+2) + strings.Repeat("]", MaxDepth+2) + `}`
	for in, reason := range map[string]string{
		`{"a":`: ReasonInvalidJSON,
		``:      ReasonInvalidJSON,
		`{"f":{"mimetype":"text/plain","content_encoding":"gzip","content_b64":"` + bomb + `"}}`:                        ReasonFileTooLarge,
		`{"f":{"mimetype":"text/plain","content_b64":"` + base64.StdEncoding.EncodeToString(make([]byte, 2048)) + `"}}`: ReasonFileTooLarge,
		`{"f":{"mimetype":"text/plain","content_b64":"!!!!"}}`:                                                          ReasonBadBase64,
		`{"f":{"mimetype":"text/plain","content_encoding":"br","content_b64":"aGk="}}`:                                  ReasonBadFileEncoding,
		`{"f":{"mimetype":"text/plain","content_encoding":"gzip","content_b64":"aGk="}}`:                                ReasonBadFileEncoding,
		`{"f":{"mimetype":"text/plain","content_encoding":"zstd","content_b64":"aGk="}}`:                                ReasonBadFileEncoding,
		deep: ReasonTooDeep,
	} {
		dst := []byte("keep")
		out, err := e.AppendRedacted(dst, []byte(in), LevelAnonymized, nil)
		if ReasonOf(err) != reason || string(out) != "keep" {
			t.Errorf("%.60s: got %q %v, want reason %s", in, out, err, reason)
		}
	}
	if _, err := e.AppendRedacted(nil, []byte(`{}`), 0, nil); err == nil {
		t.Error("level 0 accepted")
	}
}

func TestConcurrent(t *testing.T) {
	_, engines := loadExample(t)
	e := engines["chat"]
	evs := benchEvents(t, "chat")
	want := make([]string, len(evs))
	for i, ev := range evs {
		out, err := e.AppendRedacted(nil, ev, LevelAnonymized, nil)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = string(out)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []byte
			for i, ev := range evs {
				dst, _ = e.AppendRedacted(dst[:0], ev, LevelAnonymized, nil)
				if string(dst) != want[i] {
					t.Errorf("event %d differs under concurrency", i)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestValidate(t *testing.T) {
	cfg := StreamConfig{
		Anonymized: []Rule{
			{Path: "a", Action: "frobnicate"},
			{Path: "a.@reverse", Action: "null"},
			{Path: "a|b", Action: "null"},
			{Path: "a.*", Action: "null"},
			{Path: "a", Action: "replace"},
			{Path: "a", Action: "scan", Detectors: []string{"emial"}},
			{Path: "a", Action: "truncate"},
			{Path: "", Action: "null", Keep: 3},
			{Path: "x.#(a==1)", Action: "null"},
		},
		Always: []Rule{{Path: "ok.#.name", Action: "scan", Detectors: []string{"credentials", "email"}}},
	}
	var got []string
	for _, fe := range cfg.Validate() {
		got = append(got, fe.Error())
	}
	want := []string{
		`anonymized[0].action: unknown action "frobnicate"`,
		`anonymized[1].path: path "a.@reverse": modifiers`,
		`anonymized[2].path: path "a|b": pipes`,
		`anonymized[3].path: path "a.*": wildcards`,
		`anonymized[4].value: required for action replace`,
		`anonymized[5].detectors[0]: unknown detector "emial"`,
		`anonymized[6].max_len: required`,
		`anonymized[7].path: required`,
		`anonymized[7].keep: only used by action mask`,
		`anonymized[8].path: path "x.#(a==1)": queries`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems:\n%s", len(got), strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d: got %q, want prefix %q", i, got[i], want[i])
		}
	}
	opts := Options{Tokens: map[string]string{"emial": "x", "mention": "y"}, MaxFileBytes: -1, PhoneRegions: []string{"XX"}}
	if n := len(opts.Validate()); n != 4 {
		t.Errorf("options: %d problems, want 4: %v", n, opts.Validate())
	}
	if _, err := Compile(cfg, Options{}, nil); err == nil {
		t.Error("Compile accepted an invalid config")
	}
	if _, err := Compile(StreamConfig{Anonymized: []Rule{{Path: "u", Action: "pseudonymize"}}}, Options{}, nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("Compile without key: %v", err)
	}
}

func TestKeyring(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	read := func(name string) ([]byte, error) {
		if name == "/keys" {
			return []byte("# rotated 2026-11\nk1:0123456789abcdef0123\nk2:fedcba9876543210fedc\n"), nil
		}
		return nil, os.ErrNotExist
	}
	if _, err := keyringFrom(env(nil), read); !errors.Is(err, ErrNoKey) || err.Error() != "redact: no pseudonymization key: set ANONPROXY_HMAC_KEY or ANONPROXY_HMAC_KEY_FILE" {
		t.Errorf("no key: %v", err)
	}
	k, err := keyringFrom(env(map[string]string{EnvKey: "0123456789abcdef0123"}), read)
	if err != nil || k.CurrentID() != "k1" {
		t.Fatalf("bare secret: %v %v", k, err)
	}
	k, err = keyringFrom(env(map[string]string{EnvKeyFile: "/keys"}), read)
	if err != nil || k.CurrentID() != "k2" || len(k.IDs()) != 2 {
		t.Fatalf("file: %v %v", k, err)
	}
	k, err = keyringFrom(env(map[string]string{EnvKeyFile: "/keys", EnvKeyID: "k1"}), read)
	if err != nil || k.CurrentID() != "k1" {
		t.Fatalf("file with id: %v %v", k, err)
	}
	if _, err := keyringFrom(env(map[string]string{EnvKey: "short"}), read); err == nil {
		t.Error("short key accepted")
	}
	if _, err := keyringFrom(env(map[string]string{EnvKeyFile: "/missing"}), read); err == nil {
		t.Error("missing file accepted")
	}
	if strings.Contains(k.String(), "0123") {
		t.Error("String leaks the secret")
	}
	p1, _ := k.Pseudonym("k1", "U2")
	p2, _ := k.Pseudonym("k2", "U2")
	if !strings.HasPrefix(p1, "ps_k1_") || !strings.HasPrefix(p2, "ps_k2_") || p1[6:] == p2[6:] {
		t.Errorf("pseudonyms %q %q", p1, p2)
	}
}

// TestFoldRules checks that scan and file rules on one path become one
// rule with the union of their detectors, and that a structural rule on
// the path still wins over a scan rule.
func TestFoldRules(t *testing.T) {
	e := testEngine(t, StreamConfig{
		Anonymized: []Rule{{Path: "t", Action: "scan", Detectors: []string{"email"}}, {Path: "u", Action: "pseudonymize"}, {Path: "f", Action: "file", Detectors: []string{"email"}}},
		Always:     []Rule{{Path: "t", Action: "scan", Detectors: []string{"phone"}}, {Path: "u", Action: "scan"}, {Path: "f", Action: "file", Detectors: []string{"credentials"}}},
	}, Options{})
	if got := len(e.rules[LevelAnonymized]); got != 4 { // t, u (pseudonymize), f, u (scan)
		t.Fatalf("%d rules at anonymized, want 4 (scan and file rules folded)", got)
	}
	in := `{"t":"a@b.io or +1 415-555-2671, ghp_0123456789abcdefghijklmnopqrstuvwxyzAB","u":"a@b.io","f":{"name":"x@y.io +1 415-555-2671 ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"}}`
	out, err := e.AppendRedacted(nil, []byte(in), LevelAnonymized, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"t":"[EMAIL] or [PHONE], ghp_0123456789abcdefghijklmnopqrstuvwxyzAB","u":"`
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("got  %s\nwant %s...", out, want)
	}
	if wantF := `"f":{"name":"[EMAIL] +1 415-555-2671 [SECRET]"}}`; !strings.HasSuffix(string(out), wantF) {
		t.Errorf("got  %s\nwant ...%s", out, wantF)
	}
}

// TestPathNodeChild checks the child lookup by key length against a linear
// search, for nodes under and over the 64 children the length index
// serves, with keys of equal lengths, longer than 31 bytes and empty.
func TestPathNodeChild(t *testing.T) {
	for _, n := range []int{1, 3, 64, 65, 130} {
		var rules []crule
		var keys []string
		for k := range n {
			key := strings.Repeat("k", k%40) + fmt.Sprint(k)
			if k == 0 {
				key = ""
			}
			keys = append(keys, key)
			rules = append(rules, crule{segs: []segment{{kind: segKey, key: key, index: -1}}})
		}
		root := buildPathTree(rules)
		for k, key := range keys {
			c := root.child(key)
			if c == nil || len(c.ends) != 1 || c.ends[0] != int32(k) {
				t.Fatalf("%d children: child(%q) = %v, want the node of rule %d", n, key, c, k)
			}
		}
		for _, key := range []string{"x", "k", strings.Repeat("k", 50), "kk1"} {
			if c := root.child(key); c != nil {
				t.Fatalf("%d children: child(%q) found a node", n, key)
			}
		}
	}
}
