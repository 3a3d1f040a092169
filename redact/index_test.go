package redact

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestIndexesMapBack checks that the offsets the engine edits are the ones
// gjson reports (Result.Index / Indexes) and that each maps back to the
// original bytes: src[Index:Index+len(Raw)] == Raw.
func TestIndexesMapBack(t *testing.T) {
	docs := []string{
		`{"user_id":"U1","text":"hi","to":["a@b.c","d@e.f"],"attachments":[{"name":"x"},{"name":"y\"z"}]}`,
		" {\n \"a\" : { \"b\" : [ 1 , { \"c\" : \"deep\" } ] } , \"t\\u0065xt\" : \"escaped key\" }",
		`{"file":{"name":"n","content_b64":"aGk=","mimetype":"text/plain"}}`,
	}
	paths := []string{"user_id", "text", "to.#", "attachments.#.name", "a.b.1.c", "a.b.0", "file.name", "file.content_b64", "file"}
	for _, doc := range docs {
		for _, p := range paths {
			segs, err := parsePath(p)
			if err != nil {
				t.Fatal(err)
			}
			w := &work{}
			r := &crule{segs: segs, act: actNull}
			if err := w.walk(doc, skipWS(doc, 0), segs, r, 0, -1); err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, ed := range w.edits {
				got = append(got, int(ed.start))
				raw := doc[ed.start:ed.end]
				if !gjson.Valid(raw) {
					t.Errorf("%s in %q: span %q is not a JSON value", p, doc, raw)
				}
			}
			// gjson: "#" as the last segment is the array length, so ask for
			// the array and walk its elements with ForEach.
			gp := strings.TrimSuffix(p, ".#")
			res := gjson.Get(doc, gp)
			var want []int
			check := func(r gjson.Result) {
				if r.Index == 0 && r.Raw != doc {
					t.Fatalf("%s: gjson index unknown", p)
				}
				if doc[r.Index:r.Index+len(r.Raw)] != r.Raw {
					t.Errorf("%s: gjson index %d does not map back", p, r.Index)
				}
				want = append(want, r.Index)
			}
			switch {
			case !res.Exists():
			case strings.HasSuffix(p, ".#"):
				res.ForEach(func(_, v gjson.Result) bool { check(v); return true })
			case res.Indexes != nil:
				for _, idx := range res.Indexes {
					r := gjson.Parse(doc[idx:])
					r.Index = idx
					check(r)
				}
			default:
				check(res)
			}
			if len(got) != len(want) {
				t.Errorf("%s in %q: engine %v gjson %v", p, doc, got, want)
				continue
			}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("%s in %q: engine %v gjson %v", p, doc, got, want)
				}
			}
		}
	}
}
