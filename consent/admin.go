package consent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
)

// This file is the administrative side of the consent topic, used by the
// "anonproxy consent" commands: validating and encoding records, writing
// them (Admin.Write), reading the topic's current state (Admin.Snapshot),
// the JSON lines exchange format (ParseLine, AppendLine) and explaining a
// decision with the stage's own code path (Loader.RunUntilReady,
// Table.Explain).

// Validate reports why s cannot be written as a consent key: an empty
// tenant id in a tenant record, an empty user id in a user record, or a
// canonical key longer than MaxKeyLen (the table would ignore it).
func (s Subject) Validate() error {
	switch s.Kind {
	case SubjectTenant:
		if s.Tenant == "" {
			return errors.New("consent: empty tenant id")
		}
		if s.User != "" {
			return errors.New("consent: a tenant record has no user id")
		}
	case SubjectUser:
		if s.User == "" {
			return errors.New("consent: empty user id")
		}
	default:
		return fmt.Errorf("consent: unknown subject kind %d", s.Kind)
	}
	if n := len(s.Key()); n > MaxKeyLen {
		return fmt.Errorf("consent: key of %d bytes is longer than %d", n, MaxKeyLen)
	}
	return nil
}

// Validate reports why r cannot be written as a consent value: a level that
// is not deny, anonymized or allow, or an empty category name.
func (r *Record) Validate() error {
	if r.Default > LevelAllow {
		return fmt.Errorf("consent: default: unknown level %d", r.Default)
	}
	names := make([]string, 0, len(r.Categories))
	for c := range r.Categories {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		if c == "" {
			return errors.New("consent: empty category name")
		}
		if l := r.Categories[c]; l > LevelAllow {
			return fmt.Errorf("consent: category %q: unknown level %d", c, l)
		}
	}
	return nil
}

// wireValue is the JSON form of a consent value (CONTRACT §3).
type wireValue struct {
	Default    Level            `json:"default"`
	Categories map[string]Level `json:"categories,omitempty"`
	UpdatedAt  string           `json:"updated_at,omitempty"`
	UpdatedBy  string           `json:"updated_by,omitempty"`
}

// MarshalValue returns the consent value of r: a JSON object with
// "default", "categories" (sorted, omitted when empty), "updated_at" and
// "updated_by" (omitted when empty). It validates r first, and the result
// always parses with ParseValue to an equal record.
func MarshalValue(r Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if !utf8.ValidString(r.UpdatedAt) || !utf8.ValidString(r.UpdatedBy) {
		return nil, errors.New("consent: updated_at and updated_by must be valid UTF-8")
	}
	for c := range r.Categories {
		if !utf8.ValidString(c) {
			return nil, fmt.Errorf("consent: category %q is not valid UTF-8", c)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(wireValue{Default: r.Default, Categories: r.Categories, UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy}); err != nil {
		return nil, fmt.Errorf("consent: encode value: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Mutation is one write to the consent topic: a record for a subject, or,
// with a nil Record, its deletion (a tombstone).
type Mutation struct {
	Subject Subject
	Record  *Record
}

// Stamp fills in the record's UpdatedAt (now, RFC 3339, UTC) and UpdatedBy
// (by) where they are empty. Tombstones carry no metadata.
func (m *Mutation) Stamp(now time.Time, by string) {
	if m.Record == nil {
		return
	}
	if m.Record.UpdatedAt == "" {
		m.Record.UpdatedAt = now.UTC().Format(time.RFC3339)
	}
	if m.Record.UpdatedBy == "" {
		m.Record.UpdatedBy = by
	}
}

// encode validates m and returns its key and value (nil for a tombstone).
func (m *Mutation) encode() (key, value []byte, err error) {
	if err := m.Subject.Validate(); err != nil {
		return nil, nil, err
	}
	if m.Record != nil {
		if value, err = MarshalValue(*m.Record); err != nil {
			return nil, nil, err
		}
	}
	return []byte(m.Subject.Key()), value, nil
}

// Position is where a record is in the consent topic.
type Position struct {
	Partition int
	Offset    int64
}

// Admin reads and writes the consent topic directly, for operators' tools.
// It holds no state and no connections between calls; a zero Admin with
// Brokers and Topic set works. Its methods may be called concurrently.
type Admin struct {
	// Brokers to bootstrap from. Required.
	Brokers []string
	// Dialer reaches partition leaders to read (TLS, SASL, timeouts).
	// Default: kafka.DefaultDialer.
	Dialer *kafka.Dialer
	// Transport carries metadata, offset and produce requests (TLS, SASL).
	// Default: kafka.DefaultTransport.
	Transport kafka.RoundTripper
	// Topic is the compacted consent topic. Required.
	Topic string
	// Timeout bounds each request to a broker. Default: 30s.
	Timeout time.Duration
}

func (a *Admin) client() (*kafka.Client, error) {
	if len(a.Brokers) == 0 {
		return nil, errors.New("consent: no brokers")
	}
	if a.Topic == "" {
		return nil, errors.New("consent: no topic")
	}
	timeout := a.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &kafka.Client{Addr: kafka.TCP(a.Brokers...), Transport: a.Transport, Timeout: timeout}, nil
}

func (a *Admin) dialer() *kafka.Dialer {
	if a.Dialer == nil {
		return kafka.DefaultDialer
	}
	return a.Dialer
}

// partitions returns the number of partitions of the topic.
func (a *Admin) partitions(ctx context.Context, c *kafka.Client) (int, error) {
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{a.Topic}})
	if err != nil {
		return 0, fmt.Errorf("consent: metadata of %s: %w", a.Topic, err)
	}
	if len(md.Topics) != 1 {
		return 0, fmt.Errorf("consent: metadata of %s: topic not found", a.Topic)
	}
	if md.Topics[0].Error != nil {
		return 0, fmt.Errorf("consent: metadata of %s: %w", a.Topic, md.Topics[0].Error)
	}
	n := len(md.Topics[0].Partitions)
	if n == 0 {
		return 0, fmt.Errorf("consent: topic %s has no partitions", a.Topic)
	}
	return n, nil
}

// Set writes the record of s and returns where it was written, once all
// in-sync replicas have acknowledged it.
func (a *Admin) Set(ctx context.Context, s Subject, r Record) (Position, error) {
	pos, err := a.Write(ctx, []Mutation{{Subject: s, Record: &r}})
	if err != nil {
		return Position{Partition: -1, Offset: -1}, err
	}
	return pos[0], nil
}

// Delete writes the tombstone of s and returns where it was written, once
// all in-sync replicas have acknowledged it.
func (a *Admin) Delete(ctx context.Context, s Subject) (Position, error) {
	pos, err := a.Write(ctx, []Mutation{{Subject: s}})
	if err != nil {
		return Position{Partition: -1, Offset: -1}, err
	}
	return pos[0], nil
}

// WriteError is returned by Write when some records could not be written.
// Mutations whose Position has Offset -1 were not written; all others were
// acknowledged. Retrying the whole Write is safe: consent records are
// idempotent.
type WriteError struct {
	Err error
}

func (e *WriteError) Error() string { return e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Write validates every mutation, then writes them all and returns their
// positions in the order given. Nothing is written if any mutation is
// invalid. Each key goes to the partition the Java client's murmur2
// partitioner picks (kafka.Murmur2Balancer), as every producer of the
// consent topic must, so that a key lives in one partition. Records are
// written with acks from all in-sync replicas (kafka.RequireAll), in the
// given order per partition, so the last mutation of a key wins. Write
// returns only when every record is acknowledged, or with a *WriteError
// saying which were not (a partition stops at its first failed request,
// keeping its order).
func (a *Admin) Write(ctx context.Context, ms []Mutation) ([]Position, error) {
	type rec struct {
		idx        int
		key, value []byte
	}
	recs := make([]rec, len(ms))
	for i := range ms {
		k, v, err := ms[i].encode()
		if err != nil {
			return nil, fmt.Errorf("mutation %d (%s): %w", i, ms[i].Subject.Key(), err)
		}
		recs[i] = rec{idx: i, key: k, value: v}
	}
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	var n int
	if err := retryTemporary(ctx, func() (err error) { n, err = a.partitions(ctx, c); return err }); err != nil {
		return nil, err
	}
	ids := make([]int, n)
	for p := range ids {
		ids[p] = p
	}
	byPart := make([][]rec, n)
	var bal kafka.Murmur2Balancer
	for _, r := range recs {
		p := bal.Balance(kafka.Message{Key: r.key}, ids...)
		byPart[p] = append(byPart[p], r)
	}
	pos := make([]Position, len(ms))
	for i := range pos {
		pos[i] = Position{Partition: -1, Offset: -1}
	}
	const maxRecords, maxBytes = 1000, 512 << 10
	errs := make([]error, n)
	var wg sync.WaitGroup
	for p, prs := range byPart {
		if len(prs) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for len(prs) > 0 {
				k, size := 0, 0
				for k < len(prs) && k < maxRecords && (k == 0 || size+len(prs[k].key)+len(prs[k].value) <= maxBytes) {
					size += len(prs[k].key) + len(prs[k].value) + 32
					k++
				}
				chunk := make([]kafka.Message, k)
				for i, r := range prs[:k] {
					chunk[i] = kafka.Message{Key: r.key, Value: r.value}
				}
				base, err := a.produce(ctx, c, p, chunk)
				if err != nil {
					errs[p] = fmt.Errorf("consent: produce to %s/%d: %w", a.Topic, p, err)
					return
				}
				for i, r := range prs[:k] {
					pos[r.idx] = Position{Partition: p, Offset: base + int64(i)}
				}
				prs = prs[k:]
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return pos, &WriteError{Err: err}
	}
	return pos, nil
}

// produce writes one batch to partition p, retrying errors the broker calls
// temporary (leader moved, not enough replicas, a topic just created). Each
// attempt builds its records afresh: kafka.Bytes are readers, consumed by a
// failed attempt.
func (a *Admin) produce(ctx context.Context, c *kafka.Client, p int, msgs []kafka.Message) (int64, error) {
	var base int64
	err := retryTemporary(ctx, func() error {
		now := time.Now()
		recs := make([]kafka.Record, len(msgs))
		for i, m := range msgs {
			recs[i] = kafka.Record{Time: now, Key: kafka.NewBytes(m.Key), Value: kafka.NewBytes(m.Value)}
		}
		res, err := c.Produce(ctx, &kafka.ProduceRequest{
			Topic: a.Topic, Partition: p, RequiredAcks: kafka.RequireAll,
			Records: kafka.NewRecordReader(recs...),
		})
		if err != nil {
			return err
		}
		if res.Error != nil {
			return res.Error
		}
		for i, e := range res.RecordErrors {
			return fmt.Errorf("record %d: %w", i, e)
		}
		base = res.BaseOffset
		return nil
	})
	return base, err
}

// Entry is the latest record of one consent key, as read from the topic.
type Entry struct {
	// Key is the canonical key (see TenantKey, UserKey); RawKey the key as
	// written, which differs only for keys written in a non-canonical
	// encoding.
	Key, RawKey string
	// Subject is the parsed key; zero for a malformed key.
	Subject   Subject
	Partition int
	Offset    int64
	// Time is the record's timestamp.
	Time time.Time
	// Value is the record's value as written; nil for a tombstone (kafka-go
	// reads empty values as nil too, and so does the Loader).
	Value []byte
	// Record is the parsed value; zero for a tombstone or a malformed value.
	Record Record
	// Err says why the key (MalformedKeys) or the value is malformed. A
	// malformed value counts as deny for every category.
	Err error
}

// Deleted reports whether the key's latest record is a tombstone.
func (e *Entry) Deleted() bool { return e.Value == nil }

// Snapshot is the consent topic's state as read by Admin.Snapshot.
type Snapshot struct {
	// Entries holds the latest record of every key, tombstones included,
	// sorted by canonical key.
	Entries []Entry
	// MalformedKeys are records whose key does not parse; the table ignores
	// them. In topic order.
	MalformedKeys []Entry
	// Ends are the end offsets per partition read at start; every record
	// below them was read.
	Ends []int64
}

// Get returns the latest record of s, which may be a tombstone.
func (s *Snapshot) Get(sub Subject) (Entry, bool) {
	key := sub.Key()
	i := sort.Search(len(s.Entries), func(i int) bool { return s.Entries[i].Key >= key })
	if i < len(s.Entries) && s.Entries[i].Key == key {
		return s.Entries[i], true
	}
	return Entry{}, false
}

// Users returns the latest records of every user of tenant (tenant "" for
// the tenantless users), sorted by key, tombstones included.
func (s *Snapshot) Users(tenant string) []Entry {
	prefix := string(appendEscaped([]byte("u:"), tenant)) + ":"
	i := sort.Search(len(s.Entries), func(i int) bool { return s.Entries[i].Key >= prefix })
	j := i
	for j < len(s.Entries) && strings.HasPrefix(s.Entries[j].Key, prefix) {
		j++
	}
	return s.Entries[i:j:j]
}

// Current returns the entries that are not tombstones.
func (s *Snapshot) Current() []Entry {
	out := make([]Entry, 0, len(s.Entries))
	for _, e := range s.Entries {
		if !e.Deleted() {
			out = append(out, e)
		}
	}
	return out
}

// Snapshot reads every partition of the topic from its first offset up to
// the end offset read at start, without a consumer group, and returns the
// latest record of every key. Records written after the start are not
// included. Keys are canonicalized as the table does, so two encodings of
// one id are one key (if they were written to different partitions, the
// higher partition's record wins here; the table applies them in arrival
// order). The whole read is bounded by ctx.
func (a *Admin) Snapshot(ctx context.Context) (*Snapshot, error) {
	c, err := a.client()
	if err != nil {
		return nil, err
	}
	var n int
	var first, ends []int64
	err = retryTemporary(ctx, func() (err error) {
		if n, err = a.partitions(ctx, c); err != nil {
			return err
		}
		if first, err = listOffsets(ctx, c, a.Topic, n, kafka.FirstOffset); err != nil {
			return err
		}
		ends, err = listOffsets(ctx, c, a.Topic, n, kafka.LastOffset)
		return err
	})
	if err != nil {
		return nil, err
	}
	parts := make([][]kafka.Message, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for p := 0; p < n; p++ {
		if first[p] >= ends[p] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			parts[p], errs[p] = a.readPartition(ctx, p, first[p], ends[p])
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	snap := &Snapshot{Ends: ends}
	latest := map[string]int{}
	for _, msgs := range parts {
		for i := range msgs {
			m := &msgs[i]
			e := Entry{RawKey: string(m.Key), Partition: m.Partition, Offset: m.Offset, Time: m.Time}
			ck, _, kerr := canonicalKey(m.Key)
			if kerr != nil {
				e.Err = kerr
				snap.MalformedKeys = append(snap.MalformedKeys, e)
				continue
			}
			e.Key = string(ck)
			e.Subject, _ = ParseKey(e.Key)
			if len(m.Value) > 0 {
				e.Value = m.Value
				e.Record, e.Err = ParseValue(m.Value) // zero (deny) if malformed
			}
			if j, ok := latest[e.Key]; ok {
				snap.Entries[j] = e
				continue
			}
			latest[e.Key] = len(snap.Entries)
			snap.Entries = append(snap.Entries, e)
		}
	}
	sort.Slice(snap.Entries, func(i, j int) bool { return snap.Entries[i].Key < snap.Entries[j].Key })
	return snap, nil
}

// retryTemporary calls fn until it succeeds, fails with an error that is
// neither a temporary Kafka error nor a network error, ctx ends, or about
// 10 s have passed. Retrying a produce whose response was lost writes its
// records twice, which is harmless: consent records are idempotent.
func retryTemporary(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 12; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(time.Duration(min(attempt, 5)) * 200 * time.Millisecond):
			}
		}
		if err = fn(); err == nil {
			return nil
		}
		var ke kafka.Error
		var ne net.Error
		if !(errors.As(err, &ke) && ke.Temporary()) && !errors.As(err, &ne) {
			return err
		}
	}
	return err
}

// readPartition reads partition p from offset from until the read position
// reaches end, driven by the position (compaction leaves offset gaps), as
// the Loader does. A connection that errs or makes no progress is
// re-established from the current position; ctx bounds it all.
func (a *Admin) readPartition(ctx context.Context, p int, from, end int64) ([]kafka.Message, error) {
	const maxWait = 500 * time.Millisecond
	var out []kafka.Message
	pos := from
	var lastErr error
	for attempt := 0; pos < end; attempt++ {
		if attempt > 0 {
			if attempt > 20 {
				return nil, fmt.Errorf("consent: read %s/%d at offset %d (end %d): giving up: %w", a.Topic, p, pos, end, lastErr)
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("consent: read %s/%d at offset %d (end %d): %w (last error: %v)", a.Topic, p, pos, end, ctx.Err(), lastErr)
			case <-time.After(time.Duration(min(attempt, 10)) * 100 * time.Millisecond):
			}
		}
		conn, err := a.dialLeader(ctx, p, attempt)
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return nil, fmt.Errorf("consent: read %s/%d: %w", a.Topic, p, err)
			}
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		stalls := 0
		for pos < end && ctx.Err() == nil && stalls < 5 {
			if _, err = conn.Seek(pos, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
				break
			}
			conn.SetReadDeadline(time.Now().Add(maxWait + 10*time.Second))
			batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: maxWait})
			for {
				m, merr := batch.ReadMessage()
				if merr != nil {
					break
				}
				if m.Offset < pos || m.Offset >= end || isControlKey(m.Key) {
					continue
				}
				out = append(out, m)
			}
			err = batch.Close()
			if next := batch.Offset(); next > pos {
				pos, stalls = next, 0
			} else {
				stalls++ // the kafka-go compacted-topic hang: reconnect after a few
			}
			if err != nil && !errors.Is(err, kafka.RequestTimedOut) {
				break
			}
		}
		stop()
		conn.Close()
		if err != nil {
			lastErr = err
		} else if stalls > 0 {
			lastErr = errors.New("no progress below the end offset")
		}
		if ctx.Err() != nil && pos < end {
			return nil, fmt.Errorf("consent: read %s/%d at offset %d (end %d): %w", a.Topic, p, pos, end, ctx.Err())
		}
	}
	return out, nil
}

func (a *Admin) dialLeader(ctx context.Context, p, attempt int) (*kafka.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var errs []error
	for i := range a.Brokers {
		b := a.Brokers[(attempt+i)%len(a.Brokers)]
		conn, err := a.dialer().DialLeader(dctx, "tcp", b, a.Topic, p)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// The exchange format of "anonproxy consent import" and "export": JSON
// lines, one mutation per line, in one of two forms:
//
//	{"tenant":"T","value":{...}}              tenant record
//	{"tenant":"T","user":"U","value":{...}}   user record ("tenant":"" or no tenant: tenantless)
//	{"key":"u:T:U","value":{...}}             by consent key (percent-encoded)
//
// "value" is a consent value (CONTRACT §3), validated strictly (unknown
// levels are errors), or null to delete the record. It is required. Other
// fields are errors, so a misspelt field never writes a wrong record.
type line struct {
	Key    *string         `json:"key,omitempty"`
	Tenant *string         `json:"tenant,omitempty"`
	User   *string         `json:"user,omitempty"`
	Value  json.RawMessage `json:"value"`
}

// ParseLine parses and validates one line of the exchange format.
func ParseLine(b []byte) (Mutation, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Mutation{}, fmt.Errorf("not a JSON object of the exchange format: %v", err)
	}
	if dec.More() {
		return Mutation{}, errors.New("more than one JSON value on the line")
	}
	var m Mutation
	switch {
	case l.Key != nil && (l.Tenant != nil || l.User != nil):
		return Mutation{}, errors.New(`give either "key" or "tenant"/"user", not both`)
	case l.Key != nil:
		s, err := ParseKey(*l.Key)
		if err != nil {
			return Mutation{}, err
		}
		m.Subject = s
	case l.User != nil:
		m.Subject = Subject{Kind: SubjectUser, User: *l.User}
		if l.Tenant != nil {
			m.Subject.Tenant = *l.Tenant
		}
	case l.Tenant != nil:
		m.Subject = Subject{Kind: SubjectTenant, Tenant: *l.Tenant}
	default:
		return Mutation{}, errors.New(`no subject: want "tenant", "tenant" and "user", or "key"`)
	}
	if err := m.Subject.Validate(); err != nil {
		return Mutation{}, err
	}
	v := bytes.TrimSpace(l.Value)
	switch {
	case len(v) == 0:
		return Mutation{}, errors.New(`no "value" (write "value":null to delete the record)`)
	case string(v) == "null":
	default:
		r, err := ParseValue(v)
		if err != nil {
			return Mutation{}, err
		}
		if err := r.Validate(); err != nil {
			return Mutation{}, err
		}
		m.Record = &r
	}
	return m, nil
}

// AppendLine appends m in the exchange format, with a trailing newline.
// Subjects whose ids are valid UTF-8 are written as "tenant"/"user", others
// as "key" (JSON strings cannot carry arbitrary bytes).
func AppendLine(dst []byte, m Mutation) ([]byte, error) {
	if err := m.Subject.Validate(); err != nil {
		return dst, err
	}
	var l struct {
		Key    *string         `json:"key,omitempty"`
		Tenant *string         `json:"tenant,omitempty"`
		User   *string         `json:"user,omitempty"`
		Value  json.RawMessage `json:"value"`
	}
	s := m.Subject
	if utf8.ValidString(s.Tenant) && utf8.ValidString(s.User) {
		l.Tenant = &s.Tenant
		if s.Kind == SubjectUser {
			l.User = &s.User
		}
	} else {
		k := s.Key()
		l.Key = &k
	}
	l.Value = json.RawMessage("null")
	if m.Record != nil {
		v, err := MarshalValue(*m.Record)
		if err != nil {
			return dst, err
		}
		l.Value = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&l); err != nil {
		return dst, err
	}
	return append(dst, buf.Bytes()...), nil
}

// RunUntilReady runs the loader until its table has caught up with the
// consent topic's end offsets read at start, then stops it and waits for Run
// to return. The table stays ready and no longer changes, so a tool can ask
// it what the stage would decide. It returns ctx's error if ctx ends first.
// Like Run, it may be called once.
func (l *Loader) RunUntilReady(ctx context.Context) error {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); l.Run(rctx) }()
	err := l.WaitReady(ctx)
	cancel()
	<-done
	return err
}

// Current is a subject's current record in a table: zero (Levels.Valid()
// false) when it has none.
type Current struct {
	Key       string
	Partition int32
	Offset    int64
	Levels    Levels
}

// Explanation is a decision and what it was made from.
type Explanation struct {
	Tenant, User, Category string
	// Decision is Table.Decide's answer: the stage's decision.
	Decision Decision
	// Default is the configured default of Category (policy), which applies
	// when neither record exists.
	Default Level
	// TenantRecord and UserRecord are the two records Decide consulted.
	TenantRecord, UserRecord Current
}

// Explain returns what the stage would decide for an event of category with
// the given tenant and user ids (as in events, not encoded) — Decide's own
// answer — together with the records it consulted. It returns ErrNotReady
// before the table is ready. The records are read after the decision, so
// they match it only while the table is not being written (as after
// Loader.RunUntilReady).
func (t *Table) Explain(tenant, user, category string) (Explanation, error) {
	d, err := t.Decide(tenant, user, category)
	if err != nil {
		return Explanation{}, err
	}
	x := Explanation{Tenant: tenant, User: user, Category: category, Decision: d, Default: t.policy.DefaultFor(category)}
	if tenant != "" {
		x.TenantRecord = t.current([]byte(TenantKey(tenant)))
	}
	if user != "" {
		x.UserRecord = t.current([]byte(UserKey(tenant, user)))
	}
	return x, nil
}

func (t *Table) current(key []byte) Current {
	var f found
	t.lookupKey(bytesView(key), &f)
	if !f.ok {
		return Current{}
	}
	return Current{Key: f.key, Partition: f.partition, Offset: f.offset, Levels: Levels{f.vec}}
}
