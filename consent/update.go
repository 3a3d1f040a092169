package consent

import (
	"strings"
	"time"
)

// Change is one record applied to the table, reported to the OnChange
// callback (see WithOnChange) so the stage can write audit receipts.
type Change struct {
	// Key is the record's key as written in the topic (not canonicalized).
	Key string
	// Subject is the parsed key; zero for ChangeMalformedKey.
	Subject   Subject
	Partition int
	Offset    int64
	Kind      ChangeKind
	// Levels are the key's new levels: valid for ChangeSet and
	// ChangeMalformedValue (deny everywhere), zero for the other kinds.
	Levels Levels
	// Replaced reports whether the key had a record before this change.
	Replaced bool
	// UpdatedAt and UpdatedBy are the value's metadata, as written.
	UpdatedAt, UpdatedBy string
	// Err says why the key or value is malformed.
	Err error
	// Applied is when the table applied the change.
	Applied time.Time
	// CatchingUp is true for changes applied before the table became ready
	// (the initial load).
	CatchingUp bool
}

// update is one fetched record, parsed by its partition's fetcher so that
// parsing runs in parallel across partitions; the writer only applies it.
type update struct {
	offset      int64
	key         []byte // canonical key
	vec         []byte
	kind        ChangeKind
	subjectKind SubjectKind
	ext         *updateExt // only for malformed records and with meta
}

// updateExt is the rarely needed part of an update, kept out of line so the
// per-record struct stays small during the initial load.
type updateExt struct {
	rawKey               []byte
	err                  error
	updatedAt, updatedBy string
}

// isControlKey reports whether key is a transaction control record's key
// (version int16 0, type int16 0 = abort or 1 = commit). kafka-go delivers
// control records as ordinary messages (kafka-go #1332); no consent key
// starts with a zero byte.
func isControlKey(key []byte) bool {
	return len(key) == 4 && key[0] == 0 && key[1] == 0 && key[2] == 0 && key[3] <= 1
}

// update parses one record. vec aliases p's buffer until the next call.
func (p *valueParser) update(key, value []byte, offset int64, meta bool) update {
	u := update{offset: offset}
	if meta {
		u.ext = &updateExt{rawKey: key}
	}
	ck, kind, err := canonicalKey(key)
	if err != nil {
		u.kind = ChangeMalformedKey
		u.setErr(key, err)
		return u
	}
	u.key, u.subjectKind = ck, kind
	if value == nil {
		// kafka-go returns nil for both a null and an empty value, so an
		// empty value is a tombstone too.
		u.kind = ChangeDelete
		return u
	}
	vec, err := p.parse(value, meta)
	if err != nil {
		u.kind, u.vec = ChangeMalformedValue, malformedVec
		u.setErr(key, err)
		return u
	}
	u.kind, u.vec = ChangeSet, vec
	if meta {
		u.ext.updatedAt, u.ext.updatedBy = strings.Clone(p.updatedAt), strings.Clone(p.updatedBy)
	}
	return u
}

func (u *update) setErr(key []byte, err error) {
	if u.ext == nil {
		u.ext = &updateExt{rawKey: key}
	}
	u.ext.err = err
}

func (u *update) err() error {
	if u.ext == nil {
		return nil
	}
	return u.ext.err
}

// applyUpdate applies u as the single writer and returns its change
// (Applied and CatchingUp are left to the caller).
func (t *Table) applyUpdate(u *update, partition int32) Change {
	c := Change{Partition: int(partition), Offset: u.offset, Kind: u.kind}
	if u.ext != nil {
		c.Key, c.Err, c.UpdatedAt, c.UpdatedBy = string(u.ext.rawKey), u.ext.err, u.ext.updatedAt, u.ext.updatedBy
	}
	if u.kind == ChangeMalformedKey {
		return c
	}
	c.Subject, _ = ParseKey(bytesView(u.key))
	c.Levels, c.Replaced = t.apply(u.key, u.vec, u.kind == ChangeDelete, partition, u.offset)
	return c
}
