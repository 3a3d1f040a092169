package consent

import (
	"errors"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name         string
		tenant, user string
		wantT, wantU string
	}{
		{"plain", "T1", "U1", "t:T1", "u:T1:U1"},
		{"unreserved", "a-b.c_d~e", "Z9", "t:a-b.c_d~e", "u:a-b.c_d~e:Z9"},
		{"colon", "org:1", "user:2", "t:org%3A1", "u:org%3A1:user%3A2"},
		{"percent", "100%", "%41", "t:100%25", "u:100%25:%2541"},
		{"non-ASCII", "Zürich", "名前", "t:Z%C3%BCrich", "u:Z%C3%BCrich:%E5%90%8D%E5%89%8D"},
		{"space and slash", "a b/c", "x+y", "t:a%20b%2Fc", "u:a%20b%2Fc:x%2By"},
		{"tenantless", "", "U1", "", "u::U1"},
		{"control bytes", "\x00\xff", "\n", "t:%00%FF", "u:%00%FF:%0A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tenant != "" {
				k := TenantKey(tc.tenant)
				if k != tc.wantT {
					t.Errorf("TenantKey(%q) = %q, want %q", tc.tenant, k, tc.wantT)
				}
				s, err := ParseKey(k)
				if err != nil || s != (Subject{Kind: SubjectTenant, Tenant: tc.tenant}) {
					t.Errorf("ParseKey(%q) = %+v, %v", k, s, err)
				}
				if s.Key() != k {
					t.Errorf("Subject.Key() = %q, want %q", s.Key(), k)
				}
			}
			k := UserKey(tc.tenant, tc.user)
			if k != tc.wantU {
				t.Errorf("UserKey(%q, %q) = %q, want %q", tc.tenant, tc.user, k, tc.wantU)
			}
			s, err := ParseKey(k)
			if err != nil || s != (Subject{Kind: SubjectUser, Tenant: tc.tenant, User: tc.user}) {
				t.Errorf("ParseKey(%q) = %+v, %v", k, s, err)
			}
			if s.Key() != k {
				t.Errorf("Subject.Key() = %q, want %q", s.Key(), k)
			}
		})
	}
}

func TestParseKeyLenientAndCanonical(t *testing.T) {
	for _, tc := range []struct {
		raw, canonical string
	}{
		{"t:T1", "t:T1"},
		{"t:org%3a1", "t:org%3A1"},         // lower-case hex
		{"t:%41bc", "t:Abc"},               // escaped unreserved byte
		{"t:a b", "t:a%20b"},               // should have been escaped
		{"u::Zürich", "u::Z%C3%BCrich"},    // raw UTF-8
		{"u:T%2F1:U%201", "u:T%2F1:U%201"}, // already canonical
	} {
		ck, _, err := canonicalKey([]byte(tc.raw))
		if err != nil || string(ck) != tc.canonical {
			t.Errorf("canonicalKey(%q) = %q, %v; want %q", tc.raw, ck, err, tc.canonical)
		}
		s, err := ParseKey(tc.raw)
		if err != nil || s.Key() != tc.canonical {
			t.Errorf("ParseKey(%q).Key() = %q, %v; want %q", tc.raw, s.Key(), err, tc.canonical)
		}
	}
}

func TestParseKeyMalformed(t *testing.T) {
	for _, k := range []string{
		"", "t", "t:", "x:T1", "T1", "u:T1", "u:T1:", "u::", "t:a:b", "u:a:b:c",
		"t:%", "t:%4", "t:%G1", "u:T1:%zz", "\x00\x00\x00\x00",
	} {
		if s, err := ParseKey(k); err == nil || !errors.Is(err, ErrMalformedKey) {
			t.Errorf("ParseKey(%q) = %+v, %v; want ErrMalformedKey", k, s, err)
		}
	}
}

func FuzzKeyRoundTrip(f *testing.F) {
	f.Add("T1", "U1")
	f.Add("a:b", "%")
	f.Add("", "名前")
	f.Fuzz(func(t *testing.T, tenant, user string) {
		if user == "" {
			return
		}
		s, err := ParseKey(UserKey(tenant, user))
		if err != nil || s.Tenant != tenant || s.User != user || s.Kind != SubjectUser {
			t.Fatalf("round trip of (%q, %q): %+v, %v", tenant, user, s, err)
		}
		if tenant != "" {
			s, err := ParseKey(TenantKey(tenant))
			if err != nil || s.Tenant != tenant || s.Kind != SubjectTenant {
				t.Fatalf("round trip of %q: %+v, %v", tenant, s, err)
			}
		}
	})
}
