package redact

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/anonproxy/anonproxy/redact/internal/corpus"
)

var update = flag.Bool("update", false, "rewrite golden files and the generated corpus in testdata")

const corpusFile = "testdata/corpus/corpus.jsonl"

// corpusType maps a detector to the label type of the corpus.
func corpusType(d detector) string {
	switch d {
	case detEmail, detPhone, detCard, detIBAN, detIP, detSSN, detMention, detURLSecret:
		return detectorNames[d]
	}
	return "secret"
}

func loadCorpus(t testing.TB) []corpus.Doc {
	if *update {
		docs := corpus.Generate(20261122, 4000)
		var b strings.Builder
		for _, d := range docs {
			line, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(corpusFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(corpusFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []corpus.Doc
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d corpus.Doc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d)
	}
	return docs
}

// TestCorpus measures per-type recall and precision over the labeled
// corpus (exact span and type) and fails below recall 0.99 or precision
// 0.98 for any type.
func TestCorpus(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	docs := loadCorpus(t)
	type counts struct{ tp, fn, fp int }
	byType := map[string]*counts{}
	get := func(k string) *counts {
		if byType[k] == nil {
			byType[k] = &counts{}
		}
		return byType[k]
	}
	var misses []string
	for _, d := range docs {
		want := map[corpus.Span]bool{}
		for _, s := range d.Spans {
			want[s] = true
		}
		got := map[corpus.Span]bool{}
		for _, m := range e.scanForTest([]byte(d.Text), maskAll) {
			got[corpus.Span{Type: corpusType(m.det), Start: int(m.start), End: int(m.end)}] = true
		}
		for s := range want {
			if got[s] {
				get(s.Type).tp++
			} else {
				get(s.Type).fn++
				misses = append(misses, fmt.Sprintf("missed %s %q in %q", s.Type, d.Text[s.Start:s.End], d.Text))
			}
		}
		for s := range got {
			if !want[s] {
				get(s.Type).fp++
				misses = append(misses, fmt.Sprintf("false %s %q in %q", s.Type, d.Text[s.Start:s.End], d.Text))
			}
		}
	}
	sort.Strings(misses)
	for i, m := range misses {
		if i == 40 {
			t.Logf("... %d more", len(misses)-40)
			break
		}
		t.Log(m)
	}
	var types []string
	for k := range byType {
		types = append(types, k)
	}
	sort.Strings(types)
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| type | labeled | TP | FN | FP | recall | precision |\n|---|---|---|---|---|---|---|\n")
	for _, k := range types {
		c := byType[k]
		recall := float64(c.tp) / float64(max(c.tp+c.fn, 1))
		precision := float64(c.tp) / float64(max(c.tp+c.fp, 1))
		fmt.Fprintf(&tbl, "| %s | %d | %d | %d | %d | %.4f | %.4f |\n", k, c.tp+c.fn, c.tp, c.fn, c.fp, recall, precision)
		if recall < 0.99 || precision < 0.98 {
			t.Errorf("%s: recall %.4f precision %.4f, want >= 0.99 / 0.98", k, recall, precision)
		}
		if c.tp+c.fn < 300 {
			t.Errorf("%s: only %d labeled spans, want >= 300", k, c.tp+c.fn)
		}
	}
	t.Log(tbl.String())
}
