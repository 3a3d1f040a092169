package redact

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/redact/internal/corpus"
	"github.com/tidwall/gjson"
)

// benchEvents loads (or, with -update, generates) testdata/bench/NAME.jsonl.
func benchEvents(tb testing.TB, name string) [][]byte {
	path := "testdata/bench/" + name + ".jsonl"
	if *update {
		writeBenchCorpus(tb)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var evs [][]byte
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		evs = append(evs, l)
	}
	return evs
}

func writeBenchCorpus(tb testing.TB) {
	docs := corpus.Generate(7, 2000)
	r := rand.New(rand.NewPCG(1, 2))
	prose := []string{
		"Thanks for the quick turnaround on this, really appreciated.",
		"I pushed the fix to the staging branch, can someone review before lunch?",
		"The dashboard numbers look off for last week, probably the timezone change again.",
		"Let's sync tomorrow morning and go through the open items on the board.",
		"Customer says the export works now but the CSV headers are in the wrong order.",
		"Reminder: the planning meeting moved to Thursday, same room as usual.",
		"Nice work everyone, the release went out without incidents tonight.",
		"Can you double-check the invoice template before we send it out?",
	}
	// Realistic text: mostly prose, with one labeled PII document per ~600 bytes.
	text := func(min int) string {
		var b strings.Builder
		for b.Len() < min {
			if b.Len() > 0 {
				b.WriteString(" ")
			}
			if b.Len()%600 < 120 {
				b.WriteString(docs[r.IntN(len(docs))].Text)
			} else {
				b.WriteString(prose[r.IntN(len(prose))])
			}
		}
		return b.String()
	}
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return string(b)
	}
	var chat, files, msgs strings.Builder
	for i := range 200 {
		// ~1 KB chat events
		fmt.Fprintf(&chat, `{"event_id":"ev-%06d","type":"chat.message","tenant_id":"T%d","user_id":"U%05d","channel_id":"C%04d","ts":"2026-11-22T10:%02d:%02dZ","text":%s,"attachments":[{"id":"F%d","name":%s,"mimetype":"image/png","content_b64":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"}],"client":{"app":"desktop","version":"4.36.140","os":"macOS 15.1"},"thread_ts":"1732269600.000100","reactions":[{"name":"thumbsup","count":2}]}`+"\n",
			i, i%7, i%1000, i%50, i%60, i%60, enc(text(640)), i, enc("meeting notes "+fmt.Sprint(i)+".png"))
		// ~8 KB text files, alternating plain and gzip
		content := text(8192)
		if i%2 == 0 {
			fmt.Fprintf(&files, `{"event_id":"f-%06d","type":"file.shared","tenant_id":"T1","user_id":"U%05d","ts":"2026-11-22T10:00:00Z","file":{"id":"F%d","name":"notes-%d.txt","mimetype":"text/plain","size":%d,"content_b64":"%s"}}`+"\n",
				i, i, i, i, len(content), base64.StdEncoding.EncodeToString([]byte(content)))
		} else {
			fmt.Fprintf(&files, `{"event_id":"f-%06d","type":"file.shared","tenant_id":"T1","user_id":"U%05d","ts":"2026-11-22T10:00:00Z","file":{"id":"F%d","name":"notes-%d.txt","mimetype":"text/plain","size":%d,"content_encoding":"gzip","content_b64":"%s"}}`+"\n",
				i, i, i, i, len(content), gz(content))
		}
		fmt.Fprintf(&msgs, `{"event_id":"m-%06d","type":"message","tenant_id":"T1","user_id":"U%05d","ts":"2026-11-22T10:00:00Z","from":"user%d@example.com","to":["a%d@example.org","b%d@example.net"],"subject":%s,"body":%s}`+"\n",
			i, i, i, i, i, enc(text(40)), enc(text(1500)))
	}
	for name, s := range map[string]string{"chat": chat.String(), "files": files.String(), "messages": msgs.String()} {
		if err := os.WriteFile("testdata/bench/"+name+".jsonl", []byte(s), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

func totalBytes(evs [][]byte) int64 {
	n := 0
	for _, e := range evs {
		n += len(e)
	}
	return int64(n / len(evs))
}

func benchRedact(b *testing.B, stream string, lv Level) {
	_, engines := loadExample(b)
	e := engines[stream]
	evs := benchEvents(b, stream)
	b.SetBytes(totalBytes(evs))
	b.ReportAllocs()
	var st Stats
	dst := make([]byte, 0, 64<<10)
	// warm the pool and the phone verdict cache
	for _, ev := range evs {
		if _, err := e.AppendRedacted(dst[:0], ev, lv, &st); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		dst, err = e.AppendRedacted(dst[:0], evs[i%len(evs)], lv, &st)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedact(b *testing.B) {
	for _, stream := range []string{"chat", "files", "messages"} {
		for _, lv := range []Level{LevelAnonymized, LevelAllow} {
			b.Run(stream+"/"+lv.String(), func(b *testing.B) { benchRedact(b, stream, lv) })
		}
	}
}

// BenchmarkBaselineGjsonValid is the validation floor: every event is
// validated once by AppendRedacted.
func BenchmarkBaselineGjsonValid(b *testing.B) {
	for _, stream := range []string{"chat", "files", "messages"} {
		b.Run(stream, func(b *testing.B) {
			evs := benchEvents(b, stream)
			b.SetBytes(totalBytes(evs))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if !gjson.ValidBytes(evs[i%len(evs)]) {
					b.Fatal("invalid")
				}
			}
		})
	}
}

// BenchmarkBaselineEncodingJSON is the naive approach: unmarshal into a
// map, redact the chat fields as the anonymized rules do (pseudonymize
// user_id and channel_id, scan text and attachment names, remove binary
// attachment content), marshal.
func BenchmarkBaselineEncodingJSON(b *testing.B) {
	_, engines := loadExample(b)
	e := engines["chat"]
	evs := benchEvents(b, "chat")
	b.SetBytes(totalBytes(evs))
	b.ReportAllocs()
	w := e.pool.Get()
	defer e.pool.Put(w)
	for i := 0; i < b.N; i++ {
		naiveRedact(b, w, evs[i%len(evs)])
	}
}

// naiveRedact is the encoding/json baseline for one chat event. It calls
// the engine's scanner, so it gets faster with it.
func naiveRedact(b *testing.B, w *work, ev []byte) {
	var m map[string]any
	if err := json.Unmarshal(ev, &m); err != nil {
		b.Fatal(err)
	}
	if id, ok := m["user_id"].(string); ok {
		m["user_id"] = string(appendPseudonym(nil, w.hm, w.sum, "k1", []byte(id)))
	}
	if id, ok := m["channel_id"].(string); ok {
		m["channel_id"] = string(appendPseudonym(nil, w.hm, w.sum, "k1", []byte(id)))
	}
	scan := func(t string) string {
		w.sc.ms, w.sc.mask = w.sc.ms[:0], maskAll
		w.sc.scan([]byte(t))
		return string(w.appendReplaced(nil, []byte(t), w.sc.ms, false, nil))
	}
	if t, ok := m["text"].(string); ok {
		m["text"] = scan(t)
	}
	// The file rule on attachments.#: the name scanned, binary content
	// removed (the corpus's attachments are images).
	if atts, ok := m["attachments"].([]any); ok {
		for _, a := range atts {
			if f, ok := a.(map[string]any); ok {
				if n, ok := f["name"].(string); ok {
					f["name"] = scan(n)
				}
				if mt, _ := f["mimetype"].(string); !strings.HasPrefix(mt, "text/") {
					f["content_b64"] = nil
				}
			}
		}
	}
	if _, err := json.Marshal(m); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkChatRatio measures the two ratios for chat events so
// that load on the machine hits all sides alike: each iteration runs
// gjson.ValidBytes, AppendRedacted at each level and the encoding/json
// baseline over the whole chat corpus, one after the other, and the
// ratios are of the summed times. redact-vs-gjson is the engine's
// throughput over gjson's (target ≥ 0.40 at anonymized); json-vs-redact is
// how many times faster than the encoding/json baseline it is (target ≥ 8).
//
// Each side goes over the corpus twice and only the second pass is timed,
// so that each is measured warm, as its own b.N benchmark measures it.
// Timing the first pass would charge a side for the caches and branch
// history the side before it (and the collection that ends the baseline)
// took over, which costs the engine, with its detectors, tables and
// pseudonym cache, far more than gjson's one small loop: the cold-pass
// ratio (reported as anonymized-cold-redact-vs-gjson) is about 10 % lower.
func BenchmarkChatRatio(b *testing.B) {
	_, engines := loadExample(b)
	e := engines["chat"]
	evs := benchEvents(b, "chat")
	w := e.pool.Get()
	defer e.pool.Put(w)
	var st Stats
	dst := make([]byte, 0, 64<<10)
	var tg, tj, tgCold, taCold time.Duration
	tr := map[Level]time.Duration{}
	// pass times a pass of f over the corpus that follows an untimed one,
	// whose time it adds to *cold if cold is not nil.
	pass := func(cold *time.Duration, f func(ev []byte)) time.Duration {
		run := func() time.Duration {
			t0 := time.Now()
			for _, ev := range evs {
				f(ev)
			}
			return time.Since(t0)
		}
		if d := run(); cold != nil {
			*cold += d
		}
		return run()
	}
	for b.Loop() {
		tg += pass(&tgCold, func(ev []byte) {
			if !gjson.ValidBytes(ev) {
				b.Fatal("invalid")
			}
		})
		for _, lv := range []Level{LevelAllow, LevelAnonymized} {
			cold := (*time.Duration)(nil)
			if lv == LevelAnonymized {
				cold = &taCold
			}
			tr[lv] += pass(cold, func(ev []byte) {
				var err error
				if dst, err = e.AppendRedacted(dst[:0], ev, lv, &st); err != nil {
					b.Fatal(err)
				}
			})
		}
		tj += pass(nil, func(ev []byte) { naiveRedact(b, w, ev) })
		// Finish the collection the baseline's garbage started, so that
		// its marking (write barriers, assists) does not slow the next
		// round's zero-allocation phases.
		runtime.GC()
	}
	n := float64(b.N * len(evs))
	b.ReportMetric(float64(tg.Nanoseconds())/n, "gjson-ns/event")
	b.ReportMetric(float64(tj.Nanoseconds())/n, "json-ns/event")
	for _, lv := range []Level{LevelAnonymized, LevelAllow} {
		b.ReportMetric(float64(tr[lv].Nanoseconds())/n, lv.String()+"-ns/event")
		b.ReportMetric(tg.Seconds()/tr[lv].Seconds(), lv.String()+"-redact-vs-gjson")
		b.ReportMetric(tj.Seconds()/tr[lv].Seconds(), lv.String()+"-json-vs-redact")
	}
	b.ReportMetric(tgCold.Seconds()/taCold.Seconds(), "anonymized-cold-redact-vs-gjson")
}
