package consent

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/internal/kafkatest"
)

// Ids that exercise the percent-encoding: ':' and '%' must be escaped, and
// non-ASCII bytes too.
var awkwardIDs = []string{"plain", "a:b", "100%", "Zürich", "東京", "sp ace/slash?&=#", "%3A", "x~y_z.-"}

func TestMarshalValueRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{Default: LevelDeny},
		{Default: LevelAllow, UpdatedAt: "2026-11-22T10:00:00Z", UpdatedBy: "admin:U123"},
		{Default: LevelAnonymized, Categories: map[string]Level{"chat": LevelAllow, "files": LevelDeny, "ünï <&>": LevelAnonymized}},
	} {
		b, err := MarshalValue(r)
		if err != nil {
			t.Fatalf("MarshalValue(%+v): %v", r, err)
		}
		got, err := ParseValue(b)
		if err != nil {
			t.Fatalf("ParseValue(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip of %s: got %+v, want %+v", b, got, r)
		}
	}
}

func TestMarshalValueRejects(t *testing.T) {
	for name, r := range map[string]Record{
		"unknown default":  {Default: Level(7)},
		"unknown category": {Categories: map[string]Level{"chat": Level(3)}},
		"empty category":   {Categories: map[string]Level{"": LevelAllow}},
		"invalid UTF-8":    {UpdatedBy: "\xff"},
	} {
		t.Run(name, func(t *testing.T) {
			if b, err := MarshalValue(r); err == nil {
				t.Errorf("MarshalValue accepted %+v: %s", r, b)
			}
		})
	}
}

func TestSubjectValidate(t *testing.T) {
	for _, tc := range []struct {
		s  Subject
		ok bool
	}{
		{Subject{Kind: SubjectTenant, Tenant: "T"}, true},
		{Subject{Kind: SubjectTenant}, false},
		{Subject{Kind: SubjectTenant, Tenant: "T", User: "U"}, false},
		{Subject{Kind: SubjectUser, Tenant: "T", User: "U"}, true},
		{Subject{Kind: SubjectUser, User: "U"}, true}, // tenantless
		{Subject{Kind: SubjectUser, Tenant: "T"}, false},
		{Subject{Kind: SubjectUser, Tenant: "T", User: strings.Repeat("ä", MaxKeyLen/4)}, false},
		{Subject{}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

func TestParseLine(t *testing.T) {
	allowChat := &Record{Default: LevelDeny, Categories: map[string]Level{"chat": LevelAllow}}
	for _, tc := range []struct {
		line string
		want Mutation
		err  string // substring of the error; "" = valid
	}{
		{`{"tenant":"T1","value":{"default":"deny","categories":{"chat":"allow"}}}`,
			Mutation{Subject: Subject{Kind: SubjectTenant, Tenant: "T1"}, Record: allowChat}, ""},
		{`{"tenant":"a:b","user":"Zürich","value":null}`,
			Mutation{Subject: Subject{Kind: SubjectUser, Tenant: "a:b", User: "Zürich"}}, ""},
		{`{"tenant":"","user":"U","value":{"default":"allow"}}`,
			Mutation{Subject: Subject{Kind: SubjectUser, User: "U"}, Record: &Record{Default: LevelAllow}}, ""},
		{`{"user":"U","value":{"default":"allow"}}`,
			Mutation{Subject: Subject{Kind: SubjectUser, User: "U"}, Record: &Record{Default: LevelAllow}}, ""},
		{`{"key":"u:a%3Ab:Z%C3%BCrich","value":{"default":"anonymized","updated_by":"x"}}`,
			Mutation{Subject: Subject{Kind: SubjectUser, Tenant: "a:b", User: "Zürich"}, Record: &Record{Default: LevelAnonymized, UpdatedBy: "x"}}, ""},
		{`  {"key":"t:T1","value":null}  ` + "\r\n", Mutation{Subject: Subject{Kind: SubjectTenant, Tenant: "T1"}}, ""},
		{`{"tenant":"T1","value":{"default":"maybe"}}`, Mutation{}, "unknown consent level"},
		{`{"tenant":"T1","value":{"categories":{"chat":"yes"}}}`, Mutation{}, "unknown consent level"},
		{`{"tenant":"T1"}`, Mutation{}, `no "value"`},
		{`{"tennant":"T1","value":null}`, Mutation{}, "unknown field"},
		{`{"value":null}`, Mutation{}, "no subject"},
		{`{"key":"t:T1","tenant":"T1","value":null}`, Mutation{}, "not both"},
		{`{"key":"x:T1","value":null}`, Mutation{}, "malformed key"},
		{`{"tenant":"","value":null}`, Mutation{}, "empty tenant id"},
		{`{"tenant":"T","user":"","value":null}`, Mutation{}, "empty user id"},
		{`{"tenant":"T1","value":"deny"}`, Mutation{}, "not a JSON object"},
		{`{"tenant":"T1","value":{"default":"deny"}} {}`, Mutation{}, "more than one"},
		{`not json`, Mutation{}, "not a JSON object"},
	} {
		m, err := ParseLine([]byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLine(%s): error %v, want one containing %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseLine(%s): %v", tc.line, err)
			continue
		}
		if !reflect.DeepEqual(m, tc.want) {
			t.Errorf("ParseLine(%s) = %+v %+v, want %+v %+v", tc.line, m, m.Record, tc.want, tc.want.Record)
		}
	}
}

func TestAppendLineRoundTrip(t *testing.T) {
	var ms []Mutation
	for _, id := range append(awkwardIDs, "\xff\xfe bytes") {
		ms = append(ms,
			Mutation{Subject: Subject{Kind: SubjectTenant, Tenant: id}, Record: &Record{Default: LevelAllow, UpdatedBy: "u"}},
			Mutation{Subject: Subject{Kind: SubjectUser, Tenant: id, User: id + "!"},
				Record: &Record{Default: LevelDeny, Categories: map[string]Level{"chat": LevelAnonymized}}},
			Mutation{Subject: Subject{Kind: SubjectUser, User: id}})
	}
	for _, m := range ms {
		b, err := AppendLine(nil, m)
		if err != nil {
			t.Fatalf("AppendLine(%+v): %v", m, err)
		}
		if !strings.HasSuffix(string(b), "\n") || strings.Count(string(b), "\n") != 1 {
			t.Errorf("AppendLine(%+v) = %q: want one line", m, b)
		}
		got, err := ParseLine(b)
		if err != nil {
			t.Fatalf("ParseLine(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %s: got %+v, want %+v", b, got, m)
		}
	}
}

func TestStamp(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 5, time.FixedZone("x", 3600))
	m := Mutation{Subject: Subject{Kind: SubjectTenant, Tenant: "T"}, Record: &Record{UpdatedBy: "kept"}}
	m.Stamp(now, "by")
	if m.Record.UpdatedAt != "2026-11-22T09:00:00Z" || m.Record.UpdatedBy != "kept" {
		t.Errorf("Stamp: %+v", m.Record)
	}
	del := Mutation{Subject: Subject{Kind: SubjectTenant, Tenant: "T"}}
	del.Stamp(now, "by") // tombstones carry nothing; must not panic
}

// TestTableExplain checks that Explain returns Decide's decision and the
// two records it consulted, on a table filled with Apply.
func TestTableExplain(t *testing.T) {
	tb := NewTable(PolicyConfig{Defaults: map[string]Level{"chat": LevelAnonymized}}, "chat", "files")
	tb.Apply([]byte(TenantKey("a:b")), []byte(`{"default":"allow","categories":{"chat":"deny"}}`), 0, 7)
	tb.Apply([]byte(UserKey("a:b", "Zürich")), []byte(`{"default":"anonymized"}`), 2, 9)
	tb.Apply([]byte(UserKey("a:b", "bad")), []byte(`{"default":"nope"}`), 1, 3)
	if _, err := tb.Explain("a:b", "Zürich", "chat"); err != ErrNotReady {
		t.Fatalf("Explain before ready: %v, want ErrNotReady", err)
	}
	tb.MarkReady()
	for _, tc := range []struct {
		tenant, user, category string
		level                  Level
		reason                 Reason
		tenantRec, userRec     bool
	}{
		{"a:b", "Zürich", "chat", LevelDeny, ReasonBoth, true, true},
		{"a:b", "Zürich", "files", LevelAnonymized, ReasonBoth, true, true},
		{"a:b", "other", "files", LevelAllow, ReasonTenant, true, false},
		{"a:b", "bad", "files", LevelDeny, ReasonMalformed, true, true},
		{"c", "d", "chat", LevelAnonymized, ReasonDefault, false, false},
		{"c", "d", "messages", LevelDeny, ReasonDefault, false, false},
		{"", "d", "chat", LevelAnonymized, ReasonDefault, false, false},
	} {
		x, err := tb.Explain(tc.tenant, tc.user, tc.category)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := tb.Decide(tc.tenant, tc.user, tc.category)
		if x.Decision != d {
			t.Errorf("%+v: Explain's decision %+v differs from Decide's %+v", tc, x.Decision, d)
		}
		if d.Level != tc.level || d.Reason != tc.reason {
			t.Errorf("%+v: got %s (%s)", tc, d.Level, d.Reason)
		}
		if x.TenantRecord.Levels.Valid() != tc.tenantRec || x.UserRecord.Levels.Valid() != tc.userRec {
			t.Errorf("%+v: records %+v %+v", tc, x.TenantRecord, x.UserRecord)
		}
		if pol := tb.Policy(); x.Default != pol.DefaultFor(tc.category) {
			t.Errorf("%+v: default %s", tc, x.Default)
		}
	}
	x, _ := tb.Explain("a:b", "Zürich", "chat")
	if x.TenantRecord.Key != TenantKey("a:b") || x.TenantRecord.Partition != 0 || x.TenantRecord.Offset != 7 ||
		x.UserRecord.Partition != 2 || x.UserRecord.Offset != 9 {
		t.Errorf("record coordinates: %+v %+v", x.TenantRecord, x.UserRecord)
	}
}

func newAdmin(t *testing.T, partitions int) (*Admin, string) {
	t.Helper()
	addr := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "admin")
	kafkatest.CreateCompactedTopic(t, addr, topic, partitions)
	// A topic just created may still answer "not leader" for a moment; the
	// Admin retries that, the harness's Offsets does not.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := kafkatest.Offsets(ctx, addr, topic)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("topic %s not ready: %v", topic, err)
		}
	}
	return &Admin{Brokers: []string{addr}, Topic: topic}, addr
}

// TestAdminSetGetDelete writes records of awkward ids through Admin, reads
// them back with Snapshot and with the Loader the stage uses, and checks
// that every key sits in the partition the Java client's partitioner picks.
func TestAdminSetGetDelete(t *testing.T) {
	a, addr := newAdmin(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string]Record{}
	var subjects []Subject
	for i, id := range awkwardIDs {
		ts := Subject{Kind: SubjectTenant, Tenant: id}
		us := Subject{Kind: SubjectUser, Tenant: id, User: "ü:" + id}
		ls := Subject{Kind: SubjectUser, User: id} // tenantless
		for j, s := range []Subject{ts, us, ls} {
			r := Record{Default: Level((i + j) % 3), Categories: map[string]Level{"chat": Level(j % 3)},
				UpdatedAt: "2026-11-22T10:00:00Z", UpdatedBy: fmt.Sprint("test ", i)}
			pos, err := a.Set(ctx, s, r)
			if err != nil {
				t.Fatalf("Set(%s): %v", s.Key(), err)
			}
			if pos.Offset < 0 || pos.Partition != murmur2Partition(s.Key(), 3) {
				t.Errorf("Set(%s) at %+v, want partition %d", s.Key(), pos, murmur2Partition(s.Key(), 3))
			}
			want[s.Key()] = r
			subjects = append(subjects, s)
		}
	}
	// Delete one of each kind; a later set of the same key wins over an
	// earlier delete.
	for _, s := range subjects[:3] {
		if _, err := a.Delete(ctx, s); err != nil {
			t.Fatalf("Delete(%s): %v", s.Key(), err)
		}
		delete(want, s.Key())
	}
	again := Record{Default: LevelAllow}
	if _, err := a.Set(ctx, subjects[1], again); err != nil {
		t.Fatal(err)
	}
	want[subjects[1].Key()] = again

	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	got := map[string]Record{}
	for _, e := range snap.Current() {
		if e.Err != nil {
			t.Errorf("%s: %v", e.Key, e.Err)
		}
		if e.Partition != murmur2Partition(e.Key, 3) || e.Time.IsZero() {
			t.Errorf("%s: partition %d time %v", e.Key, e.Partition, e.Time)
		}
		if e.Subject.Key() != e.Key {
			t.Errorf("%s: subject %+v", e.Key, e.Subject)
		}
		got[e.Key] = e.Record
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("snapshot:\n got %v\nwant %v", got, want)
	}
	for _, s := range []Subject{subjects[0], subjects[2]} {
		e, ok := snap.Get(s)
		if !ok || !e.Deleted() {
			t.Errorf("Get(%s) = %+v, %v: want the tombstone", s.Key(), e, ok)
		}
	}
	e, ok := snap.Get(subjects[1])
	if !ok || e.Deleted() || e.Record.Default != LevelAllow {
		t.Errorf("Get(%s) = %+v", subjects[1].Key(), e)
	}
	if users := snap.Users("a:b"); len(users) != 1 || users[0].Subject.User != "ü:a:b" {
		t.Errorf("Users(a:b) = %+v", users)
	}

	// The stage's loader sees the same state.
	tb := NewTable(PolicyConfig{})
	l, err := NewLoader([]string{addr}, nil, Config{Topic: a.Topic}, tb, WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RunUntilReady(ctx); err != nil {
		t.Fatalf("RunUntilReady: %v", err)
	}
	if l.State() != StateStopped || !tb.Ready() || tb.Len() != len(want) {
		t.Fatalf("after RunUntilReady: state %s, ready %v, %d subjects (want %d)", l.State(), tb.Ready(), tb.Len(), len(want))
	}
	for key, r := range want {
		s, _ := ParseKey(key)
		x, err := tb.Explain(s.Tenant, s.User, "files")
		if err != nil {
			t.Fatal(err)
		}
		c := x.TenantRecord
		if s.Kind == SubjectUser {
			c = x.UserRecord
		}
		if !c.Levels.Valid() || c.Levels.Default() != r.Default || c.Key != key {
			t.Errorf("%s: table has %+v, want default %s", key, c, r.Default)
		}
	}
}

func murmur2Partition(key string, n int) int {
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(key)}, parts...)
}

// TestAdminWriteBulk writes more records than fit one request, with repeated
// keys, and checks order (last wins) and that an invalid mutation stops the
// whole write before anything is produced.
func TestAdminWriteBulk(t *testing.T) {
	a, addr := newAdmin(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bad := []Mutation{
		{Subject: Subject{Kind: SubjectTenant, Tenant: "ok"}, Record: &Record{}},
		{Subject: Subject{Kind: SubjectTenant, Tenant: "bad"}, Record: &Record{Default: Level(9)}},
	}
	if _, err := a.Write(ctx, bad); err == nil {
		t.Fatal("Write accepted an invalid mutation")
	}
	if _, end, err := kafkatest.Offsets(ctx, addr, a.Topic); err != nil || end[0]+end[1] != 0 {
		t.Fatalf("after a rejected Write the topic holds %v records (err %v)", end, err)
	}
	var ms []Mutation
	for i := 0; i < 2500; i++ {
		s := Subject{Kind: SubjectUser, Tenant: "T", User: fmt.Sprint("U", i%1000)}
		ms = append(ms, Mutation{Subject: s, Record: &Record{Default: Level(i / 1000 % 3)}})
	}
	pos, err := a.Write(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Position]bool{}
	for i, p := range pos {
		if p.Offset < 0 || seen[p] {
			t.Fatalf("mutation %d at %+v", i, p)
		}
		seen[p] = true
	}
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur := snap.Current()
	if len(cur) != 1000 {
		t.Fatalf("%d subjects, want 1000", len(cur))
	}
	for _, e := range cur {
		var u int
		fmt.Sscanf(e.Subject.User, "U%d", &u)
		want := LevelAnonymized // i in [1000, 2000) for every u, then [2000, 2500) for u < 500
		if u < 500 {
			want = LevelAllow
		}
		if e.Record.Default != want {
			t.Errorf("%s: %s, want %s (the last write)", e.Key, e.Record.Default, want)
		}
	}
}

// TestSnapshotMalformed reads malformed keys and values as the table would
// count them.
func TestSnapshotMalformed(t *testing.T) {
	a, addr := newAdmin(t, 1)
	kafkatest.Produce(t, addr, a.Topic, kafka.Zstd,
		kafka.Message{Key: []byte("x:nope"), Value: []byte(`{"default":"allow"}`)},
		kafka.Message{Key: []byte("t:a b"), Value: []byte(`{"default":"sometimes"}`)},
		kafka.Message{Key: []byte("t:ok"), Value: []byte(`{"default":"allow","extra":1}`)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	snap, err := a.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.MalformedKeys) != 1 || snap.MalformedKeys[0].RawKey != "x:nope" {
		t.Errorf("malformed keys: %+v", snap.MalformedKeys)
	}
	e, ok := snap.Get(Subject{Kind: SubjectTenant, Tenant: "a b"})
	if !ok || e.Err == nil || e.Record.Default != LevelDeny || e.RawKey != "t:a b" || e.Key != "t:a%20b" {
		t.Errorf("malformed value: %+v", e)
	}
	e, ok = snap.Get(Subject{Kind: SubjectTenant, Tenant: "ok"})
	if !ok || e.Err != nil || e.Record.Default != LevelAllow {
		t.Errorf("valid value with an unknown field: %+v", e)
	}
}
