package redact

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestPseudonymCache checks that the cache changes no pseudonym: more ids
// than it holds, each seen several times, at the length limits.
func TestPseudonymCache(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	if w.ps == nil {
		t.Fatal("no pseudonym cache")
	}
	var ids []string
	for i := range 3 * psSets * psWays {
		ids = append(ids, fmt.Sprintf("U%05d", i))
	}
	ids = append(ids, "", "x", strings.Repeat("a", psMaxID), strings.Repeat("b", psMaxID+1), "U00001\x00")
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 3 {
		r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for _, id := range ids {
			want, err := e.keys.Pseudonym("", id)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(w.appendPseudonym([]byte("<"), []byte(id))); got != "<"+want {
				t.Fatalf("round %d, id %q: got %q, want %q", round, id, got, "<"+want)
			}
		}
	}
}

// TestAppendReplacedEscaped checks the one-pass escape of replaced text
// against escaping the replaced text, on random bytes (invalid UTF-8,
// control characters, quotes) with random matches.
func TestAppendReplacedEscaped(t *testing.T) {
	e := testEngine(t, StreamConfig{}, Options{})
	w := e.pool.Get()
	defer e.pool.Put(w)
	alphabet := []byte("ab \"\\\n\x01\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\x80<@U1>")
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 20000 {
		t0 := make([]byte, r.IntN(40))
		for i := range t0 {
			t0[i] = alphabet[r.IntN(len(alphabet))]
		}
		var ms []match
		for p := 0; p < len(t0); {
			s := p + r.IntN(len(t0)-p+1)
			if s >= len(t0) {
				break
			}
			end := s + 1 + r.IntN(len(t0)-s)
			d := detector(r.IntN(int(numDetectors)))
			if d == detMention {
				if end-s < 3 {
					d = detEmail
				} else {
					ms = append(ms, match{start: int32(s), end: int32(end), aux: int32(s + 2 + r.IntN(end-s-2)), det: d})
					p = end
					continue
				}
			}
			ms = append(ms, match{start: int32(s), end: int32(end), det: d})
			p = end
		}
		want := appendEscaped(nil, w.appendReplaced(nil, t0, ms, false, nil))
		if got := w.appendReescaped(nil, t0, ms, nil); string(got) != string(want) {
			t.Fatalf("case %d: %q %v:\ngot  %q\nwant %q", n, t0, ms, got, want)
		}
	}
}

// appendUnindexed redacts src (valid JSON) walking over its bytes, without
// the validator's root index.
func (e *Engine) appendUnindexed(dst, src []byte, level Level, st *Stats) ([]byte, error) {
	w := e.pool.Get()
	w.indexed = false
	return e.redact(w, dst, unsafeString(src), level, st)
}

// TestIndexedWalk checks that AppendRedacted (root index from the
// validator), appendUnindexed (walk over the bytes) and AppendRedactedEvent
// (index from Event.Check) agree.
func TestIndexedWalk(t *testing.T) {
	_, engines := loadExample(t)
	extra := [][]byte{
		[]byte(` { "user_id" : "U1" , "us\u0065r_id":"U2", "text":"mail a@b.co\n<@U3>", "attachments":[{"name":"x 10.0.0.1","mimetype":"text/plain","content_b64":"aGk="}] } `),
		[]byte(`{"user_id":"U1","user_id":7,"channel_id":{"a":1},"text":["x"],"from":"A <A@B.CO>","to":["x@y.zz",1,null]}`),
		[]byte(`{}`), []byte(`[{"user_id":"U1"}]`), []byte(`"user_id"`), []byte(`{"a":{"user_id":"U1"}}`),
	}
	for name, e := range engines {
		evs := append(benchEvents(t, name), extra...)
		for _, lv := range []Level{LevelAllow, LevelAnonymized} {
			for k, ev := range evs {
				a, errA := e.AppendRedacted(nil, ev, lv, nil)
				b, errB := e.appendUnindexed(nil, ev, lv, nil)
				if string(a) != string(b) || fmt.Sprint(errA) != fmt.Sprint(errB) {
					t.Fatalf("%s/%v event %d:\nindexed   %q %v\nunindexed %q %v", name, lv, k, a, errA, b, errB)
				}
				var x Event
				if err := x.Check(ev); err != nil {
					t.Fatalf("%s event %d: Check: %v", name, k, err)
				}
				c, errC := e.AppendRedactedEvent(nil, &x, lv, nil)
				if string(a) != string(c) || fmt.Sprint(errA) != fmt.Sprint(errC) {
					t.Fatalf("%s/%v event %d:\nindexed %q %v\nevent   %q %v", name, lv, k, a, errA, c, errC)
				}
			}
		}
	}
}
