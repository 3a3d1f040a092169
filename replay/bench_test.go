package replay_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/redact"
	"github.com/anonproxy/anonproxy/replay"
)

// BenchmarkReplay compares, in the same run and on the same events, the
// redaction engine alone (Engine.AppendRedacted over every event at level
// anonymized) with a file-to-file replay of a .jsonl.zst of those events to
// a .jsonl.zst, deciding with an in-memory consent table under which every
// event is anonymized (so both redact every event the same way). Both
// report MB/s of uncompressed events; the replay's target is at least half
// the engine's. The events are the redaction benchmark's corpus
// (redact/testdata/bench), repeated to about 40 MB.
//
//	go test -run '^$' -bench 'BenchmarkReplay/.*/ratio' -benchtime 3x -count 3 -cpu 2,1 ./replay/
func BenchmarkReplay(b *testing.B) {
	b.Setenv("ANONPROXY_HMAC_KEY", testKey)
	for _, stream := range []string{"chat", "messages"} {
		raw, err := os.ReadFile(filepath.Join("..", "redact", "testdata", "bench", stream+".jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
		var events [][]byte
		size := 0
		for size < 40<<20 {
			for _, l := range lines {
				events = append(events, l)
				size += len(l)
			}
		}
		cfg := refConfig(b)
		sc, err := wire.ReplayStream(cfg, stream, "")
		if err != nil {
			b.Fatal(err)
		}
		rp, err := wire.BuildReplay(cfg, sc, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		for i := range 10 {
			rp.Table.Apply(fmt.Appendf(nil, "t:T%d", i), []byte(`{"default":"anonymized"}`), 0, int64(i))
		}
		rp.Table.MarkReady()

		keys, err := redact.KeyringFromEnv()
		if err != nil {
			b.Fatal(err)
		}
		eng, err := redact.Compile(sc.StreamConfig, cfg.Redaction, keys)
		if err != nil {
			b.Fatal(err)
		}
		var (
			st  redact.Stats
			dst []byte
		)
		engine := func(b *testing.B) {
			for _, ev := range events {
				if dst, err = eng.AppendRedacted(dst[:0], ev, redact.LevelAnonymized, &st); err != nil {
					b.Fatal(err)
				}
			}
		}
		dir := b.TempDir()
		in := filepath.Join(dir, stream+".jsonl.zst")
		writeJSONL(b, in, events, "zstd")
		runs := 0
		fileToFile := func(b *testing.B) {
			runs++
			out := filepath.Join(dir, fmt.Sprintf("out-%d.jsonl.zst", runs))
			o := replay.Options{Processor: rp.Processor, QuarantineTopic: rp.QuarantineTopic, AuditTopic: rp.AuditTopic,
				Files: []string{in}, Output: replay.Route{File: out},
				Quarantine: replay.Route{File: out + ".quarantine.jsonl"}, Audit: replay.Route{File: out + ".audit.jsonl"},
				Checkpoint: out + ".checkpoint.json"}
			sum, err := replay.Run(context.Background(), o)
			if err != nil {
				b.Fatal(err)
			}
			if sum.Anonymized != int64(len(events)) {
				b.Fatalf("anonymized %d of %d events: %+v", sum.Anonymized, len(events), sum.Counts)
			}
			b.StopTimer()
			for _, f := range []string{out, out + ".quarantine.jsonl", out + ".audit.jsonl", out + ".checkpoint.json"} {
				os.Remove(f)
			}
			b.StartTimer()
		}

		b.Run(stream+"/engine", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				engine(b)
			}
		})
		b.Run(stream+"/file-to-file", func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				fileToFile(b)
			}
		})
		// Both, alternating, so that load on the machine hits both alike:
		// ratio is the replay's throughput over the engine's.
		b.Run(stream+"/ratio", func(b *testing.B) {
			// One round untimed first: the caches (phone verdicts, pseudonyms)
			// and the replay's buffers warm up once per process, as in any
			// long backfill, and should not weigh on a three-round ratio.
			engine(b)
			fileToFile(b)
			var te, tr time.Duration
			for b.Loop() {
				t0 := time.Now()
				engine(b)
				t1 := time.Now()
				fileToFile(b)
				te, tr = te+t1.Sub(t0), tr+time.Since(t1)
			}
			mb := float64(size) * float64(b.N) / 1e6
			b.ReportMetric(mb/te.Seconds(), "engine-MB/s")
			b.ReportMetric(mb/tr.Seconds(), "replay-MB/s")
			b.ReportMetric(te.Seconds()/tr.Seconds(), "ratio")
		})
	}
}
