package loadtest

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anonproxy/anonproxy/consent"
)

// Categories of the three reference streams (CONTRACT §4), in stream order.
var Categories = [numStreams]string{"chat", "files", "messages"}

const numStreams = 3

// escapeID percent-encodes an id as CONTRACT §3 requires (RFC 3986: all but
// the unreserved characters ALPHA / DIGIT / "-" / "." / "_" / "~", upper-case
// hex), so ':' never appears inside an id.
func escapeID(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// TenantKey returns the consent key of a tenant record: t:<tenant>.
func TenantKey(tenant string) string { return "t:" + escapeID(tenant) }

// UserKey returns the consent key of a user record: u:<tenant>:<user>.
func UserKey(tenant, user string) string { return "u:" + escapeID(tenant) + ":" + escapeID(user) }

// recordState is one consent key's value as the stage must interpret it.
type recordState struct {
	present bool // false: no record or a tombstone
	levels  [numStreams]consent.Level
}

// parseConsentValue interprets a consent value the way CONTRACT §3 says the
// stage must: nil is a tombstone; invalid JSON or an unknown level is deny
// for every category (fail closed).
func parseConsentValue(v []byte) (st recordState, malformed bool) {
	if v == nil {
		return recordState{}, false
	}
	st.present = true
	var rec struct {
		Default    *string           `json:"default"`
		Categories map[string]string `json:"categories"`
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return st, true // zero levels: deny
	}
	def := consent.LevelDeny
	if rec.Default != nil {
		l, err := consent.ParseLevel(*rec.Default)
		if err != nil {
			return st, true
		}
		def = l
	}
	for _, s := range rec.Categories {
		if _, err := consent.ParseLevel(s); err != nil {
			return st, true // an unknown level anywhere: deny for the key
		}
	}
	for i, c := range Categories {
		st.levels[i] = def
		if s, ok := rec.Categories[c]; ok {
			st.levels[i], _ = consent.ParseLevel(s)
		}
	}
	return st, false
}

// A ConsentWrite is one record the load test wrote to the consent topic,
// with the times around its acknowledgement by all in-sync replicas.
type ConsentWrite struct {
	Key       string
	Value     []byte // nil: tombstone
	Malformed bool
	Sent      time.Time // just before the produce request
	Acked     time.Time // when WriteMessages returned without error
	// Uncertain writes failed on the client side but may have reached the
	// broker; their Acked is neverAcked, so they count as possibly applied
	// from Sent on and are left out of propagation figures.
	Uncertain bool
	seed      bool // written before the stage started
	state     recordState
}

// ConsentLog is the history of the consent records of one run, per key in
// write order. It is safe for concurrent use: the churn writer appends while
// the oracle reads.
type ConsentLog struct {
	mu       sync.RWMutex
	byKey    map[string][]*ConsentWrite
	all      []*ConsentWrite
	defaults [numStreams]consent.Level
}

// neverAcked is the Acked time of an uncertain write.
var neverAcked = time.Unix(1<<40, 0)

// NewConsentLog returns an empty log; defaults are the stage's configured
// levels for subjects with neither a tenant nor a user record.
func NewConsentLog(defaults [numStreams]consent.Level) *ConsentLog {
	return &ConsentLog{byKey: map[string][]*ConsentWrite{}, defaults: defaults}
}

// Add records an acknowledged write. Writes to one key must be added in the
// order they were produced (one writer per key, synchronous acks).
func (l *ConsentLog) Add(w ConsentWrite) {
	w.state, w.Malformed = parseConsentValue(w.Value)
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &w
	l.byKey[w.Key] = append(l.byKey[w.Key], p)
	l.all = append(l.all, p)
}

// Writes returns a snapshot of every write in ack order.
func (l *ConsentLog) Writes() []*ConsentWrite {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := append([]*ConsentWrite(nil), l.all...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Acked.Before(out[j].Acked) })
	return out
}

// candidates returns the states of key that the stage may legitimately have
// used at time t: the latest record acknowledged at or before t-bound (the
// stage must have applied it), and every later record already sent by t
// (the stage may have applied it early). Absent is a state too.
func (l *ConsentLog) candidates(key string, t time.Time, bound time.Duration, dst []recordState) []recordState {
	ws := l.byKey[key]
	cut := t.Add(-bound)
	base := recordState{}
	i := 0
	for ; i < len(ws) && !ws[i].Acked.After(cut); i++ {
		base = ws[i].state
	}
	dst = append(dst, base)
	for ; i < len(ws) && !ws[i].Sent.After(t); i++ {
		dst = append(dst, ws[i].state)
	}
	return dst
}

func (l *ConsentLog) effective(t, u recordState, cat int) consent.Level {
	switch {
	case t.present && u.present:
		return consent.Min(t.levels[cat], u.levels[cat])
	case t.present:
		return t.levels[cat]
	case u.present:
		return u.levels[cat]
	}
	return l.defaults[cat]
}

// Bounds returns the most and the least permissive effective level that a
// correct stage may have applied to an event of (tenant, user, category)
// forwarded at time t, given the staleness bound.
func (l *ConsentLog) Bounds(tenant, user string, cat int, t time.Time, bound time.Duration) (most, least consent.Level) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var tb, ub [8]recordState
	ts := l.candidates(TenantKey(tenant), t, bound, tb[:0])
	us := l.candidates(UserKey(tenant, user), t, bound, ub[:0])
	most, least = consent.LevelDeny, consent.LevelAllow
	for _, a := range ts {
		for _, b := range us {
			e := l.effective(a, b, cat)
			most = max(most, e)
			least = min(least, e)
		}
	}
	return most, least
}

// stateAt returns the effective level of (tenant, user, cat) with exactly
// the writes acknowledged at or before t applied.
func (l *ConsentLog) stateAt(tenant, user string, cat int, t time.Time) consent.Level {
	at := func(key string) recordState {
		var st recordState
		for _, w := range l.byKey[key] {
			if w.Acked.After(t) {
				break
			}
			st = w.state
		}
		return st
	}
	return l.effective(at(TenantKey(tenant)), at(UserKey(tenant, user)), cat)
}

// nextChange returns when the first write after t on the tenant's or the
// user's key was sent (the stage may apply a record as soon as it is sent,
// before the load test sees the acknowledgement), or the zero time.
func (l *ConsentLog) nextChange(tenant, user string, t time.Time) time.Time {
	var next time.Time
	for _, k := range [2]string{TenantKey(tenant), UserKey(tenant, user)} {
		for _, w := range l.byKey[k] {
			if w.Acked.After(t) {
				if next.IsZero() || w.Sent.Before(next) {
					next = w.Sent
				}
				break
			}
		}
	}
	return next
}
