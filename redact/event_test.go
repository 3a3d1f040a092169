package redact

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// nesting is the deepest nesting of objects and arrays in s, valid JSON.
func nesting(s string) int {
	depth, deepest, in := 0, 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case in:
			if c == '\\' {
				i++
			} else if c == '"' {
				in = false
			}
		case c == '"':
			in = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// checkOracle is what Event.Check must decide, from independent parts:
// gjson's validator, the standard library's UTF-8 check and a bracket count.
func checkOracle(s string) string {
	switch {
	case s == "" || !gjson.Valid(s):
		if strings.Count(s, "[")+strings.Count(s, "{") > MaxDepth {
			return "" // either reason may come first; checked separately
		}
		return ReasonInvalidJSON
	case nesting(s) > MaxDepth:
		if !utf8.ValidString(s) {
			return "" // either reason may come first
		}
		return ReasonTooDeep
	case !utf8.ValidString(s):
		return ReasonInvalidJSON
	}
	return "ok"
}

func checkReason(s string) string {
	var ev Event
	if err := ev.Check([]byte(s)); err != nil {
		return ReasonOf(err)
	}
	return "ok"
}

var eventSeeds = append([]string{
	"{\"t\":\"caf\xc3\xa9\"}", "{\"t\":\"caf\xc3\"}", "{\"t\":\"\xff\"}", "{\"t\xfe\":1}", "{\"t\":\"\xed\xa0\x80\"}",
	"{\"t\":\"\xc0\xaf\"}", "{\"t\":\"\xf4\x90\x80\x80\"}", "[\"\xe2\x82\xac\xe2\x82\"]", "\"\xf0\x9f\x98\x80 12345678\"",
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
	`{"a":` + strings.Repeat(`{"b":`, MaxDepth-1) + `1` + strings.Repeat("}", MaxDepth),
	`{"a":` + strings.Repeat(`{"b":`, MaxDepth) + `1` + strings.Repeat("}", MaxDepth+1),
	strings.Repeat("[", 1<<16),
}, validSeeds...)

func TestEventCheck(t *testing.T) {
	for _, s := range eventSeeds {
		if want, got := checkOracle(s), checkReason(s); want != "" && got != want {
			t.Errorf("Check(%.60q) = %s, want %s", s, got, want)
		}
	}
	if got := checkReason(strings.Repeat("[", 1<<16)); got != ReasonTooDeep {
		t.Errorf("a megabyte of '[': %s, want %s", got, ReasonTooDeep)
	}
	for _, name := range []string{"chat", "files", "messages"} {
		for _, ev := range benchEvents(t, name) {
			for _, cut := range []int{len(ev), len(ev) - 1, len(ev) / 2} {
				if s := string(ev[:cut]); checkOracle(s) != checkReason(s) {
					t.Fatalf("Check = %s, want %s for %q", checkReason(s), checkOracle(s), s)
				}
			}
		}
	}
}

func TestEventMember(t *testing.T) {
	var ev Event
	doc := `{"user_id":"U1", "us\u0065r_id" : 7 ,"tenant_id":{"x":[1]},"t\"":"q"}`
	if err := ev.Check([]byte(doc)); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]struct {
		raw string
		n   int
	}{"user_id": {`"U1"`, 2}, "tenant_id": {`{"x":[1]}`, 1}, `t"`: {`"q"`, 1}, "none": {"", 0}} {
		if raw, n := ev.Member(key); raw != want.raw || n != want.n {
			t.Errorf("Member(%q) = %q, %d; want %q, %d", key, raw, n, want.raw, want.n)
		}
	}
	if err := ev.Check([]byte(`[{"user_id":"U1"}]`)); err != nil {
		t.Fatal(err)
	}
	if raw, n := ev.Member("user_id"); raw != "" || n != 0 {
		t.Errorf("array root: Member = %q, %d", raw, n)
	}
	if err := ev.Check([]byte("{\"a\":\"\xff\"}")); err == nil || ReasonOf(err) != ReasonInvalidJSON || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("invalid UTF-8: %v", err)
	}
}

func TestEventCheckAllocs(t *testing.T) {
	evs := benchEvents(t, "chat")
	var ev Event
	ev.Check(evs[0])
	if n := testing.AllocsPerRun(100, func() {
		for _, e := range evs {
			if ev.Check(e) != nil {
				t.Fatal("invalid")
			}
		}
	}); n > 0 {
		t.Errorf("%.0f allocations per %d checks, want 0", n, len(evs))
	}
}

func FuzzEventCheck(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if want, got := checkOracle(s), checkReason(s); want != "" && got != want {
			t.Fatalf("Check(%q) = %s, want %s", s, got, want)
		}
	})
}
