package loadtest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Malformed says how an event is broken, if it is.
type Malformed uint8

// The malformed kinds the generator produces; each must be quarantined.
const (
	WellFormed    Malformed = iota
	InvalidJSON             // truncated JSON
	MissingUserID           // valid JSON without user_id
	NotAnObject             // a JSON array: no ids resolvable
)

func (m Malformed) String() string {
	return [...]string{"well_formed", "invalid_json", "missing_user_id", "not_an_object"}[m]
}

// EventInfo is what the generator knows about one event it produced: the
// truth the oracle checks the stage's outcome against.
type EventInfo struct {
	Stream    uint8 // index into Categories / Topics.Inputs
	Malformed Malformed
	Subject   int32  // index into Generator.Subjects
	Canaries  uint64 // bit i: Canaries[i] is somewhere in the event
}

// Subject is one (tenant, user) pair of the run's population.
type Subject struct {
	Tenant, User string
}

// Ledger holds the EventInfo of every generated event by sequence number.
// Generation appends, the oracle reads; it is safe for concurrent use.
type Ledger struct {
	mu     sync.RWMutex
	chunks [][]EventInfo
	n      int
}

const ledgerChunk = 1 << 16

func (l *Ledger) add(e EventInfo) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n%ledgerChunk == 0 {
		l.chunks = append(l.chunks, make([]EventInfo, 0, ledgerChunk))
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, e)
	l.n++
	return uint64(l.n - 1)
}

// Get returns the event with sequence number seq.
func (l *Ledger) Get(seq uint64) (EventInfo, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if seq >= uint64(l.n) {
		return EventInfo{}, false
	}
	return l.chunks[seq/ledgerChunk][seq%ledgerChunk], true
}

// Len returns the number of events generated so far.
func (l *Ledger) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.n
}

// Generator produces realistic, reproducible events for the three reference
// streams (CONTRACT §4) with canaries in every free-text place the stage
// must scan. It is not safe for concurrent use.
type Generator struct {
	RunID    string
	Subjects []Subject
	Canaries Canaries
	Ledger   *Ledger

	usersPerTenant int
	malformed      float64
	rng            *rand.Rand
	buf            bytes.Buffer
	enc            *json.Encoder
	gz             *gzip.Writer
	gzbuf          bytes.Buffer
	text           strings.Builder
	mask           uint64
}

// Event is one generated input record.
type Event struct {
	Seq    uint64
	ID     string
	Stream uint8
	Key    []byte
	Value  []byte // owned by the caller after Next returns
	Info   EventInfo
}

// HeaderRun and HeaderSeq are set on every input record the load test
// writes, so that the oracle can recognise its records even when they are
// not valid JSON. The stage must not copy them (input headers are not copied
// unless allow-listed), which the oracle does not rely on.
const (
	HeaderRun = "loadtest-run"
	HeaderSeq = "loadtest-seq"
)

// NewGenerator returns a generator for a run. Subject ids carry the run id,
// so runs sharing a cluster never share consent keys; every 16th user id
// needs percent-encoding in consent keys (CONTRACT §3).
func NewGenerator(runID string, seed uint64, tenants, usersPerTenant int, malformed float64, canaries Canaries) *Generator {
	g := &Generator{
		RunID: runID, Canaries: canaries, Ledger: &Ledger{},
		usersPerTenant: usersPerTenant, malformed: malformed,
		rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
	}
	for t := range tenants {
		tenant := fmt.Sprintf("lt-%s-T%03d", runID, t)
		for u := range usersPerTenant {
			user := fmt.Sprintf("U%05d", t*usersPerTenant+u)
			if u%16 == 15 {
				user = fmt.Sprintf("ext:%s/ü %d", user, u) // needs escaping in keys
			}
			g.Subjects = append(g.Subjects, Subject{Tenant: tenant, User: user})
		}
	}
	g.enc = json.NewEncoder(&g.buf)
	g.enc.SetEscapeHTML(false)
	g.gz, _ = gzip.NewWriterLevel(&g.gzbuf, gzip.BestSpeed)
	return g
}

// EventID returns the event_id of sequence number seq in this run.
func (g *Generator) EventID(seq uint64) string { return EventID(g.RunID, seq) }

// EventID returns the event_id the generator gives sequence number seq of run.
func EventID(runID string, seq uint64) string {
	return "evt-" + runID + "-" + strconv.FormatUint(seq, 10)
}

// streamWeights: chat is the bulk of the traffic.
var streamWeights = [numStreams]int{60, 15, 25}

type attachment struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Mimetype string `json:"mimetype"`
	Content  string `json:"content_b64,omitempty"`
}

type chatEvent struct {
	EventID     string       `json:"event_id"`
	Type        string       `json:"type"`
	TenantID    string       `json:"tenant_id"`
	UserID      *string      `json:"user_id,omitempty"`
	ChannelID   string       `json:"channel_id"`
	TS          string       `json:"ts"`
	Text        string       `json:"text"`
	Attachments []attachment `json:"attachments,omitempty"`
}

type fileBody struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Mimetype string `json:"mimetype"`
	Size     int    `json:"size"`
	Encoding string `json:"content_encoding,omitempty"`
	Content  string `json:"content_b64"`
}

type fileEvent struct {
	EventID  string   `json:"event_id"`
	Type     string   `json:"type"`
	TenantID string   `json:"tenant_id"`
	UserID   *string  `json:"user_id,omitempty"`
	TS       string   `json:"ts"`
	File     fileBody `json:"file"`
}

type messageEvent struct {
	EventID  string   `json:"event_id"`
	Type     string   `json:"type"`
	TenantID string   `json:"tenant_id"`
	UserID   *string  `json:"user_id,omitempty"`
	TS       string   `json:"ts"`
	From     string   `json:"from"`
	To       []string `json:"to"`
	Subject  string   `json:"subject"`
	Body     string   `json:"body"`
}

// Next generates the next event.
func (g *Generator) Next(now time.Time) Event {
	r := g.rng
	stream := uint8(0)
	for w := r.IntN(100); w >= streamWeights[stream]; stream++ {
		w -= streamWeights[stream]
	}
	subj := int32(r.IntN(len(g.Subjects)))
	s := g.Subjects[subj]
	g.mask = 0
	seq := uint64(g.Ledger.Len())
	id := g.EventID(seq)
	user := &s.User
	mal := WellFormed
	if g.malformed > 0 && r.Float64() < g.malformed {
		mal = Malformed(1 + r.IntN(3))
	}
	if mal == MissingUserID {
		user = nil
	}
	ts := now.UTC().Format(time.RFC3339Nano)
	g.buf.Reset()
	switch stream {
	case 0:
		ev := chatEvent{EventID: id, Type: "chat.message", TenantID: s.Tenant, UserID: user,
			ChannelID: fmt.Sprintf("C%04d", r.IntN(500)), TS: ts, Text: g.freeText(5+r.IntN(120), true, int(subj))}
		for range g.attachments() {
			ev.Attachments = append(ev.Attachments, attachment{
				ID: fmt.Sprintf("F%07d", r.IntN(1e7)), Name: g.fileName(), Mimetype: "text/plain",
				Content: base64.StdEncoding.EncodeToString([]byte(g.freeText(20+r.IntN(300), false, -1))),
			})
		}
		_ = g.enc.Encode(ev)
	case 1:
		f := fileBody{ID: fmt.Sprintf("F%07d", r.IntN(1e7)), Name: g.fileName()}
		switch r.IntN(4) {
		case 0, 1: // plain text
			content := []byte(g.freeText(30+r.IntN(600), false, -1))
			f.Mimetype, f.Size, f.Content = "text/plain", len(content), base64.StdEncoding.EncodeToString(content)
		case 2: // gzip text
			content := []byte(g.freeText(30+r.IntN(1200), false, -1))
			g.gzbuf.Reset()
			g.gz.Reset(&g.gzbuf)
			_, _ = g.gz.Write(content)
			_ = g.gz.Close()
			f.Mimetype, f.Size, f.Encoding = "text/plain", len(content), "gzip"
			f.Content = base64.StdEncoding.EncodeToString(g.gzbuf.Bytes())
		default: // binary
			content := make([]byte, 256+r.IntN(8<<10))
			for i := range content {
				content[i] = byte(r.Uint32())
			}
			f.Name = strings.TrimSuffix(f.Name, ".txt") + ".pdf"
			f.Mimetype, f.Size = "application/pdf", len(content)
			f.Content = base64.StdEncoding.EncodeToString(content)
		}
		_ = g.enc.Encode(fileEvent{EventID: id, Type: "file.shared", TenantID: s.Tenant, UserID: user, TS: ts, File: f})
	default:
		m := messageEvent{EventID: id, Type: "message", TenantID: s.Tenant, UserID: user, TS: ts,
			From: g.address(), Subject: g.freeText(3+r.IntN(8), false, -1), Body: g.freeText(20+r.IntN(400), false, -1)}
		for range 1 + r.IntN(3) {
			m.To = append(m.To, g.address())
		}
		_ = g.enc.Encode(m)
	}
	value := bytes.TrimRight(g.buf.Bytes(), "\n")
	switch mal {
	case InvalidJSON:
		value = value[:len(value)/2]
	case NotAnObject:
		value = append(append([]byte("["), value...), ']')
	}
	info := EventInfo{Stream: stream, Malformed: mal, Subject: subj, Canaries: g.mask}
	if g.Ledger.add(info) != seq {
		panic("loadtest: generator used concurrently")
	}
	return Event{Seq: seq, ID: id, Stream: stream, Key: []byte(s.Tenant + "/" + s.User),
		Value: append([]byte(nil), value...), Info: info}
}

func (g *Generator) attachments() int {
	if g.rng.IntN(10) < 7 {
		return 0
	}
	return 1 + g.rng.IntN(2)
}

// pick returns a random canary's text and records it in the event's mask.
func (g *Generator) pick() string {
	i := g.rng.IntN(len(g.Canaries))
	g.mask |= 1 << i
	return g.Canaries[i].Text
}

func (g *Generator) pickKind(k CanaryKind) string {
	for range 64 {
		i := g.rng.IntN(len(g.Canaries))
		if g.Canaries[i].Kind == k {
			g.mask |= 1 << i
			return g.Canaries[i].Text
		}
	}
	return "nobody@example.invalid"
}

func (g *Generator) address() string {
	if g.rng.IntN(3) == 0 {
		return g.pickKind(KindEmail)
	}
	return fmt.Sprintf("%s.%d@corp.example", words[g.rng.IntN(len(words))], g.rng.IntN(1000))
}

func (g *Generator) fileName() string {
	if g.rng.IntN(8) == 0 {
		return "minutes for " + g.pickKind(KindEmail) + ".txt"
	}
	return fmt.Sprintf("%s %s %d.txt", words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))], g.rng.IntN(100))
}

var words = strings.Fields(`the a of to and in we should quarterly report meeting
deploy rollback customer invoice please review attached draft budget roadmap
incident latency dashboard model training data pipeline consent privacy
thanks tomorrow today friday monday schedule call sync notes action items
owner blocked merged release candidate staging production config secret
ticket support refund order shipping address account password login reset`)

var piiLead = []string{"contact me at", "my number is", "card", "iban:", "ssn", "from host",
	"key", "token", "see", "creds:", "reach", "fwd to"}

// freeText returns n words of text with a PII density drawn per call: most
// texts are clean or sparse, some dense. Mentions reference users of the
// same tenant when subj ≥ 0.
func (g *Generator) freeText(n int, mentions bool, subj int) string {
	r := g.rng
	density := 0.0
	switch d := r.IntN(10); {
	case d < 4:
	case d < 8:
		density = 0.02
	default:
		density = 0.12
	}
	b := &g.text
	b.Reset()
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch x := r.Float64(); {
		case x < density:
			b.WriteString(piiLead[r.IntN(len(piiLead))])
			b.WriteByte(' ')
			b.WriteString(g.pick())
		case mentions && subj >= 0 && x < density+0.03:
			t := subj / g.usersPerTenant * g.usersPerTenant
			fmt.Fprintf(b, "<@%s>", g.Subjects[t+r.IntN(g.usersPerTenant)].User)
		default:
			b.WriteString(words[r.IntN(len(words))])
		}
		if r.IntN(12) == 0 {
			b.WriteString(".\n")
		}
	}
	return b.String()
}
