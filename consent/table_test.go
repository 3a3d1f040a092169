package consent

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestTableManyKeys(t *testing.T) {
	tb := NewTable(optIn, "chat")
	const n = 100_000
	vals := [][]byte{[]byte(`{"default":"allow"}`), []byte(`{"default":"anonymized","categories":{"chat":"deny"}}`), []byte(`{}`)}
	for i := 0; i < n; i++ {
		tb.Apply([]byte(UserKey(fmt.Sprint("T", i%97), fmt.Sprint("U", i))), vals[i%3], i%4, int64(i))
	}
	for i := 0; i < n; i += 7 {
		tb.Apply([]byte(UserKey(fmt.Sprint("T", i%97), fmt.Sprint("U", i))), nil, i%4, int64(n+i))
	}
	tb.MarkReady()
	st := tb.Stats()
	deleted := (n + 6) / 7
	if st.Subjects != n-deleted || st.Entries != n || st.Vectors != 3 || tb.Len() != n-deleted {
		t.Fatalf("stats %+v, deleted %d", st, deleted)
	}
	for i := 0; i < n; i++ {
		d, _ := tb.Decide(fmt.Sprint("T", i%97), fmt.Sprint("U", i), "chat")
		want := []Level{LevelAllow, LevelDeny, LevelDeny}[i%3]
		if i%7 == 0 {
			if d.Reason != ReasonDefault {
				t.Fatalf("deleted subject %d: %+v", i, d)
			}
			continue
		}
		if d.Level != want || d.Reason != ReasonUser || d.Offset != int64(i) || d.Partition != int32(i%4) {
			t.Fatalf("subject %d: %+v, want level %v", i, d, want)
		}
	}
}

// TestTableConcurrentReads runs readers against the single writer; under
// -race this checks the publication protocol. Every reader must see, per key,
// a level and offset that belong together (the seqlock) and never a torn key.
func TestTableConcurrentReads(t *testing.T) {
	tb := NewTable(optIn, "chat")
	tb.MarkReady()
	const keys = 2000
	levels := [][]byte{[]byte(`{"default":"deny"}`), []byte(`{"default":"anonymized"}`), []byte(`{"default":"allow"}`)}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k := i % keys
				d, err := tb.Decide("T", fmt.Sprint("U", k), "chat")
				if err != nil {
					errs <- err
					return
				}
				if d.Reason == ReasonDefault {
					continue
				}
				// The writer writes level (offset % 3) at offset.
				if d.Level != Level(d.Offset%3) || d.Key != UserKey("T", fmt.Sprint("U", k)) {
					errs <- fmt.Errorf("torn read: %+v", d)
					return
				}
			}
		}()
	}
	for off := int64(0); off < 200_000; off++ {
		k := off % (keys + off/100) // the key set keeps growing: index growth under readers
		if off%11 == 0 {
			tb.Apply([]byte(UserKey("T", fmt.Sprint("U", k))), nil, 0, off)
			continue
		}
		tb.Apply([]byte(UserKey("T", fmt.Sprint("U", k))), levels[off%3], 0, off)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestDecideAllocs(t *testing.T) {
	tb := fill(t, optOut, [2]string{TenantKey("T1"), `{"default":"allow"}`}, [2]string{UserKey("T1", "U1"), `{"default":"deny","categories":{"x":"allow"}}`})
	for _, c := range []struct{ tenant, user, category string }{
		{"T1", "U1", "chat"}, {"T1", "U1", "x"}, {"T2", "U1", "telemetry"}, {"", "U9", "chat"}, {"T:1", "ü", "chat"},
	} {
		if n := testing.AllocsPerRun(1000, func() { tb.Decide(c.tenant, c.user, c.category) }); n != 0 {
			t.Errorf("Decide%v: %v allocs/op, want 0", c, n)
		}
	}
}

// TestTableMemory1M measures the table's memory per subject at 1 M subjects.
func TestTableMemory1M(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow under -race and -short; BenchmarkTableMemory measures 1 M and 10 M")
	}
	perSubject, keyBytes := measureTableMemory(t, 1_000_000)
	t.Logf("1M subjects: %.1f bytes/subject beyond %.1f key bytes", perSubject, keyBytes)
	if perSubject > 64 {
		t.Errorf("%.1f bytes/subject beyond the key bytes, want ≤ 64", perSubject)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// measureTableMemory fills a table with n user subjects (a realistic mix of
// a few distinct level vectors) and returns heap bytes per subject beyond
// the key bytes, and the mean key length.
func measureTableMemory(t testing.TB, n int) (perSubject, meanKey float64) {
	vals := [][]byte{[]byte(`{"default":"allow"}`), []byte(`{"default":"anonymized","categories":{"chat":"deny"}}`), []byte(`{"default":"deny"}`)}
	before := heapInUse()
	tb := NewTable(optOut, "chat", "files", "messages")
	var keyBytes int
	var kb []byte
	for i := 0; i < n; i++ {
		kb = appendUserKey(kb[:0], fmt.Sprintf("T%06d", i%50_000), fmt.Sprintf("U%09d", i))
		keyBytes += len(kb)
		tb.Apply(kb, vals[i%3], i%8, int64(i))
	}
	after := heapInUse()
	runtime.KeepAlive(tb)
	if tb.Len() != n {
		t.Fatalf("Len = %d, want %d", tb.Len(), n)
	}
	return (float64(after-before) - float64(keyBytes)) / float64(n), float64(keyBytes) / float64(n)
}

func TestApplyChanges(t *testing.T) {
	tb := NewTable(optIn, "chat")
	for _, tc := range []struct {
		key, value string
		null       bool
		kind       ChangeKind
		replaced   bool
		chat       Level
	}{
		{"u:T1:U1", `{"default":"allow","categories":{"chat":"anonymized"},"updated_by":"admin:U9"}`, false, ChangeSet, false, LevelAnonymized},
		{"u:T1:U1", `{"default":"allow"}`, false, ChangeSet, true, LevelAllow},
		{"u:T1:U1", `{"default":"never"}`, false, ChangeMalformedValue, true, LevelDeny},
		{"u:T1:U1", "", true, ChangeDelete, true, LevelDeny},
		{"u:T1:U1", "", true, ChangeDelete, false, LevelDeny},
		{"bad key", `{"default":"allow"}`, false, ChangeMalformedKey, false, LevelDeny},
	} {
		var v []byte
		if !tc.null {
			v = []byte(tc.value)
		}
		c := tb.Apply([]byte(tc.key), v, 3, 42)
		if c.Kind != tc.kind || c.Replaced != tc.replaced || c.Levels.For("chat") != tc.chat || c.Key != tc.key || c.Partition != 3 || c.Offset != 42 {
			t.Errorf("Apply(%q, %s) = %+v", tc.key, tc.value, c)
		}
		if (c.Err != nil) != (tc.kind == ChangeMalformedKey || tc.kind == ChangeMalformedValue) {
			t.Errorf("Apply(%q, %s): err %v", tc.key, tc.value, c.Err)
		}
		if tc.kind == ChangeSet && c.Subject != (Subject{Kind: SubjectUser, Tenant: "T1", User: "U1"}) {
			t.Errorf("subject %+v", c.Subject)
		}
	}
	if tb.Len() != 0 || tb.Stats().Malformed != 0 || tb.Stats().Entries != 1 {
		t.Fatalf("stats %+v", tb.Stats())
	}
}

// TestDecideExactKeys checks that Decide finds every subject by its raw ids,
// whatever their length and bytes (the hashing and comparing by id, without
// building the key, must agree with the stored canonical keys), and never
// finds a subject by ids that differ from its own, such as its ids'
// encodings.
func TestDecideExactKeys(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := "aZ09-._~:%/ \x00\xffü"
	id := func() string {
		b := make([]byte, r.IntN(40))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = alphabet[r.IntN(len(alphabet))]
			} else {
				b[i] = byte('a' + r.IntN(3))
			}
		}
		return string(b)
	}
	tb := NewTable(optIn, "chat")
	type subject struct{ tenant, user string }
	want := map[subject]int64{}
	for off := int64(0); off < 5000; off++ {
		s := subject{id(), id()}
		if s.tenant == "" && s.user == "" {
			continue
		}
		key := UserKey(s.tenant, s.user)
		if s.user == "" {
			key = TenantKey(s.tenant)
		}
		tb.Apply([]byte(key), []byte(`{"default":"allow"}`), 0, off)
		want[s] = off
	}
	tb.MarkReady()
	for s, off := range want {
		d, _ := tb.Decide(s.tenant, s.user, "chat")
		by := SubjectUser
		if s.user == "" {
			by = SubjectTenant
		}
		if d.By != by || d.Offset < off {
			t.Fatalf("Decide(%q, %q) = %+v, want the record at offset %d", s.tenant, s.user, d, off)
		}
		// The encoded ids name other subjects (unless nothing needed escaping).
		et, eu := TenantKey(s.tenant)[2:], UserKey("", s.user)[3:]
		if _, ok := want[subject{et, eu}]; ok || (et == s.tenant && eu == s.user) || (s.tenant != "" && s.user == "") {
			continue
		}
		if s.tenant != "" {
			if _, ok := want[subject{et, ""}]; ok {
				continue
			}
		}
		if d, _ := tb.Decide(et, eu, "chat"); d.Reason != ReasonDefault {
			t.Fatalf("Decide(%q, %q) (the encoded ids of %q, %q) = %+v, want no record", et, eu, s.tenant, s.user, d)
		}
	}
}
