package redact

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestAppendReplacedEscapedRaw checks the raw-copy path: on random JSON
// string contents full of escapes, with random matches on character
// boundaries of the text they encode, the output must encode the same text
// as re-escaping the replaced text does, be valid JSON string content, and
// keep the raw bytes between the matches (escapes included) unchanged.
func TestAppendReplacedEscapedRaw(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	pieces := []string{"a", "b", " ", "@", `\n`, `\"`, `\\`, `\/`, `\t`, `\u0041`, `\u00e9`, `\ud83d\ude00`, `\ud800`, "é", "€", "😀", `\u003c@U1\u003e`}
	r := rand.New(rand.NewPCG(7, 8))
	raws := 0
	for n := range 20000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		raw := b.String()
		w.marks = w.marks[:0]
		text := unescape(nil, raw, &w.marks, nil, 0)
		// The same with the backslashes found by a document's bitmap, in
		// both of its kinds (with bytes from 0x80 marked, or not).
		doc := `{"k":"` + raw + `"}`
		for _, high := range []bool{false, true} {
			var marks []escMark
			got := unescape(nil, raw, &marks, specialBitmap(nil, doc, high), 6)
			if string(got) != string(text) || !slices.Equal(marks, w.marks) {
				t.Fatalf("case %d: %q: with the bitmap (high %v) %q %v, without %q %v", n, raw, high, got, marks, text, w.marks)
			}
		}
		// character starts of the text
		var starts []int
		for i := range string(text) {
			starts = append(starts, i)
		}
		starts = append(starts, len(text))
		var ms []match
		for p := 0; p+1 < len(starts); {
			s := p + r.IntN(len(starts)-p)
			if s+1 >= len(starts) {
				break
			}
			end := s + 1 + r.IntN(len(starts)-s-1)
			ms = append(ms, match{start: int32(starts[s]), end: int32(starts[end]), det: detEmail})
			p = end
		}
		want := w.appendReescaped(nil, text, ms, nil)
		got := w.appendReplacedEscaped(nil, raw, text, ms, nil)
		if !gjson.Valid(`"` + string(got) + `"`) {
			t.Fatalf("case %d: %q %v: invalid output %q", n, raw, ms, got)
		}
		if g, w := unescape(nil, string(got), nil, nil, 0), unescape(nil, string(want), nil, nil, 0); string(g) != string(w) {
			t.Fatalf("case %d: %q %v:\ngot  %q\nwant %q", n, raw, ms, got, want)
		}
		if len(ms) > 0 && strings.HasPrefix(string(got), raw[:strings.IndexByte(raw+"@", '@')]) && string(got) != string(want) {
			raws++
		}
	}
	if raws == 0 {
		t.Error("the raw-copy path never kept an escape")
	}
}

// TestAppendReplacedEscapedCounts: each match is counted once, also when a
// boundary inside an escape's decoded bytes sends the splice to the
// re-escaping path after matches were already seen.
func TestAppendReplacedEscapedCounts(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	raw := `ab\u00e9cd`
	w.marks = w.marks[:0]
	text := unescape(nil, raw, &w.marks, nil, 0) // "ab" + é (2 bytes) + "cd"
	// the second match starts inside é's two bytes
	ms := []match{{start: 0, end: 1, det: detEmail}, {start: 3, end: 5, det: detEmail}}
	var st Stats
	w.appendReplacedEscaped(nil, raw, text, ms, &st)
	if st.Detectors[detEmail] != 2 {
		t.Errorf("counted %d matches, want 2", st.Detectors[detEmail])
	}
}

// TestAppendRedactedEventUnchecked: an Event that Check did not accept
// redacts to an error, never to output.
func TestAppendRedactedEventUnchecked(t *testing.T) {
	_, engines := loadExample(t)
	e := engines["chat"]
	var ev Event
	if out, err := e.AppendRedactedEvent(nil, &ev, LevelAllow, nil); err == nil || ReasonOf(err) != ReasonInternal || len(out) != 0 {
		t.Errorf("zero Event: %q, %v", out, err)
	}
	if ev.Check([]byte(`{"user_id":"U1","text":`)) == nil {
		t.Fatal("truncated event accepted")
	}
	if out, err := e.AppendRedactedEvent(nil, &ev, LevelAllow, nil); err == nil || len(out) != 0 {
		t.Errorf("rejected Event: %q, %v", out, err)
	}
	if err := ev.Check([]byte(`{"user_id":"U1","text":"hi"}`)); err != nil {
		t.Fatal(err)
	}
	ev.Reset()
	if _, err := e.AppendRedactedEvent(nil, &ev, LevelAllow, nil); err == nil {
		t.Error("reset Event redacted")
	}
}
