package redact

import (
	"testing"

	"github.com/tidwall/gjson"
)

var validSeeds = []string{
	``, ` `, `{}`, `[]`, `""`, `"a`, `{"a":1}`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a" 1}`, `{"a":}`, `{,}`, `{"a":1 "b":2}`,
	`-`, `-0`, `-01`, `01`, `0.`, `0.1`, `1e`, `1e+`, `1E-5`, `1.5e3`, `.5`, `+1`, `0x1`, `1 2`, ` 1 `, "\t[\n1\r]\n",
	`tru`, `true`, `truex`, `fals`, `false`, `null`, `nul`, `nulll`, `[true,false,null]`,
	`"\u00e9"`, `"\u00g9"`, `"\u00"`, `"\x"`, `"\/\b\f\n\r\t\"\\"`, "\"a\x01\"", "\"\x7f\xff\"", `"\`, `"\"`,
	`"abcdefghijklmnopqrstuvwxyz\"0123456789"`, `"abcdefgh"`, `"abcdefg"`, `"abcdefghi`, `{"a":[{"b":{"c":[1,2,{"d":"e"}]}}]}`,
	`[[[[[[[[[[]]]]]]]]]]`, `[[[[[[[[[[]]]]]]]]]`, `{"a":1}}`, `{"a":1}x`,
}

func TestValidMatchesGjson(t *testing.T) {
	for _, s := range validSeeds {
		if got, want := validJSON(s), gjson.Valid(s); got != want {
			t.Errorf("validJSON(%q) = %v, gjson.Valid = %v", s, got, want)
		}
	}
	for _, name := range []string{"chat", "files", "messages"} {
		for _, ev := range benchEvents(t, name) {
			for _, cut := range []int{len(ev), len(ev) - 1, len(ev) / 2} {
				s := string(ev[:cut])
				if got, want := validJSON(s), gjson.Valid(s); got != want {
					t.Fatalf("validJSON = %v, gjson.Valid = %v for %q", got, want, s)
				}
			}
		}
	}
}

func FuzzValid(f *testing.F) {
	for _, s := range validSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validJSON(s), gjson.Valid(s); got != want {
			t.Fatalf("validJSON(%q) = %v, gjson.Valid = %v", s, got, want)
		}
		compareBitmapCheck(t, s)
	})
}
