package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
	"github.com/anonproxy/anonproxy/replay"
)

// topicEnv is the reference config on topics of the test's own, on the
// real broker, with the consent topic filled from testConsent.
type topicEnv struct {
	addr  string
	cfg   *config.File
	input string
	rp    *wire.Replay
}

func newTopicEnv(t *testing.T) *topicEnv {
	t.Helper()
	addr := kafkatest.Brokers(t)
	t.Setenv("ANONPROXY_HMAC_KEY", testKey)
	t.Setenv("ANONPROXY_BROKERS", "")
	cfg := refConfig(t)
	cfg.PrefixTopics(kafkatest.Topic(t, "rp"))
	cfg.Kafka.Brokers = []string{addr}
	kafkatest.CreateCompactedTopic(t, addr, cfg.Consent.Topic, 2)
	for _, topic := range []string{cfg.Stage.QuarantineTopic, cfg.Stage.AuditTopic} {
		kafkatest.CreateTopic(t, addr, topic, 1, nil)
	}
	sc, _ := cfg.Stream("chat")
	kafkatest.CreateTopic(t, addr, sc.Input, 2, nil)
	kafkatest.CreateTopic(t, addr, sc.Output, 2, nil)
	var recs []kafka.Message
	for _, c := range testConsent {
		recs = append(recs, kafka.Message{Key: []byte(c.key), Value: []byte(c.value)})
	}
	kafkatest.Produce(t, addr, cfg.Consent.Topic, kafka.Zstd, recs...)
	return &topicEnv{addr: addr, cfg: cfg, input: sc.Input}
}

// build wires a replay (the stream found from the topic) and runs its
// consent loader until the test ends.
func (e *topicEnv) build(t *testing.T) *wire.Replay {
	t.Helper()
	sc, err := wire.ReplayStream(e.cfg, "", e.input)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := wire.BuildReplay(e.cfg, sc, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rp.Loader.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; rp.Writer.Close() })
	return rp
}

func (e *topicEnv) options(rp *wire.Replay, checkpoint string) replay.Options {
	return replay.Options{Processor: rp.Processor, QuarantineTopic: rp.QuarantineTopic, AuditTopic: rp.AuditTopic,
		Consent: rp.Loader, MaxStaleness: time.Duration(rp.MaxStaleness), Clients: rp.Clients, Producer: rp.Writer,
		Topic: e.input, Checkpoint: checkpoint, BatchSize: 10}
}

// produceTimed writes chatEvents(n) to the input topic with timestamps:
// lines 1..before at base-2h, then base+i s, lines after the last
// `after` at base+3h. Line `stray` is inside but stamped base-1h.
func (e *topicEnv) produceTimed(t *testing.T, n, before, after, stray int, base time.Time) {
	t.Helper()
	evs := chatEvents(n)
	msgs := make([]kafka.Message, n)
	for i := range evs {
		line := i + 1
		ts := base.Add(time.Duration(line) * time.Second)
		switch {
		case line <= before:
			ts = base.Add(-2 * time.Hour)
		case line > n-after:
			ts = base.Add(3 * time.Hour)
		case line == stray:
			ts = base.Add(-time.Hour)
		}
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint("k", line%7)), Value: evs[i], Time: ts}
	}
	// One produce call per record keeps offsets in time order per partition.
	for _, m := range msgs {
		kafkatest.Produce(t, e.addr, e.input, kafka.Lz4, m)
	}
}

// outputs reads the output, audit and quarantine topics, keyed by the line
// number of the event each record came from, after checking that its
// anonproxy-source names the input record.
func (e *topicEnv) outputs(t *testing.T, inputs map[string]int) (fwd, audit, quarantine map[int]int) {
	t.Helper()
	sc, _ := e.cfg.Stream("chat")
	fwd, audit, quarantine = map[int]int{}, map[int]int{}, map[int]int{}
	for _, out := range []struct {
		topic string
		into  map[int]int
	}{{sc.Output, fwd}, {e.cfg.Stage.AuditTopic, audit}, {e.cfg.Stage.QuarantineTopic, quarantine}} {
		for _, m := range kafkatest.ReadAll(t, e.addr, out.topic, 60*time.Second) {
			var src, decision string
			for _, h := range m.Headers {
				switch h.Key {
				case proxy.HeaderSource:
					src = string(h.Value)
				case proxy.HeaderDecision:
					decision = string(h.Value)
				}
			}
			line, ok := inputs[src]
			if !ok {
				t.Fatalf("%s: record with source %q, not an input record", out.topic, src)
			}
			out.into[line]++
			if out.topic != sc.Output {
				continue
			}
			var ev map[string]any
			if err := json.Unmarshal(m.Value, &ev); err != nil {
				t.Fatalf("output is not JSON: %v", err)
			}
			text, _ := ev["text"].(string)
			switch want := kindOf(line); {
			case want == kindAnonymized && (decision != "anonymized" || strings.Contains(text, "@example.com") || ev["user_id"] == "U1"):
				t.Errorf("line %d: not anonymized (%s): %v", line, decision, ev)
			case want == kindAllow && (decision != "allow" || !strings.Contains(text, "@example.com")):
				t.Errorf("line %d: not allowed as is (%s): %v", line, decision, ev)
			case want != kindAnonymized && want != kindAllow:
				t.Errorf("line %d (kind %d) forwarded", line, want)
			}
			if strings.Contains(text, "AKIA") {
				t.Errorf("line %d: credential forwarded", line)
			}
		}
	}
	return fwd, audit, quarantine
}

// inputRecords maps each input record's coordinates to its line number.
func (e *topicEnv) inputRecords(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range kafkatest.ReadAll(t, e.addr, e.input, 60*time.Second) {
		var ev struct {
			ID string `json:"event_id"`
		}
		line := 0
		if err := json.Unmarshal(m.Value, &ev); err == nil {
			fmt.Sscanf(ev.ID, "ev-%d", &line)
		} else {
			fmt.Sscanf(string(m.Value), `{"event_id":"ev-%d"`, &line)
		}
		out[fmt.Sprintf("%s/%d/%d", m.Topic, m.Partition, m.Offset)] = line
	}
	return out
}

func TestReplayTopicTimeRange(t *testing.T) {
	e := newTopicEnv(t)
	const n, before, after, stray = 90, 15, 15, 40
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	e.produceTimed(t, n, before, after, stray, base)
	rp := e.build(t)
	o := e.options(rp, filepath.Join(t.TempDir(), "cp.json"))
	o.FromTime, o.ToTime = base, base.Add(2*time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := replay.Run(ctx, o)
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	if sum.In != n-before-after-1 || sum.Skipped != 1 || !sum.Done {
		t.Errorf("summary %+v: want %d in, 1 skipped (the stray timestamp)", sum, n-before-after-1)
	}
	fwd, audit, quarantine := e.outputs(t, e.inputRecords(t))
	for line := 1; line <= n; line++ {
		inRange := line > before && line <= n-after && line != stray
		want := map[bool]int{true: 1}[inRange]
		var got int
		switch kindOf(line) {
		case kindAnonymized, kindAllow:
			got = fwd[line]
		case kindDenied:
			got = audit[line]
		case kindMalformed:
			got = quarantine[line]
		}
		if got != want {
			t.Errorf("line %d (kind %d, in range %v): %d records, want %d", line, kindOf(line), inRange, got, want)
		}
	}
	cp, err := replay.ReadCheckpoint(o.Checkpoint)
	if err != nil || !cp.Done || len(cp.Partitions) != 2 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	for _, p := range cp.Partitions {
		if p.Next != p.End || p.Start >= p.End {
			t.Errorf("partition %+v", p)
		}
	}
}

// TestReplayTopicResume crashes a topic-to-topic replay right after a batch
// was acknowledged, before its checkpoint, and resumes it: every record is
// replayed, and only that one batch twice.
func TestReplayTopicResume(t *testing.T) {
	e := newTopicEnv(t)
	const n = 120
	evs := chatEvents(n)
	msgs := make([]kafka.Message, n)
	for i := range evs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint("k", i%5)), Value: evs[i]}
	}
	kafkatest.Produce(t, e.addr, e.input, kafka.Zstd, msgs...)
	rp := e.build(t)
	cpPath := filepath.Join(t.TempDir(), "cp.json")
	o := e.options(rp, cpPath)
	o.FromOffset = 0
	crash := errors.New("simulated crash")
	restore := replay.SetTestHookAcked(func(b int) error {
		if b == 4 {
			return crash
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := replay.Run(ctx, o)
	restore()
	if !errors.Is(err, crash) {
		t.Fatalf("first run: %v", err)
	}
	// More records arrive after the replay started: not part of it.
	kafkatest.Produce(t, e.addr, e.input, kafka.Zstd, kafka.Message{Key: []byte("late"), Value: chatEvents(1)[0]})
	o.Resume = true
	sum, err := replay.Run(ctx, o)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !sum.Done || sum.In != n || sum.ThisRun.In != n-4*10 {
		t.Errorf("summary %+v", sum)
	}
	inputs := e.inputRecords(t)
	fwd, audit, quarantine := e.outputs(t, inputs)
	dups := 0
	for line := 1; line <= n; line++ {
		got := fwd[line] + audit[line] + quarantine[line]
		if got < 1 || got > 2 {
			t.Errorf("line %d: %d records", line, got)
		}
		dups += got - 1
	}
	if dups > o.BatchSize {
		t.Errorf("%d records re-emitted, more than one batch (%d)", dups, o.BatchSize)
	}
	t.Logf("re-emitted after the crash: %d records (batch size %d)", dups, o.BatchSize)
}
