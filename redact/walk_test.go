package redact

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// editsForTest returns the sorted, merged edits of level lv on doc, found
// by the path-tree walk (tree) or by walking the document once per rule.
func (e *Engine) editsForTest(doc string, lv Level, tree bool) (string, error) {
	w := e.pool.Get()
	defer e.pool.Put(w)
	w.edits = w.edits[:0]
	i := skipWS(doc, 0)
	rules := e.rules[lv]
	var err error
	if tree {
		err = w.walkRules(doc, i, rules, e.trees[lv])
	} else {
		for k := range rules {
			w.depth = 0
			if err = w.walk(doc, i, rules[k].segs, &rules[k], int32(k), -1); err != nil {
				break
			}
		}
	}
	if err != nil {
		return "", err
	}
	w.sortEdits()
	w.mergeEdits()
	return fmt.Sprint(w.edits), nil
}

func checkWalkAgainstPerRule(t *testing.T, e *Engine, doc string) {
	t.Helper()
	if !validJSON(doc) {
		return
	}
	for _, lv := range []Level{LevelAllow, LevelAnonymized} {
		got, gerr := e.editsForTest(doc, lv, true)
		want, werr := e.editsForTest(doc, lv, false)
		if got != want || fmt.Sprint(gerr) != fmt.Sprint(werr) {
			t.Fatalf("%s on %q:\n got %s %v\nwant %s %v", lv, doc, got, gerr, want, werr)
		}
	}
}

var walkTestCfg = StreamConfig{
	Anonymized: append(append([]Rule(nil), fuzzCfg.Anonymized...),
		Rule{Path: "to.1", Action: "null"}, Rule{Path: "to.#", Action: "scan"}, Rule{Path: "meta.x.#", Action: "mask", Keep: 1},
		Rule{Path: "a.b.c", Action: "drop"}, Rule{Path: "a.#.c", Action: "null"}, Rule{Path: "a.0.c", Action: "scan"}, Rule{Path: "user_id", Action: "drop"}),
	Always: append(append([]Rule(nil), fuzzCfg.Always...), Rule{Path: "file", Action: "file", Detectors: []string{"credentials"}}, Rule{Path: "meta", Action: "scan", Detectors: []string{"pii"}}),
}

var walkSeeds = []string{
	`{"a":{"b":{"c":1}},"a":[{"c":2},{"c":3,"c":4}],"to":["x",2,{"y":3}],"user_id":"U1","text":"a\"b","t\u0065xt":"x"}`,
	`{"meta":{"x":[1,"2",[3]],"y":{"z":"call +1 415-555-2671"}},"gone":[],"list":[[1],[2]],"nul":null}`,
	`[{"a":1}]`, `{"a":[{"b":{"c":[]}}]}`, ` { "to" : [ "a" , "b" ] , "to" : [ ] } `,
}

// TestWalkMatchesPerRule checks that the one-walk path tree finds the same
// edits as walking the document once per rule.
func TestWalkMatchesPerRule(t *testing.T) {
	e := testEngine(t, walkTestCfg, Options{MaxFileBytes: 1 << 16})
	docs := append([]string(nil), walkSeeds...)
	files, _ := filepath.Glob("testdata/fuzz/FuzzAppendRedacted/*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// go test fuzz v1 / []byte("...")
		if _, lit, ok := strings.Cut(string(b), "[]byte("); ok {
			var s string
			if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimSpace(lit), ")"), "%q", &s); err == nil {
				docs = append(docs, s)
			}
		}
	}
	for _, stream := range []string{"chat", "files", "messages"} {
		in, _ := os.ReadFile(filepath.Join("testdata/golden", stream+".input.jsonl"))
		docs = append(docs, strings.Split(strings.TrimSpace(string(in)), "\n")...)
	}
	_, engines := loadExample(t)
	for _, doc := range docs {
		checkWalkAgainstPerRule(t, e, doc)
		for _, ex := range engines {
			checkWalkAgainstPerRule(t, ex, doc)
		}
	}
}

func FuzzWalk(f *testing.F) {
	for _, s := range walkSeeds {
		f.Add(s)
	}
	e := testEngine(f, walkTestCfg, Options{MaxFileBytes: 1 << 16})
	f.Fuzz(func(t *testing.T, doc string) { checkWalkAgainstPerRule(t, e, doc) })
}
