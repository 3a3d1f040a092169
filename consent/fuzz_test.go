package consent

import (
	"encoding/json"
	"io"
	"testing"
)

var errEOF = io.EOF

// FuzzParseValue checks ParseValue against encoding/json: whatever
// ParseValue accepts must be valid JSON with the same levels, and a value
// encoding/json decodes into a well-formed record must be accepted (no
// record is wrongly failed closed, none wrongly accepted).
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{
		`{"default":"deny","categories":{"chat":"anonymized"},"updated_at":"x"}`, `{}`, `{"default":"allow"}`,
		`{"default":"allow","x":[1,2,{"a":null}]}`, `{"categories":{"c\u0068at":"allow"}}`, `{"default":"allow"`, `null`,
	} {
		f.Add([]byte(s))
	}
	for _, s := range []string{`{"DEFAULT":"allow"}`, `{"default":"allow","categories":{"Chat":"deny","chat":"allow"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseValue(b)
		var std struct {
			Default    *string            `json:"default"`
			Categories map[string]*string `json:"categories"`
		}
		// Field names match exactly (encoding/json's struct decoding would
		// fold case), so decode the fields from the raw object.
		var raw map[string]json.RawMessage
		stdErr := json.Unmarshal(b, &raw)
		if stdErr == nil && raw["default"] != nil {
			stdErr = json.Unmarshal(raw["default"], &std.Default)
		}
		if stdErr == nil && raw["categories"] != nil {
			stdErr = json.Unmarshal(raw["categories"], &std.Categories)
		}
		if err == nil {
			if stdErr != nil || !json.Valid(b) {
				t.Fatalf("ParseValue accepted %q, encoding/json: %v", b, stdErr)
			}
			want := LevelDeny
			if std.Default != nil {
				want, _ = ParseLevel(*std.Default)
			}
			if r.Default != want {
				t.Fatalf("%q: default %v, encoding/json %v", b, r.Default, want)
			}
			for c, l := range r.Categories {
				if std.Categories[c] == nil || *std.Categories[c] != l.String() {
					t.Fatalf("%q: category %q = %v, encoding/json %v", b, c, l, std.Categories[c])
				}
			}
			return
		}
		// Rejected: acceptable when encoding/json fails too, or the record
		// is semantically malformed (unknown level, null, duplicates).
		if stdErr != nil || raw == nil { // not an object ("null")
			return
		}
		if std.Default != nil {
			if _, e := ParseLevel(*std.Default); e != nil {
				return
			}
		} else if string(raw["default"]) == "null" {
			return
		}
		for _, l := range std.Categories {
			if l == nil {
				return
			}
			if _, e := ParseLevel(*l); e != nil {
				return
			}
		}
		if c, ok := raw["categories"]; ok && (string(c) == "null") {
			return
		}
		if hasDuplicateKeys(b) {
			return
		}
		t.Fatalf("ParseValue rejected %q (%v), encoding/json accepts it", b, err)
	})
}

// hasDuplicateKeys reports whether the object or its categories repeat a
// key (encoding/json silently keeps the last one).
func hasDuplicateKeys(b []byte) bool {
	dec := json.NewDecoder(bytesReader(b))
	return dupIn(dec)
}

func dupIn(dec *json.Decoder) bool {
	tok, err := dec.Token()
	if err != nil {
		return false
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		dup := false
		for dec.More() {
			k, _ := dec.Token()
			ks, _ := k.(string)
			if seen[ks] {
				dup = true
			}
			seen[ks] = true
			if dupIn(dec) {
				dup = true
			}
		}
		dec.Token()
		return dup
	case json.Delim('['):
		dup := false
		for dec.More() {
			if dupIn(dec) {
				dup = true
			}
		}
		dec.Token()
		return dup
	}
	return false
}

type byteReader struct {
	b []byte
}

func bytesReader(b []byte) *byteReader { return &byteReader{b} }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, errEOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
