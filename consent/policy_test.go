package consent

import (
	"testing"
)

// fill applies records (key → JSON value, "" for a tombstone) to a fresh
// table and marks it ready.
func fill(t testing.TB, policy PolicyConfig, records ...[2]string) *Table {
	t.Helper()
	tb := NewTable(policy, "chat", "files", "messages")
	for i, r := range records {
		var v []byte
		if r[1] != "" {
			v = []byte(r[1])
		}
		c := tb.Apply([]byte(r[0]), v, 0, int64(i))
		if c.Kind == ChangeMalformedKey {
			t.Fatalf("record %d: malformed key %q: %v", i, r[0], c.Err)
		}
	}
	tb.MarkReady()
	return tb
}

var (
	optIn  = PolicyConfig{}
	optOut = PolicyConfig{Default: LevelDeny, Defaults: map[string]Level{"telemetry": LevelAllow, "chat": LevelAnonymized}}
)

func TestDecideComposition(t *testing.T) {
	const (
		tAllow  = `{"default":"allow"}`
		tDeny   = `{"default":"deny"}`
		tAnon   = `{"default":"anonymized"}`
		chatOff = `{"default":"allow","categories":{"chat":"deny"}}`
		bad     = `{"default":"sometimes"}`
		noDef   = `{"categories":{"files":"allow"}}`
	)
	tk, uk := TenantKey("T1"), UserKey("T1", "U1")
	for _, tc := range []struct {
		name     string
		policy   PolicyConfig
		records  [][2]string
		tenant   string
		user     string
		category string
		want     Level
		reason   Reason
		by       SubjectKind
		key      string
		offset   int64
	}{
		{"opt-in neither", optIn, nil, "T1", "U1", "chat", LevelDeny, ReasonDefault, 0, "", -1},
		{"opt-in neither unknown category", optIn, nil, "T1", "U1", "telemetry", LevelDeny, ReasonDefault, 0, "", -1},
		{"opt-out neither chat", optOut, nil, "T1", "U1", "chat", LevelAnonymized, ReasonDefault, 0, "", -1},
		{"opt-out neither telemetry", optOut, nil, "T1", "U1", "telemetry", LevelAllow, ReasonDefault, 0, "", -1},
		{"opt-out neither files", optOut, nil, "T1", "U1", "files", LevelDeny, ReasonDefault, 0, "", -1},
		{"opt-out other tenant's record does not apply", optOut, [][2]string{{TenantKey("T2"), tDeny}}, "T1", "U1", "telemetry", LevelAllow, ReasonDefault, 0, "", -1},
		{"only tenant", optIn, [][2]string{{tk, tAllow}}, "T1", "U1", "chat", LevelAllow, ReasonTenant, SubjectTenant, tk, 0},
		{"only tenant overrides opt-out default", optOut, [][2]string{{tk, tDeny}}, "T1", "U1", "telemetry", LevelDeny, ReasonTenant, SubjectTenant, tk, 0},
		{"only user", optIn, [][2]string{{uk, tAnon}}, "T1", "U1", "files", LevelAnonymized, ReasonUser, SubjectUser, uk, 0},
		{"only user category", optIn, [][2]string{{uk, chatOff}}, "T1", "U1", "chat", LevelDeny, ReasonUser, SubjectUser, uk, 0},
		{"only user category falls back to record default", optIn, [][2]string{{uk, chatOff}}, "T1", "U1", "files", LevelAllow, ReasonUser, SubjectUser, uk, 0},
		{"record without default is deny", optOut, [][2]string{{uk, noDef}}, "T1", "U1", "telemetry", LevelDeny, ReasonUser, SubjectUser, uk, 0},
		{"record without default category", optIn, [][2]string{{uk, noDef}}, "T1", "U1", "files", LevelAllow, ReasonUser, SubjectUser, uk, 0},
		{"both tenant more restrictive", optIn, [][2]string{{tk, tDeny}, {uk, tAllow}}, "T1", "U1", "chat", LevelDeny, ReasonBoth, SubjectTenant, tk, 0},
		{"both user more restrictive", optIn, [][2]string{{tk, tAllow}, {uk, tAnon}}, "T1", "U1", "chat", LevelAnonymized, ReasonBoth, SubjectUser, uk, 1},
		{"both per category", optIn, [][2]string{{tk, tAnon}, {uk, chatOff}}, "T1", "U1", "files", LevelAnonymized, ReasonBoth, SubjectTenant, tk, 0},
		{"both per category user", optIn, [][2]string{{tk, tAnon}, {uk, chatOff}}, "T1", "U1", "chat", LevelDeny, ReasonBoth, SubjectUser, uk, 1},
		{"both tie cites user", optIn, [][2]string{{tk, tAllow}, {uk, tAllow}}, "T1", "U1", "chat", LevelAllow, ReasonBoth, SubjectUser, uk, 1},
		{"malformed tenant", optOut, [][2]string{{tk, bad}}, "T1", "U1", "telemetry", LevelDeny, ReasonMalformed, SubjectTenant, tk, 0},
		{"malformed user", optOut, [][2]string{{uk, "not json"}}, "T1", "U1", "telemetry", LevelDeny, ReasonMalformed, SubjectUser, uk, 0},
		{"malformed user beats allowing tenant", optIn, [][2]string{{tk, tAllow}, {uk, bad}}, "T1", "U1", "chat", LevelDeny, ReasonMalformed, SubjectUser, uk, 1},
		{"malformed tenant beats allowing user", optIn, [][2]string{{tk, bad}, {uk, tAllow}}, "T1", "U1", "chat", LevelDeny, ReasonMalformed, SubjectTenant, tk, 0},
		{"tombstone removes record", optOut, [][2]string{{uk, tDeny}, {uk, ""}}, "T1", "U1", "telemetry", LevelAllow, ReasonDefault, 0, "", -1},
		{"overwrite latest wins", optIn, [][2]string{{uk, tDeny}, {uk, tAllow}}, "T1", "U1", "chat", LevelAllow, ReasonUser, SubjectUser, uk, 1},
		{"recreated after tombstone", optIn, [][2]string{{uk, tAllow}, {uk, ""}, {uk, tAnon}}, "T1", "U1", "chat", LevelAnonymized, ReasonUser, SubjectUser, uk, 2},
		{"malformed then fixed", optIn, [][2]string{{uk, bad}, {uk, tAllow}}, "T1", "U1", "chat", LevelAllow, ReasonUser, SubjectUser, uk, 1},
		{"tenantless user", optIn, [][2]string{{UserKey("", "U1"), tAllow}}, "", "U1", "chat", LevelAllow, ReasonUser, SubjectUser, "u::U1", 0},
		{"tenantless user is not a tenant's user", optIn, [][2]string{{UserKey("", "U1"), tAllow}}, "T1", "U1", "chat", LevelDeny, ReasonDefault, 0, "", -1},
		{"no user id: tenant only", optIn, [][2]string{{tk, tAllow}}, "T1", "", "chat", LevelAllow, ReasonTenant, SubjectTenant, tk, 0},
		{"encoded ids", optIn, [][2]string{{UserKey("a:b", "ü%"), tAllow}}, "a:b", "ü%", "chat", LevelAllow, ReasonUser, SubjectUser, "u:a%3Ab:%C3%BC%25", 0},
		{"non-canonical key in topic", optIn, [][2]string{{"u:a%3ab:x%41", tAllow}}, "a:b", "xA", "chat", LevelAllow, ReasonUser, SubjectUser, "u:a%3Ab:xA", 0},
		{"exact keys: prefix is not a match", optIn, [][2]string{{UserKey("T1", "U10"), tAllow}}, "T1", "U1", "chat", LevelDeny, ReasonDefault, 0, "", -1},
		{"unknown category listed in record", optIn, [][2]string{{uk, `{"default":"deny","categories":{"telemetry":"allow"}}`}}, "T1", "U1", "telemetry", LevelAllow, ReasonUser, SubjectUser, uk, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := fill(t, tc.policy, tc.records...)
			d, err := tb.Decide(tc.tenant, tc.user, tc.category)
			if err != nil {
				t.Fatal(err)
			}
			want := Decision{Level: tc.want, Reason: tc.reason, By: tc.by, Key: tc.key, Partition: 0, Offset: tc.offset}
			if tc.reason == ReasonDefault {
				want.Partition = -1
			}
			if d != want {
				t.Fatalf("Decide(%q, %q, %q) = %+v\nwant %+v", tc.tenant, tc.user, tc.category, d, want)
			}
		})
	}
}

func TestDecideNotReady(t *testing.T) {
	tb := NewTable(optOut)
	if _, err := tb.Decide("T1", "U1", "chat"); err != ErrNotReady {
		t.Fatalf("Decide before ready: err = %v, want ErrNotReady", err)
	}
}

func TestPolicyValidate(t *testing.T) {
	p := PolicyConfig{Default: 7, Defaults: map[string]Level{"chat": 9, "": LevelAllow}}
	errs := p.Validate()
	if len(errs) != 3 || errs[0].Path != "default" {
		t.Fatalf("Validate = %v", errs)
	}
}
