package replay_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/configs"
	"github.com/anonproxy/anonproxy/internal/wire"
)

const testKey = "k1:some-test-key-at-least-16-bytes"

// Consent in the tests: U1 anonymized, U2 allow, U3 (no record) the
// reference config's default, deny; tenant T9 denies everything.
var testConsent = []struct{ key, value string }{
	{"u:T1:U1", `{"default":"anonymized"}`},
	{"u:T1:U2", `{"default":"allow"}`},
	{"t:T9", `{"default":"deny"}`},
	{"u:T9:U2", `{"default":"allow"}`},
}

func refConfig(t testing.TB) *config.File {
	t.Helper()
	cfg, err := config.Parse(configs.Example)
	if err != nil {
		t.Fatalf("reference config: %v", err)
	}
	return cfg
}

// tableReplay wires a replay of the chat stream whose consent table is
// filled in memory from testConsent and marked ready.
func tableReplay(t testing.TB, cfg *config.File) *wire.Replay {
	t.Helper()
	stream, err := wire.ReplayStream(cfg, "chat", "")
	if err != nil {
		t.Fatal(err)
	}
	rp, err := wire.BuildReplay(cfg, stream, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	for i, c := range testConsent {
		rp.Table.Apply([]byte(c.key), []byte(c.value), 0, int64(i))
	}
	rp.Table.MarkReady()
	t.Cleanup(func() { rp.Writer.Close() })
	return rp
}

// event kinds produced by chatEvents, by line number (1-based).
type eventKind int

const (
	kindAnonymized eventKind = iota
	kindAllow
	kindDenied
	kindMalformed
)

// chatEvents returns n chat events; line i (1-based) has kind kindOf(i).
// Each carries an email address, a unique event id and, for users with
// consent, a credential that must never be forwarded.
func chatEvents(n int) [][]byte {
	out := make([][]byte, n)
	for i := 1; i <= n; i++ {
		var ev string
		switch kindOf(i) {
		case kindAnonymized:
			ev = fmt.Sprintf(`{"event_id":"ev-%d","type":"chat.message","tenant_id":"T1","user_id":"U1","channel_id":"C1","ts":"2026-11-22T10:00:00Z","text":"mail alice%d@example.com key AKIAIOSFODNN7EXAMPLE"}`, i, i)
		case kindAllow:
			ev = fmt.Sprintf(`{"event_id":"ev-%d","type":"chat.message","tenant_id":"T1","user_id":"U2","channel_id":"C1","ts":"2026-11-22T10:00:00Z","text":"mail bob%d@example.com key AKIAIOSFODNN7EXAMPLE"}`, i, i)
		case kindDenied:
			ev = fmt.Sprintf(`{"event_id":"ev-%d","type":"chat.message","tenant_id":"T1","user_id":"U3","channel_id":"C1","ts":"2026-11-22T10:00:00Z","text":"mail carol%d@example.com"}`, i, i)
		case kindMalformed:
			ev = fmt.Sprintf(`{"event_id":"ev-%d","text":"not closed`, i)
		}
		out[i-1] = []byte(ev)
	}
	return out
}

func kindOf(line int) eventKind {
	switch {
	case line%10 == 0:
		return kindMalformed
	case line%3 == 0:
		return kindDenied
	case line%3 == 1:
		return kindAnonymized
	}
	return kindAllow
}

// writeJSONL writes lines as JSONL compressed with codec ("", "gzip", "zstd").
func writeJSONL(t testing.TB, path string, lines [][]byte, codec string) {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch codec {
	case "":
		w = nopCloser{&buf}
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	for _, l := range lines {
		w.Write(l)
		w.Write([]byte("\n"))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// readJSONL reads a JSONL file, plain or zstd, and checks that every line
// is a JSON document.
func readJSONL(t testing.TB, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasPrefix(raw, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		d, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if raw, err = d.DecodeAll(raw, nil); err != nil {
			t.Fatalf("%s: zstd: %v", path, err)
		}
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 16<<20)
	for n := 1; sc.Scan(); n++ {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s line %d is not valid JSON: %v", path, n, err)
		}
		out = append(out, m)
	}
	return out
}
