package consent

import (
	"errors"
	"hash/maphash"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"unsafe"
)

// ErrNotReady is returned by lookups before the table has caught up with
// the consent topic's end offsets read at start. Retrying later can help.
var ErrNotReady = errors.New("consent: table not ready (still catching up with the consent topic)")

// Table is the in-memory consent state: the latest record of every subject
// key of the consent topic, and the policy that turns them into decisions.
//
// Concurrency: any number of goroutines may call the read methods (Decide,
// Ready, Len, Positions, Stats) at any time, also while the table is
// written. Reads take no lock and never wait for the writer: they retry a
// few nanoseconds' worth of loads if they race an update of the same entry.
// There is exactly one writer: the Loader that owns the table, or, for
// tools and tests without a Loader, the single goroutine calling Apply and
// MarkReady. A table must not be given to two loaders.
//
// Memory: keys are stored once, in append-only byte chunks; each subject
// adds a 32-byte entry and one or two 8-byte index slots. Distinct level
// vectors (default plus categories) are stored once and shared. Entries of
// deleted subjects (tombstones) are kept, as "no record", until the process
// restarts; re-creating the subject reuses them.
type Table struct {
	policy   PolicyConfig
	catNames []string // known categories, sorted; their levels are pre-resolved
	catIdx   map[string]int
	catDefs  []Level // configured default per known category
	seed     maphash.Seed
	hseed    uint64 // seed of the index hash (see hashID), derived from seed

	ready atomic.Bool
	idx   atomic.Pointer[index]
	arena atomic.Pointer[arena]
	vecs  atomic.Pointer[[]*levelVec]
	pos   atomic.Pointer[[]int64]

	live      atomic.Int64
	version   atomic.Uint64 // changes applied, see Version
	malformed atomic.Int64  // subjects whose current record is malformed
	entries   atomic.Int64

	// Writer-only state.
	w struct {
		n         int   // records in the arena
		chunkUsed []int // words used per arena chunk
		vecIDs    map[string]uint32
	}
}

// The arena holds one record per subject key ever seen, in chunks of
// 8-byte words that are never moved or freed while the table lives:
//
//	word 0: state, atomic: seq (low 32 bits, odd while the writer updates
//	        the record) | vector id (high 32 bits; 0 = no record, deleted)
//	word 1: offset of the latest record, atomic
//	word 2: partition (low 32 bits, atomic) | key length (high 32 bits)
//	word 3…: key bytes, zero-padded to a word
//
// Keeping the key next to its state makes a lookup touch two cache lines
// (index slot, record) rather than three. A record is referenced by
// chunk<<20 | word; the first chunk is small, the others 4 MiB.
const (
	firstChunkWords = 1 << 13
	chunkWords      = 1 << 19
	recordHeader    = 3
	minIndexSlots   = 1 << 10
)

type arena struct {
	chunks [][]uint64
}

// record is the header of a record in the arena; its key bytes follow.
type record struct {
	state, offset, part atomic.Uint64 // words 0 to 2, see arena
}

// record returns the record at ref, which the arena must hold.
func (a *arena) record(ref uint32) *record {
	c := a.chunks[ref>>20]
	return (*record)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(c)), uintptr(ref&(1<<20-1))*8))
}

// keyData returns a pointer to r's key bytes.
func (r *record) keyData() unsafe.Pointer { return unsafe.Add(unsafe.Pointer(r), recordHeader*8) }

// key returns the record's key bytes, immutable once published.
func (a *arena) key(ref uint32) []byte {
	c := a.chunks[ref>>20]
	w := ref & (1<<20 - 1)
	n := int(atomic.LoadUint64(&c[w+2]) >> 32)
	return unsafe.Slice((*byte)(unsafe.Pointer(&c[w+recordHeader])), n)
}

// index is an open-addressing hash index of records, linear probing. A slot
// is hash>>32 << 32 | (record ref + 1); 0 is empty. Slots are only ever
// filled, never cleared, so a probe ends at the first empty slot. The hash
// is that of the key's ids (see hashID), and the tag in the slot's high
// half rejects almost every other key without touching its record; keys
// are always compared in full.
type index struct {
	slots []atomic.Uint64
	mask  uint64
}

// slot returns slot i&ix.mask, without a bounds check.
func (ix *index) slot(i uint64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(ix.slots)), (i&ix.mask)*8))
}

// levelVec is an interned level vector: a record's default plus its
// per-category levels. Immutable once published.
type levelVec struct {
	malformed bool
	def       Level
	known     []Level          // resolved level of each known category
	extra     map[string]Level // listed categories that are not known
	cats      []catLevel       // all listed categories, sorted by name
}

func (v *levelVec) level(catIdx int, category string) Level {
	if catIdx >= 0 {
		return v.known[catIdx]
	}
	if l, ok := v.extra[category]; ok {
		return l
	}
	return v.def
}

// NewTable returns an empty, not yet ready table that decides with policy.
// Categories named in policy.Defaults and in categories are "known": their
// lookups are a little faster. Any other category still works.
func NewTable(policy PolicyConfig, categories ...string) *Table {
	t := &Table{policy: PolicyConfig{Default: policy.Default, Defaults: make(map[string]Level, len(policy.Defaults))}, seed: maphash.MakeSeed()}
	t.hseed = maphash.String(t.seed, "consent index")
	seen := map[string]bool{}
	for k, v := range policy.Defaults {
		t.policy.Defaults[k] = v
		seen[k] = true
	}
	for _, c := range categories {
		seen[c] = true
	}
	for c := range seen {
		t.catNames = append(t.catNames, c)
	}
	sort.Strings(t.catNames)
	t.catIdx = make(map[string]int, len(t.catNames))
	for i, c := range t.catNames {
		t.catIdx[c] = i
		t.catDefs = append(t.catDefs, t.policy.DefaultFor(c))
	}
	t.idx.Store(newIndex(minIndexSlots))
	t.arena.Store(&arena{})
	vecs := []*levelVec{nil} // id 0: no record
	t.vecs.Store(&vecs)
	t.pos.Store(new([]int64))
	t.w.vecIDs = map[string]uint32{}
	return t
}

func newIndex(n int) *index {
	slots := make([]atomic.Uint64, n)
	if n >= 1<<19 {
		adviseHuge(unsafe.Pointer(&slots[0]), uintptr(n)*8)
	}
	return &index{slots: slots, mask: uint64(n - 1)}
}

// Policy returns the table's policy configuration.
func (t *Table) Policy() PolicyConfig { return t.policy }

// Ready reports whether the table has caught up with the consent topic's
// end offsets read at start. Once true it stays true.
func (t *Table) Ready() bool { return t.ready.Load() }

// Len returns the number of subjects that currently have a record.
func (t *Table) Len() int { return int(t.live.Load()) }

// Version counts the records applied so far. A reader that sees the same
// Version before and after a series of Decide calls knows no record changed
// in between (the stage re-decides a batch otherwise).
func (t *Table) Version() uint64 { return t.version.Load() }

// Positions returns, per partition, the offset of the next record the table
// will apply (everything below has been applied). The slice is a copy.
func (t *Table) Positions() []int64 {
	p := *t.pos.Load()
	return append([]int64(nil), p...)
}

// TableStats is a snapshot of the table's size.
type TableStats struct {
	Subjects   int // subjects with a record
	Malformed  int // subjects whose current record is malformed (deny)
	Entries    int // subjects ever seen, deleted ones included
	Vectors    int // distinct level vectors
	IndexSlots int
}

// Stats returns the table's size.
func (t *Table) Stats() TableStats {
	return TableStats{
		Subjects:   int(t.live.Load()),
		Malformed:  int(t.malformed.Load()),
		Entries:    int(t.entries.Load()),
		Vectors:    len(*t.vecs.Load()) - 1,
		IndexSlots: len(t.idx.Load().slots),
	}
}

// Decide returns the effective consent level of an event of category with
// the given tenant and user ids (as they appear in events, not encoded), and
// why. An empty tenant is a tenantless product (key "u::<user>", no tenant
// record); an empty user looks up only the tenant record. It returns
// ErrNotReady before the table is ready.
//
// Decide is safe for concurrent use, takes no lock and does not allocate
// (ids that need escaping and whose encodings exceed 192 bytes together cost
// one allocation). The strings are not retained, so they may be zero-copy
// views of event bytes.
func (t *Table) Decide(tenant, user, category string) (Decision, error) {
	if !t.ready.Load() {
		return Decision{}, ErrNotReady
	}
	// compose is called here rather than through decide: each copy of a
	// returned Decision costs a store-forwarding stall (it is assembled
	// from narrow stores and copied with wide loads), about 5 ns.
	var tr, ur found
	ci, def := t.find2(tenant, user, category, &tr, &ur)
	return compose(&tr, &ur, ci, category, def), nil
}

// decide is Decide without the readiness check.
func (t *Table) decide(tenant, user, category string) Decision {
	var tr, ur found
	ci, def := t.find2(tenant, user, category, &tr, &ur)
	return compose(&tr, &ur, ci, category, def)
}

// find2 fills tr and ur with the records of tenant and user and returns the
// category's index and configured default, the arguments of compose. It
// never builds the keys: it hashes and compares them id by id (see hashID),
// on the ids themselves in the common case that they need no escaping.
func (t *Table) find2(tenant, user, category string, tr, ur *found) (catIdx int, def Level) {
	if !plainID(tenant) || !plainID(user) {
		// Declared here so that only this rare path zeroes it.
		var buf [192]byte
		b := appendEscaped(buf[:0], tenant)
		nt := len(b)
		b = appendEscaped(b, user)
		tenant, user = bytesView(b[:nt]), bytesView(b[nt:])
	}
	th := hashID(t.hseed, tenant)
	uh := hashID(th, user)
	// Load both home slots before using either, so that their cache
	// misses overlap.
	ix := t.idx.Load()
	ts := ix.slot(th).Load()
	us := ix.slot(uh).Load()
	// The user first: most events' users have a record, whose cache miss
	// then overlaps the tenant's probe.
	if user != "" {
		if r := t.probe(ix, uh, us, 'u', tenant, user); r != nil {
			t.read(r, ur)
		}
	}
	if tenant != "" {
		if r := t.probe(ix, th, ts, 't', tenant, ""); r != nil {
			t.read(r, tr)
		}
	}
	ci := t.categoryIndex(category)
	if ci >= 0 {
		return ci, t.catDefs[ci]
	}
	if l, ok := t.policy.Defaults[category]; ok {
		return ci, l
	}
	return ci, t.policy.Default
}

func (t *Table) categoryIndex(category string) int {
	if len(t.catNames) <= 8 {
		for i, c := range t.catNames {
			if c == category {
				return i
			}
		}
		return -1
	}
	if i, ok := t.catIdx[category]; ok {
		return i
	}
	return -1
}

// keyHash returns the index hash of a canonical key (see hashID).
func (t *Table) keyHash(key string) uint64 {
	kind, tenant, user, _ := keyIDs(key)
	h := hashID(t.hseed, tenant)
	if kind == 'u' {
		h = hashID(h, user)
	}
	return h
}

// probe returns the record of the key kind:tenant (kind 't') or
// kind:tenant:user (kind 'u') with hash h in ix, or nil. The ids are
// encoded. s is the content of h's home slot, loaded from ix by the caller.
// Safe for concurrent use.
func (t *Table) probe(ix *index, h, s uint64, kind byte, tenant, user string) *record {
	n := 2 + len(tenant)
	if kind == 'u' {
		n += 1 + len(user)
	}
	tag := h >> 32
	var a *arena
	for i := h; ; {
		if s == 0 {
			return nil
		}
		if s>>32 == tag {
			if a == nil {
				// Loaded after the slot: the arena that published this
				// record is at least as new as the slot.
				a = t.arena.Load()
			}
			r := a.record(uint32(s) - 1)
			if r.keyIs(n, kind, tenant, user) {
				return r
			}
		}
		i++
		s = ix.slot(i).Load()
	}
}

// keyIs reports whether r's key is kind:tenant[:user], n bytes long.
func (r *record) keyIs(n int, kind byte, tenant, user string) bool {
	if int(r.part.Load()>>32) != n {
		return false
	}
	k := r.keyData()
	if *(*byte)(k) != kind || !equalAt(unsafe.Add(k, 2), tenant) {
		return false
	}
	return kind == 't' || *(*byte)(unsafe.Add(k, 2+len(tenant))) == ':' && equalAt(unsafe.Add(k, 3+len(tenant)), user)
}

// equalAt reports whether the len(s) bytes at p equal s, comparing short
// strings (most ids) in place.
func equalAt(p unsafe.Pointer, s string) bool {
	q := unsafe.Pointer(unsafe.StringData(s))
	switch n := uintptr(len(s)); {
	case n >= 8 && n <= 16:
		return read8(p, 0) == read8(q, 0) && read8(p, n-8) == read8(q, n-8)
	case n >= 4 && n < 8:
		return read4(p, 0) == read4(q, 0) && read4(p, n-4) == read4(q, n-4)
	}
	return unsafe.String((*byte)(p), len(s)) == s
}

// read fills f with r's current record, if it has one.
func (t *Table) read(r *record, f *found) {
	var s1, part uint64
	for spins := 0; ; spins++ {
		s1 = r.state.Load()
		if s1&1 == 0 {
			f.offset = int64(r.offset.Load())
			part = r.part.Load()
			if r.state.Load() == s1 {
				break
			}
		}
		if spins > 100 {
			runtime.Gosched() // the writer was preempted mid-update
		}
	}
	vec := uint32(s1 >> 32)
	if vec == 0 {
		return
	}
	// Loaded after the state: the vector list that published vec has it.
	f.vec = (*t.vecs.Load())[vec]
	f.partition = int32(uint32(part))
	f.key = unsafe.String((*byte)(r.keyData()), int(part>>32))
	f.ok = true
}

// find returns the record of a canonical key with hash h, or nil.
func (t *Table) find(key string, h uint64) *record {
	kind, tenant, user, ok := keyIDs(key)
	if !ok {
		return nil
	}
	ix := t.idx.Load()
	return t.probe(ix, h, ix.slot(h).Load(), kind, tenant, user)
}

// lookupKey fills f with the current record of a canonical key, if any.
func (t *Table) lookupKey(key string, f *found) {
	if r := t.find(key, t.keyHash(key)); r != nil {
		t.read(r, f)
	}
}

// Change kinds, see Change.
type ChangeKind uint8

const (
	// ChangeSet: the key's record was created or replaced.
	ChangeSet ChangeKind = iota + 1
	// ChangeDelete: a tombstone deleted the key's record.
	ChangeDelete
	// ChangeMalformedValue: the value did not parse or named an unknown
	// level; the key now counts as deny for every category. Err says why.
	ChangeMalformedValue
	// ChangeMalformedKey: the key did not parse; the record was ignored.
	// Err says why.
	ChangeMalformedKey
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeSet:
		return "set"
	case ChangeDelete:
		return "delete"
	case ChangeMalformedValue:
		return "malformed value"
	case ChangeMalformedKey:
		return "malformed key"
	}
	return "ChangeKind(?)"
}

// Levels is a read-only view of a record's levels. The zero value is "no
// record".
type Levels struct{ v *levelVec }

// Valid reports whether the view refers to a record.
func (l Levels) Valid() bool { return l.v != nil }

// Malformed reports whether the record is malformed (deny everywhere).
func (l Levels) Malformed() bool { return l.v != nil && l.v.malformed }

// Default returns the record's default level (deny if malformed or none).
func (l Levels) Default() Level {
	if l.v == nil {
		return LevelDeny
	}
	return l.v.def
}

// For returns the record's level for category.
func (l Levels) For(category string) Level {
	if l.v == nil {
		return LevelDeny
	}
	if lv, ok := l.v.extra[category]; ok {
		return lv
	}
	for _, c := range l.v.cats {
		if c.name == category {
			return c.level
		}
	}
	return l.v.def
}

// Categories returns the record's explicitly listed categories (a new map).
func (l Levels) Categories() map[string]Level {
	if l.v == nil || len(l.v.cats) == 0 {
		return nil
	}
	m := make(map[string]Level, len(l.v.cats))
	for _, c := range l.v.cats {
		m[c.name] = c.level
	}
	return m
}

// apply applies one record, as the single writer. key is canonical; vec is
// the encoded level vector (ignored for tombstones). It returns the interned
// levels (zero for tombstones) and whether the key had a record before.
func (t *Table) apply(key []byte, vec []byte, tombstone bool, partition int32, offset int64) (Levels, bool) {
	defer t.version.Add(1) // after the change is visible to Decide
	h := t.keyHash(bytesView(key))
	r := t.find(bytesView(key), h)
	ok := r != nil
	var prevVec uint32
	if ok {
		prevVec = uint32(r.state.Load() >> 32)
	}
	if tombstone {
		if ok && prevVec != 0 {
			setRecord(r, 0, partition, offset)
			t.live.Add(-1)
			if (*t.vecs.Load())[prevVec].malformed {
				t.malformed.Add(-1)
			}
		}
		return Levels{}, ok && prevVec != 0
	}
	id := t.intern(vec)
	lv := (*t.vecs.Load())[id]
	if !ok {
		r = t.newRecord(key, h)
	}
	setRecord(r, id, partition, offset)
	if prevVec == 0 {
		t.live.Add(1)
	} else if (*t.vecs.Load())[prevVec].malformed {
		t.malformed.Add(-1)
	}
	if lv.malformed {
		t.malformed.Add(1)
	}
	return Levels{lv}, prevVec != 0
}

func setRecord(r *record, vec uint32, partition int32, offset int64) {
	seq := uint32(r.state.Load())
	r.state.Store(r.state.Load() | 1) // odd: update in progress
	r.offset.Store(uint64(offset))
	r.part.Store(r.part.Load()&^(1<<32-1) | uint64(uint32(partition)))
	r.state.Store(uint64(vec)<<32 | uint64(seq+2))
}

// newRecord stores key in a new, empty record and publishes it in the index.
func (t *Table) newRecord(key []byte, h uint64) *record {
	words := recordHeader + (len(key)+7)/8
	a := t.arena.Load()
	last := len(a.chunks) - 1
	if last < 0 || t.w.chunkUsed[last]+words > len(a.chunks[last]) {
		size := chunkWords
		if last < 0 {
			size = firstChunkWords
		}
		c := make([]uint64, size)
		if size >= chunkWords {
			adviseHuge(unsafe.Pointer(&c[0]), uintptr(size)*8)
		}
		a = &arena{chunks: append(a.chunks, c)}
		t.w.chunkUsed = append(t.w.chunkUsed, 0)
		last++
		t.arena.Store(a) // before the slot that makes the record reachable
	}
	w := t.w.chunkUsed[last]
	c := a.chunks[last]
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&c[w+recordHeader])), len(key)), key)
	c[w+2] = uint64(len(key)) << 32
	t.w.chunkUsed[last] += words
	ref := uint32(last)<<20 | uint32(w)
	t.w.n++
	t.entries.Add(1)
	ix := t.idx.Load()
	if uint64(t.w.n)*4 > uint64(len(ix.slots))*3 {
		ix = t.grow(ix, a)
	}
	t.insertSlot(ix, h, ref)
	return a.record(ref)
}

func (t *Table) insertSlot(ix *index, h uint64, ref uint32) {
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		if ix.slots[i].Load() == 0 {
			ix.slots[i].Store(h>>32<<32 | uint64(ref+1))
			return
		}
	}
}

// grow builds a twice as large index of all records but the newest (which
// the caller inserts) and publishes it. Readers keep using the old index
// meanwhile; both reference the same records.
func (t *Table) grow(old *index, a *arena) *index {
	ix := newIndex(len(old.slots) * 2)
	n := 0
	for ci, used := range t.w.chunkUsed {
		for w := 0; w < used && n < t.w.n-1; n++ {
			ref := uint32(ci)<<20 | uint32(w)
			k := a.key(ref)
			t.insertSlot(ix, t.keyHash(bytesView(k)), ref)
			w += recordHeader + (len(k)+7)/8
		}
	}
	t.idx.Store(ix)
	return ix
}

// intern returns the id of the level vector encoded as vec, adding it.
func (t *Table) intern(vec []byte) uint32 {
	if id, ok := t.w.vecIDs[string(vec)]; ok {
		return id
	}
	lv := decodeVec(vec)
	lv.known = make([]Level, len(t.catNames))
	for i, c := range t.catNames {
		lv.known[i] = lv.def
		if lv.malformed {
			continue
		}
		for _, cl := range lv.cats {
			if cl.name == c {
				lv.known[i] = cl.level
			}
		}
	}
	for _, cl := range lv.cats {
		if _, known := t.catIdx[cl.name]; !known {
			if lv.extra == nil {
				lv.extra = map[string]Level{}
			}
			lv.extra[cl.name] = cl.level
		}
	}
	old := *t.vecs.Load()
	vecs := append(old[:len(old):len(old)], lv)
	id := uint32(len(vecs) - 1)
	t.vecs.Store(&vecs)
	t.w.vecIDs[string(vec)] = id
	return id
}

func decodeVec(b []byte) *levelVec {
	lv := &levelVec{malformed: b[0]&1 != 0, def: Level(b[1])}
	b = b[2:]
	for len(b) > 0 {
		n, k := uvarint(b)
		b = b[k:]
		name := strings.Clone(string(b[:n]))
		lv.cats = append(lv.cats, catLevel{name: name, level: Level(b[n])})
		b = b[n+1:]
	}
	return lv
}

func uvarint(b []byte) (int, int) {
	var x uint64
	var s uint
	for i, c := range b {
		if c < 0x80 {
			return int(x | uint64(c)<<s), i + 1
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, len(b)
}

// Apply applies one consent record to the table as the single writer, for
// tools and tests that fill a table without a Loader (which must then not
// exist for this table). key and value are the record's; a nil value is a
// tombstone. The key and value bytes are not retained. It returns the
// change, as a Loader would report it; Change.Applied is left zero.
func (t *Table) Apply(key, value []byte, partition int, offset int64) Change {
	var p valueParser
	u := p.update(key, value, offset, true)
	return t.applyUpdate(&u, int32(partition))
}

// MarkReady marks the table ready, for tools and tests that fill a table
// with Apply. A Loader marks its table ready itself.
func (t *Table) MarkReady() { t.ready.Store(true) }

func (t *Table) setPosition(partition int, next int64) {
	cur := *t.pos.Load()
	p := make([]int64, max(len(cur), partition+1))
	copy(p, cur)
	p[partition] = next
	t.pos.Store(&p)
}

func (t *Table) setPositions(p []int64) {
	c := append([]int64(nil), p...)
	t.pos.Store(&c)
}
