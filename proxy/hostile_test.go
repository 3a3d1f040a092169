package proxy_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/proxy"
	"github.com/anonproxy/anonproxy/redact"
)

// hostile is one bad event. Its key names it; marker is a string that
// occurs only in this event's payload, so finding it anywhere in the
// stage's outputs means the event (or part of it) got through.
type hostile struct {
	name   string
	stream string
	value  []byte
	// reason is the expected quarantine reason; "" means the event is valid
	// JSON that is harmless and is forwarded byte for byte (allow level).
	reason string
	// key, if set, is the record key; its first len(name) bytes are the name.
	key []byte
}

func (h hostile) marker() string { return "HOSTILE-" + h.name + "-7f3a" }

// hostileEvent is a well-formed chat event of the permissive tenant with
// extra members spliced in before the closing brace.
func hostileEvent(h string, extra string) string {
	return `{"event_id":"` + h + `","type":"chat.message","tenant_id":"TH","user_id":"U1","text":"HOSTILE-` + h + `-7f3a"` + extra + `}`
}

func fileEvent(name, encoding, b64 string) []byte {
	return []byte(`{"event_id":"` + name + `","type":"file.shared","tenant_id":"TH","user_id":"U1","ts":"2026-11-22T10:00:00Z",` +
		`"file":{"id":"F1","name":"HOSTILE-` + name + `-7f3a.txt","mimetype":"text/plain","size":1,"content_encoding":"` + encoding + `","content_b64":"` + b64 + `"}}`)
}

// bomb returns base64 of n zero bytes compressed by compress, built
// streaming: only the compressed form is ever held in memory.
func bomb(t *testing.T, n int64, compress func(io.Writer) io.WriteCloser) string {
	t.Helper()
	var buf bytes.Buffer
	w := compress(&buf)
	zeros := make([]byte, 1<<20)
	for written := int64(0); written < n; written += int64(len(zeros)) {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

func hostileCorpus(t *testing.T) []hostile {
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	var keys strings.Builder
	for i := 0; i < 100_000; i++ {
		keys.WriteString(`,"` + strconv.FormatInt(int64(i), 36) + `":0`)
	}
	huge := strings.Repeat("9", 100_000)
	gz := bomb(t, 512<<20, func(w io.Writer) io.WriteCloser { z, _ := gzip.NewWriterLevel(w, gzip.BestCompression); return z })
	zs := bomb(t, 1<<30, func(w io.Writer) io.WriteCloser {
		z, _ := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
		return z
	})
	hs := []hostile{
		{name: "invalid-json", value: []byte(hostileEvent("invalid-json", `,,"x":}`)), reason: proxy.ReasonInvalidJSON},
		{name: "truncated", value: []byte(strings.TrimSuffix(hostileEvent("truncated", `,"more":"abc"`), `c"}`)), reason: proxy.ReasonInvalidJSON},
		{name: "trailing-garbage", value: []byte(hostileEvent("trailing-garbage", "") + `{"tenant_id":"TH"}`), reason: proxy.ReasonInvalidJSON},
		{name: "invalid-utf8", value: []byte(hostileEvent("invalid-utf8", `,"note":"alice`+"\xff\xfe"+`@example.com `+"\xc0\xae"+`"`)), reason: proxy.ReasonInvalidJSON},
		{name: "nul-in-string", value: []byte(hostileEvent("nul-in-string", `,"note":"a`+"\x00"+`b"`)), reason: proxy.ReasonInvalidJSON},
		{name: "nul-after", value: []byte(hostileEvent("nul-after", "") + "\x00"), reason: proxy.ReasonInvalidJSON},
		// RFC 8259 §8.1: implementations MUST NOT add a BOM and MAY reject
		// one; the stage does (gjson does not accept it), fail closed.
		{name: "bom", value: []byte("\xef\xbb\xbf" + hostileEvent("bom", "")), reason: proxy.ReasonInvalidJSON},
		{name: "empty", value: []byte{}, reason: proxy.ReasonInvalidJSON},
		{name: "not-an-object", value: []byte(`["HOSTILE-not-an-object-7f3a","TH","U1"]`), reason: proxy.ReasonMissingTenant},
		{name: "deep-unscanned", value: []byte(hostileEvent("deep-unscanned", `,"x":`+deep)), reason: redact.ReasonTooDeep},
		{name: "deep-scanned", value: []byte(`{"tenant_id":"TH","user_id":"U1","text":` + strings.Repeat(`["HOSTILE-deep-scanned-7f3a",`, 30_000) + "1" + strings.Repeat("]", 30_000) + `}`), reason: redact.ReasonTooDeep},
		{name: "deep-invalid", value: []byte(strings.Repeat(`{"a":`, 200_000) + `"HOSTILE-deep-invalid-7f3a"`), reason: redact.ReasonTooDeep},
		{name: "dup-tenant-deny-first", value: []byte(`{"tenant_id":"T-deny","tenant_id":"TH","user_id":"U1","text":"HOSTILE-dup-tenant-deny-first-7f3a"}`), reason: proxy.ReasonDuplicateID},
		{name: "dup-tenant-deny-last", value: []byte(`{"tenant_id":"TH","user_id":"U1","text":"HOSTILE-dup-tenant-deny-last-7f3a","tenant_id":"T-deny"}`), reason: proxy.ReasonDuplicateID},
		{name: "dup-tenant-escaped", value: []byte(`{"tenant_id":"TH","tenant\u005fid":"T-deny","user_id":"U1","text":"HOSTILE-dup-tenant-escaped-7f3a"}`), reason: proxy.ReasonDuplicateID},
		{name: "dup-user", value: []byte(`{"tenant_id":"TH","user_id":"U1","user_id":"U-deny","text":"HOSTILE-dup-user-7f3a"}`), reason: proxy.ReasonDuplicateID},
		{name: "id-object", value: []byte(`{"tenant_id":{"id":"TH"},"user_id":"U1","text":"HOSTILE-id-object-7f3a"}`), reason: proxy.ReasonMissingTenant},
		{name: "id-null", value: []byte(`{"tenant_id":"TH","user_id":null,"text":"HOSTILE-id-null-7f3a"}`), reason: proxy.ReasonMissingUser},
		// 100,000 keys in 800 KB: valid JSON, read in one linear pass;
		// forwarded unchanged at level allow.
		{name: "many-keys", value: []byte(hostileEvent("many-keys", keys.String())), reason: ""},
		// Huge numbers are valid JSON: carried as written, never converted.
		{name: "huge-numbers", value: []byte(hostileEvent("huge-numbers", `,"a":1e999999999,"b":-`+huge+`,"c":0.`+huge+`1,"d":-0.0E-0`)), reason: ""},
		{name: "escaped-nul", value: []byte(hostileEvent("escaped-nul", `,"note":"a\u0000b\ud800"`)), reason: ""},
		{stream: "files", name: "gzip-bomb", value: fileEvent("gzip-bomb", "gzip", gz), reason: redact.ReasonFileTooLarge},
		{stream: "files", name: "zstd-bomb", value: fileEvent("zstd-bomb", "zstd", zs), reason: redact.ReasonFileTooLarge},
		{stream: "files", name: "not-base64", value: fileEvent("not-base64", "", "HOSTILE!!not*base64~~"), reason: redact.ReasonBadBase64},
		{stream: "files", name: "not-gzip", value: fileEvent("not-gzip", "gzip", base64.StdEncoding.EncodeToString([]byte("HOSTILE-not-gzip-7f3a plain"))), reason: redact.ReasonBadFileEncoding},
		{stream: "files", name: "not-zstd", value: fileEvent("not-zstd", "zstd", base64.StdEncoding.EncodeToString([]byte("HOSTILE-not-zstd-7f3a plain"))), reason: redact.ReasonBadFileEncoding},
		// Redaction grows this 1 MB event sixfold (mentions become
		// pseudonyms): the output would exceed what the producer accepts.
		{name: "expands", value: []byte(`{"tenant_id":"TA","user_id":"U1","text":"HOSTILE-expands-7f3a ` + strings.Repeat("<@U1>", 200_000) + `"}`), reason: proxy.ReasonTooLarge},
		// A 2 MiB key under a small value: the output record would carry it.
		{name: "huge-key", key: []byte("huge-key" + strings.Repeat("k", 2<<20)), value: []byte(hostileEvent("huge-key", "")), reason: proxy.ReasonTooLarge},
		{name: "long-id", value: []byte(`{"tenant_id":"T-deny","user_id":"` + strings.Repeat("u", 5000) + `","text":"HOSTILE-long-id-7f3a"}`), reason: proxy.ReasonIDTooLong},
		{stream: "files", name: "unknown-encoding", value: fileEvent("unknown-encoding", "br", "aGk="), reason: redact.ReasonBadFileEncoding},
	}
	for i := range hs {
		if hs[i].stream == "" {
			hs[i].stream = "chat"
		}
		if l := len(hs[i].value); l > 1<<20 {
			t.Fatalf("%s: %d bytes, over the default max_event_bytes: it would test the size limit instead", hs[i].name, l)
		}
	}
	return hs
}

// TestHostileInput runs a corpus of malformed and malicious events through
// the full stage on the real broker, with the default limits
// (max_event_bytes 1 MiB, max_file_bytes 8 MiB) and every subject allowed,
// so anything that slipped through validation would be forwarded. Each event
// is quarantined with its reason, or (valid, harmless JSON) forwarded byte
// for byte; no marker of a quarantined event reaches any topic the stage
// writes; the stage keeps running and its memory stays bounded.
func TestHostileInput(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.TenantKey("TH"), level("allow"))
	e.setConsent(consent.TenantKey("TA"), level("anonymized"))
	e.setConsent(consent.TenantKey("T-deny"), level("deny"))
	e.setConsent(consent.UserKey("TH", "U-deny"), level("deny"))
	corpus := hostileCorpus(t)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	hwmBefore := vmHWM(t)
	var peakHeap atomic.Uint64
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	var sampling sync.WaitGroup
	sampling.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
			select {
			case <-sampleCtx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})

	e.start()
	byStream := map[string][]kafka.Message{}
	for _, h := range corpus {
		key := h.key
		if key == nil {
			key = []byte(h.name)
		}
		byStream[h.stream] = append(byStream[h.stream], kafka.Message{Key: key, Value: h.value})
	}
	for stream, msgs := range byStream {
		for _, m := range msgs { // one request per event: the bombs together exceed a 16 MiB batch
			kafkatest.Produce(t, e.addr, e.stream(stream).Input, kafka.Lz4, m)
		}
	}
	// A 50 MB event, uncompressed on the wire, so the stage's 4 MiB fetch
	// meets a record batch more than ten times its size.
	bigMarker := "HOSTILE-50MB-7f3a"
	big := []byte(`{"event_id":"50MB","tenant_id":"TH","user_id":"U1","text":"` + bigMarker + strings.Repeat(" pad", 50<<20/4) + `"}`)
	w := &kafka.Writer{Addr: kafka.TCP(e.addr), Topic: e.stream("messages").Input, RequiredAcks: kafka.RequireAll,
		BatchBytes: 64 << 20, BatchTimeout: time.Millisecond}
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("50MB"), Value: big}); err != nil {
		t.Fatalf("produce the 50 MB event: %v", err)
	}
	w.Close()
	big = nil
	// A well-formed event after all of them: the stage is still deciding.
	kafkatest.Produce(t, e.addr, e.stream("chat").Input, kafka.Lz4,
		kafka.Message{Key: []byte("after"), Value: []byte(chatEvent("after", "TH", "U1", "still alive"))})

	names := map[string]string{} // source -> event name
	for _, s := range []string{"chat", "files"} {
		for _, m := range kafkatest.ReadAll(t, e.addr, e.stream(s).Input, 30*time.Second) {
			name := string(m.Key)
			if strings.HasPrefix(name, "huge-key") {
				name = "huge-key"
			}
			names[fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)] = name
		}
	}
	want := len(corpus) + 2
	var got map[string][]outcome
	deadline := time.Now().Add(120 * time.Second)
	for {
		got = e.outcomes(names)
		if len(got) >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	stopSampling()
	sampling.Wait()

	check := func(name, reason string, want []byte) {
		t.Helper()
		outs := got[name]
		if len(outs) != 1 {
			t.Errorf("%s: %d outcomes, want exactly one", name, len(outs))
			return
		}
		o := outs[0]
		switch {
		case reason == "" && o.topic != "output":
			t.Errorf("%s: %s (%s), want forwarded", name, o.topic, o.reason)
		case reason == "" && want != nil && !bytes.Equal(o.value, want):
			t.Errorf("%s: forwarded, but changed (%d bytes in, %d out)", name, len(want), len(o.value))
		case reason != "" && (o.topic != "quarantine" || o.reason != reason):
			t.Errorf("%s: %s (%q), want quarantined as %s", name, o.topic, o.reason, reason)
		}
	}
	for _, h := range corpus {
		check(h.name, h.reason, h.value)
	}
	check("50MB", proxy.ReasonTooLarge, nil)
	check("after", "", nil)

	// No marker of a rejected event anywhere the stage writes.
	written := map[string][]kafka.Message{}
	for _, s := range e.cfg.Streams {
		written[s.Output] = kafkatest.ReadAll(t, e.addr, s.Output, 30*time.Second)
	}
	written[e.cfg.Stage.QuarantineTopic] = kafkatest.ReadAll(t, e.addr, e.cfg.Stage.QuarantineTopic, 30*time.Second)
	written[e.cfg.Stage.AuditTopic] = kafkatest.ReadAll(t, e.addr, e.cfg.Stage.AuditTopic, 30*time.Second)
	markers := []string{bigMarker}
	for _, h := range corpus {
		if h.reason != "" {
			markers = append(markers, h.marker())
		}
	}
	for topic, msgs := range written {
		for _, m := range msgs {
			for _, mk := range markers {
				if bytes.Contains(m.Value, []byte(mk)) || bytes.Contains(m.Key, []byte(mk)) {
					t.Errorf("%s carries %s: %.200q", topic, mk, m.Value)
				}
			}
			for _, h := range m.Headers {
				if bytes.Contains(h.Value, []byte("HOSTILE")) {
					t.Errorf("%s: header %s carries a marker", topic, h.Key)
				}
			}
		}
	}

	// Bounded memory: the bombs expand to 1.5 GiB and the 50 MB event is
	// held once by the stage's fetch; anything near the expansion would
	// show here.
	const bound = 512 << 20
	if growth := int64(peakHeap.Load()) - int64(before.HeapInuse); growth > bound {
		t.Errorf("heap in use grew by %d MiB while the stage processed the corpus (bound %d MiB)", growth>>20, bound>>20)
	}
	// Under the race detector RSS includes its shadow memory (several times
	// the heap): only the heap bound holds there.
	if hwm := vmHWM(t); hwm > 0 && hwm-hwmBefore > bound && !raceEnabled {
		t.Errorf("peak RSS grew by %d MiB (bound %d MiB)", (hwm-hwmBefore)>>20, bound>>20)
	}
	t.Logf("heap in use: %d MiB before, %d MiB peak; VmHWM %d -> %d MiB",
		before.HeapInuse>>20, peakHeap.Load()>>20, hwmBefore>>20, vmHWM(t)>>20)
}

// outcome is where one input went: "output", "quarantine" or "audit".
type outcome struct {
	topic, reason string
	value         []byte
}

// outcomes reads every topic the stage writes and returns, by input event
// name (via names: source -> name; the messages stream's only event is the
// 50 MB one), where each input went.
func (e *env) outcomes(names map[string]string) map[string][]outcome {
	e.t.Helper()
	messagesIn := e.stream("messages").Input + "/"
	name := func(src string) string {
		if n, ok := names[src]; ok {
			return n
		}
		if strings.HasPrefix(src, messagesIn) {
			return "50MB"
		}
		return "unknown source " + src
	}
	got := map[string][]outcome{}
	for _, s := range e.cfg.Streams {
		for _, m := range kafkatest.ReadAll(e.t, e.addr, s.Output, 30*time.Second) {
			n := name(header(m, proxy.HeaderSource))
			got[n] = append(got[n], outcome{topic: "output", value: m.Value})
		}
	}
	for _, m := range kafkatest.ReadAll(e.t, e.addr, e.cfg.Stage.QuarantineTopic, 30*time.Second) {
		var q struct{ Source, Reason string }
		if err := json.Unmarshal(m.Value, &q); err != nil {
			e.t.Errorf("quarantine record is not JSON: %v", err)
			continue
		}
		n := name(q.Source)
		got[n] = append(got[n], outcome{topic: "quarantine", reason: q.Reason})
	}
	for _, m := range kafkatest.ReadAll(e.t, e.addr, e.cfg.Stage.AuditTopic, 30*time.Second) {
		var a struct{ Kind, Source, Reason string }
		if err := json.Unmarshal(m.Value, &a); err == nil && a.Kind == "deny" {
			n := name(a.Source)
			got[n] = append(got[n], outcome{topic: "audit", reason: a.Reason})
		}
	}
	return got
}

// vmHWM returns the process's peak resident set size (Linux), or 0.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM: %v", err)
			}
			return kb << 10
		}
	}
	return 0
}
