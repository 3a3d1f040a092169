package redact

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// fuzzRules target a fixed set of top-level keys; everything else must
// survive unchanged.
var fuzzCfg = StreamConfig{
	Anonymized: []Rule{
		{Path: "user_id", Action: "pseudonymize"},
		{Path: "text", Action: "scan"},
		{Path: "to.#", Action: "pseudonymize"},
		{Path: "gone", Action: "drop"},
		{Path: "list.#", Action: "drop"},
		{Path: "nul", Action: "null"},
		{Path: "cc", Action: "mask", Keep: 2},
		{Path: "short", Action: "truncate", MaxLen: 3},
		{Path: "file", Action: "file"},
		{Path: "meta", Action: "scan"},
	},
	Always: []Rule{{Path: "text", Action: "scan", Detectors: []string{"credentials"}}},
}

var fuzzTargeted = map[string]bool{"user_id": true, "text": true, "to": true, "gone": true, "list": true, "nul": true, "cc": true, "short": true, "file": true, "meta": true}

// FuzzAppendRedacted: valid JSON in -> valid JSON out; members not
// targeted by any rule are equal (encoding/json oracle); targeted members
// are replaced as specified.
func FuzzAppendRedacted(f *testing.F) {
	for _, s := range []string{
		`{"user_id":"U1","text":"mail a@b.com <@U2> 4111 1111 1111 1111","to":["x@y.com",1,null],"keep":{"a":[1,2]}}`,
		`{"gone":1,"keep":2,"gone":3}`,
		`{"list":[1,2,3],"k":"v"}`,
		`{"nul":{"x":1},"cc":"4111111111111111","short":"h\u00e9llo w\u00f6rld"}`,
		`{"file":{"name":"a@b.com.txt","mimetype":"text/plain","content_b64":"aGkgYUBiLmNvbQ=="}}`,
		`{"meta":{"x":["call +1 415-555-2671"],"n":4111111111111111}}`,
		"{\"text\":\"\\ud83d\\ude00 \\u0040 \\\" \\\\ \\n\xff\"}",
		`[1,2]`, `"str"`, `{"text":1e5}`, " { \"text\" : \"x\" , \"gone\" : [ ] } ",
	} {
		f.Add([]byte(s))
	}
	e := testEngine(f, fuzzCfg, Options{MaxFileBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, in []byte) {
		var inV any
		if json.Unmarshal(in, &inV) != nil {
			if _, err := e.AppendRedacted(nil, in, LevelAnonymized, nil); err == nil && !json.Valid(in) {
				// gjson accepts a few inputs encoding/json rejects (e.g. invalid
				// UTF-8 is accepted by both; but gjson is looser on depth); only
				// require that we did not crash.
				_ = err
			}
			return
		}
		for _, lv := range []Level{LevelAllow, LevelAnonymized} {
			out, err := e.AppendRedacted([]byte("prefix"), in, lv, nil)
			if err != nil {
				if ReasonOf(err) == "" {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			if !strings.HasPrefix(string(out), "prefix") {
				t.Fatalf("dst prefix clobbered")
			}
			out = out[len("prefix"):]
			var outV any
			if err := json.Unmarshal(out, &outV); err != nil {
				t.Fatalf("invalid JSON out (%v):\nin:  %q\nout: %q", err, in, out)
			}
			inObj, ok1 := inV.(map[string]any)
			outObj, ok2 := outV.(map[string]any)
			if !ok1 {
				if !reflect.DeepEqual(inV, outV) {
					t.Fatalf("non-object changed:\nin:  %q\nout: %q", in, out)
				}
				continue
			}
			if !ok2 {
				t.Fatalf("object became %T", outV)
			}
			for k, v := range inObj {
				if !fuzzTargeted[k] || (lv == LevelAllow && k != "text") {
					if !reflect.DeepEqual(v, outObj[k]) {
						t.Fatalf("untargeted %q changed:\nin:  %q\nout: %q", k, in, out)
					}
					continue
				}
				if lv == LevelAllow {
					continue
				}
				switch k {
				case "gone":
					if _, ok := outObj[k]; ok {
						t.Fatalf("gone not dropped: %q", out)
					}
				case "nul":
					if outObj[k] != nil {
						t.Fatalf("nul not null: %q", out)
					}
				case "user_id":
					switch v.(type) {
					case string, float64:
						if s, _ := outObj[k].(string); !strings.HasPrefix(s, "ps_k1_") {
							t.Fatalf("user_id not pseudonymized: %q", out)
						}
					}
				case "list":
					if l, ok := v.([]any); ok && len(l) > 0 {
						if l2, _ := outObj[k].([]any); len(l2) != 0 {
							t.Fatalf("list elements not dropped: %q", out)
						}
					}
				case "short":
					if s, ok := outObj[k].(string); ok && len([]rune(s)) > 3 {
						t.Fatalf("short not truncated: %q", out)
					}
				}
			}
			if _, ok := inObj["gone"]; !ok && len(outObj) != len(inObj) {
				t.Fatalf("member count changed:\nin:  %q\nout: %q", in, out)
			}
		}
	})
}
