package consent

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseValue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		want  Record
	}{
		{"contract example", `{"default": "deny", "categories": {"chat": "anonymized", "files": "deny"},
 "updated_at": "2026-11-22T10:00:00Z", "updated_by": "admin:U123"}`,
			Record{Default: LevelDeny, Categories: map[string]Level{"chat": LevelAnonymized, "files": LevelDeny},
				UpdatedAt: "2026-11-22T10:00:00Z", UpdatedBy: "admin:U123"}},
		{"no default is deny", `{"categories":{"chat":"allow"}}`, Record{Default: LevelDeny, Categories: map[string]Level{"chat": LevelAllow}}},
		{"empty object", `{}`, Record{}},
		{"unknown fields ignored", `{"default":"allow","x":[1,{"default":"deny"}],"v":2}`, Record{Default: LevelAllow}},
		{"category named default", `{"default":"deny","categories":{"default":"allow"}}`, Record{Default: LevelDeny, Categories: map[string]Level{"default": LevelAllow}}},
		{"escaped field name", `{"def\u0061ult":"allow"}`, Record{Default: LevelAllow}},
		{"whitespace", " \t\n{ \"default\" : \"allow\" , \"categories\" : { } }\r\n", Record{Default: LevelAllow}},
		{"escaped category", `{"default":"allow","categories":{"c\u0068at":"deny"}}`, Record{Default: LevelAllow, Categories: map[string]Level{"chat": LevelDeny}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseValue([]byte(tc.value))
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseValue = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseValueMalformed(t *testing.T) {
	for _, v := range []string{
		``, `null`, `"allow"`, `[]`, `{`, `{"default":"allow"`, `{"default":"yes"}`, `{"default":"Allow"}`,
		`{"default":1}`, `{"default":null}`, `{"categories":{"chat":"maybe"}}`, `{"categories":[]}`,
		`{"categories":{"chat":true}}`, `{"default":"allow","default":"deny"}`,
		`{"categories":{"chat":"allow","chat":"deny"}}`, `{"default":"allow"} trailing`,
		`{"default":"allow",}`, `{"default":"allow","x":01}`, `{"default":"allow","x":1.}`, "{\"default\":\"allow\",\"x\":\"\x01\"}",
		`{"default":"allow","x":tru}`, `{"default":"allow","x":[1,]}`, `{"default":"allow"}{}`, `{"default":"al\low"}`,
		`{"default":"allow","x":"\u12"}`, `{"default" "allow"}`, `{default:"allow"}`, `{"default":"allow","x":-}`,
		`{"default":"allow","x":{"a":1,}}`, `{"categories":{"chat":"allow"},"categories":{}}`, `{"categories":"allow"}`,
	} {
		if r, err := ParseValue([]byte(v)); !errors.Is(err, ErrMalformedValue) {
			t.Errorf("ParseValue(%s) = %+v, %v; want ErrMalformedValue", v, r, err)
		}
	}
}

func TestRecordLevel(t *testing.T) {
	r := Record{Default: LevelAnonymized, Categories: map[string]Level{"chat": LevelAllow}}
	if r.Level("chat") != LevelAllow || r.Level("files") != LevelAnonymized {
		t.Fatalf("Record.Level wrong: %v %v", r.Level("chat"), r.Level("files"))
	}
}
