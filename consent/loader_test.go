package consent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/segmentio/kafka-go"
)

// keysInPartition returns n keys mk(0), mk(1), … that Murmur2Balancer (the
// Java client's partitioner) puts in partition p of partitions.
func keysInPartition(mk func(i int) string, p, partitions, n int) []string {
	bal := &kafka.Murmur2Balancer{}
	parts := make([]int, partitions)
	for i := range parts {
		parts[i] = i
	}
	var out []string
	for i := 0; len(out) < n; i++ {
		k := mk(i)
		if bal.Balance(kafka.Message{Key: []byte(k)}, parts...) == p {
			out = append(out, k)
		}
	}
	return out
}

func userKeyOf(i int) string   { return UserKey("T1", fmt.Sprint("U", i)) }
func tenantKeyOf(i int) string { return TenantKey(fmt.Sprint("T", i)) }

func msg(key, value string) kafka.Message {
	m := kafka.Message{Key: []byte(key)}
	if value != "" {
		m.Value = []byte(value)
	}
	return m
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

// startLoader runs a loader for topic in the background until the test ends.
func startLoader(t *testing.T, addr, topic string, cfg Config, policy PolicyConfig, opts ...Option) (*Loader, *Table) {
	t.Helper()
	cfg.Topic = topic
	tb := NewTable(policy, "chat", "files", "messages")
	l, err := NewLoader([]string{addr}, &kafka.Dialer{Timeout: 10 * time.Second}, cfg, tb, append([]Option{WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
		if l.State() != StateStopped {
			t.Errorf("state after Run = %v", l.State())
		}
	})
	return l, tb
}

// expectTable checks that tb holds exactly the latest record of every key
// of msgs (a full read of the topic), with their coordinates.
func expectTable(t *testing.T, tb *Table, msgs []kafka.Message) {
	t.Helper()
	latest := map[string]kafka.Message{}
	for _, m := range msgs {
		if _, err := ParseKey(string(m.Key)); err != nil {
			continue
		}
		latest[string(m.Key)] = m
	}
	live := 0
	for k, m := range latest {
		s, _ := ParseKey(k)
		d := tb.decide(s.Tenant, s.User, "chat")
		if s.Kind == SubjectTenant {
			d = tb.decide(s.Tenant, "", "chat")
		}
		if m.Value == nil {
			if d.Reason != ReasonDefault {
				t.Errorf("%s: deleted, but decision %+v", k, d)
			}
			continue
		}
		live++
		rec, err := ParseValue(m.Value)
		want := rec.Level("chat")
		if err != nil {
			want = LevelDeny
		}
		if d.Level != want || d.Key != s.Key() || d.Offset != m.Offset || int(d.Partition) != m.Partition {
			t.Errorf("%s: decision %+v, want level %v at %d/%d", k, d, want, m.Partition, m.Offset)
		}
		if (err != nil) != (d.Reason == ReasonMalformed) {
			t.Errorf("%s: decision %+v, value error %v", k, d, err)
		}
	}
	if tb.Len() != live {
		t.Errorf("table has %d subjects, want %d", tb.Len(), live)
	}
}

func TestLoaderCompactedTopic(t *testing.T) {
	addr := kafkatest.Brokers(t)
	for _, comp := range []kafka.Compression{kafka.Zstd, kafka.Lz4} {
		t.Run(comp.String(), func(t *testing.T) {
			t.Parallel()
			topic := kafkatest.Topic(t, "consent")
			const parts = 4
			kafkatest.CreateCompactedTopic(t, addr, topic, parts)
			// Partition 0: many subjects with overwrites, tombstones and
			// malformed values; 1: empty; 2: every record deleted; 3: a few.
			p0 := keysInPartition(userKeyOf, 0, parts, 3000)
			p2 := keysInPartition(userKeyOf, 2, parts, 50)
			p3 := keysInPartition(userKeyOf, 3, parts, 20)
			t3 := keysInPartition(tenantKeyOf, 3, parts, 20)
			badKeys := []string{"garbage", "t:", "u:a:b:c", "t:%zz", "x", "u:a", "t:a:b"}
			var bad []string
			for _, k := range badKeys {
				if (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: []byte(k)}, 0, 1, 2, 3) != 1 {
					bad = append(bad, k)
				}
			}
			levels := []string{`{"default":"allow"}`, `{"default":"deny","categories":{"chat":"anonymized"}}`, `{"default":"anonymized","categories":{"chat":"allow"},"updated_at":"2026-11-22T10:00:00Z","updated_by":"admin:U1"}`}
			var msgs []kafka.Message
			for round := 0; round < 3; round++ {
				for i, u := range p0 {
					msgs = append(msgs, msg(u, levels[(i+round)%3]))
				}
			}
			for i, u := range p0 {
				switch i % 10 {
				case 0:
					msgs = append(msgs, msg(u, ""))
				case 1:
					msgs = append(msgs, msg(u, `{"default":"sometimes"}`))
				case 2:
					msgs = append(msgs, msg(u, `not json`))
				}
			}
			for _, u := range p2 {
				msgs = append(msgs, msg(u, levels[0]))
			}
			for _, u := range p2 {
				msgs = append(msgs, msg(u, ""))
			}
			for i, u := range p3 {
				msgs = append(msgs, msg(u, levels[i%3]), msg(t3[i], levels[(i+1)%3]))
			}
			// Malformed keys land wherever they hash.
			for _, k := range bad {
				msgs = append(msgs, msg(k, levels[0]))
			}
			kafkatest.Produce(t, addr, topic, comp, msgs...)
			// Roll every written partition's segment so the cleaner may
			// compact it; the roll records do not change the meaning.
			time.Sleep(300 * time.Millisecond)
			kafkatest.Produce(t, addr, topic, comp, msg(p2[0], ""), msg(p3[0], levels[0]))
			written := len(msgs) + 2
			compacted := kafkatest.Compact(t, addr, topic, written, msg(p0[0], levels[1]))
			t.Logf("%d records written, %d after compaction", written+1, len(compacted))

			first, end, err := kafkatest.Offsets(context.Background(), addr, topic)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("first offsets %v, end offsets %v", first, end)
			if end[1] != 0 {
				t.Fatalf("partition 1 should be empty, end %d", end[1])
			}

			var mu sync.Mutex
			var changes []Change
			var readyEarly atomic.Bool
			var tb *Table
			onChange := func(c Change) {
				mu.Lock()
				changes = append(changes, c)
				mu.Unlock()
			}
			l, tb := startLoader(t, addr, topic, Config{}, optIn, WithOnChange(onChange))
			// Readiness is never reported before the table reached the end
			// offsets read before the loader started.
			watch := make(chan struct{})
			go func() {
				defer close(watch)
				for !l.Ready() {
					if _, err := tb.Decide("T1", "U1", "chat"); err != ErrNotReady {
						readyEarly.Store(true)
					}
					time.Sleep(time.Millisecond / 10)
				}
				pos := tb.Positions()
				for p, e := range end {
					if pos[p] < e {
						readyEarly.Store(true)
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := l.WaitReady(ctx); err != nil {
				t.Fatalf("WaitReady: %v (state %v, positions %v, ends %v)", err, l.State(), tb.Positions(), end)
			}
			<-watch
			if readyEarly.Load() {
				t.Fatal("ready reported before catch-up, or lookups served before ready")
			}
			if l.State() != StateReady {
				t.Fatalf("state %v", l.State())
			}
			expectTable(t, tb, compacted)
			st := l.Stats()
			if st.MalformedKeys != int64(len(bad)) {
				t.Errorf("MalformedKeys = %d, want %d (%+v)", st.MalformedKeys, len(bad), st)
			}
			if st.MalformedValues == 0 || tb.Stats().Malformed != 2*len(p0)/10 {
				t.Errorf("malformed values: %+v, table %+v", st, tb.Stats())
			}
			mu.Lock()
			var nMalformedKey, nMalformedValue int
			for _, c := range changes {
				switch c.Kind {
				case ChangeMalformedKey:
					nMalformedKey++
					if c.Err == nil {
						t.Errorf("malformed key change without error: %+v", c)
					}
				case ChangeMalformedValue:
					nMalformedValue++
					if c.Err == nil || !c.Levels.Malformed() || c.Levels.For("chat") != LevelDeny {
						t.Errorf("malformed value change: %+v", c)
					}
				case ChangeSet:
					if !c.CatchingUp || c.Applied.IsZero() || c.Subject.Kind == 0 {
						t.Errorf("set change: %+v", c)
					}
				}
			}
			mu.Unlock()
			if nMalformedKey != len(bad) || nMalformedValue != int(st.MalformedValues) {
				t.Errorf("changes: %d malformed keys, %d malformed values; stats %+v", nMalformedKey, nMalformedValue, st)
			}
			if s := l.Staleness(); s > 2*time.Second {
				t.Errorf("staleness %v right after ready on an idle topic", s)
			}
		})
	}
}

func TestLoaderEmptyTopic(t *testing.T) {
	addr := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "consent")
	kafkatest.CreateCompactedTopic(t, addr, topic, 3)
	l, tb := startLoader(t, addr, topic, Config{}, optOut)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := tb.Decide("T1", "U1", "telemetry")
	if err != nil || d.Level != LevelAllow || d.Reason != ReasonDefault {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
}

// TestLoaderTailing: after ready, an opt-out (revocation) is applied within
// the staleness bound, and staleness stays within it on a live topic.
func TestLoaderTailing(t *testing.T) {
	addr := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "consent")
	kafkatest.CreateCompactedTopic(t, addr, topic, 3)
	kafkatest.Produce(t, addr, topic, kafka.Zstd, msg(UserKey("T1", "U1"), `{"default":"allow"}`), msg(TenantKey("T1"), `{"default":"allow"}`))
	cfg := Config{MaxStaleness: Duration(time.Second)}
	var changes atomic.Int64
	l, tb := startLoader(t, addr, topic, cfg, optOut, WithOnChange(func(c Change) {
		if !c.CatchingUp {
			changes.Add(1)
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := tb.Decide("T1", "U1", "chat"); d.Level != LevelAllow || d.Reason != ReasonBoth {
		t.Fatalf("before opt-out: %+v", d)
	}
	for i := 0; i < 5; i++ {
		user := fmt.Sprint("U", i+1)
		start := time.Now()
		kafkatest.Produce(t, addr, topic, kafka.Zstd, msg(UserKey("T1", user), `{"default":"allow","categories":{"chat":"deny"}}`))
		acked := time.Now()
		for {
			d, err := tb.Decide("T1", user, "chat")
			if err != nil {
				t.Fatal(err)
			}
			if d.Level == LevelDeny {
				break
			}
			if time.Since(acked) > cfg.MaxStalenessOrDefault() {
				t.Fatalf("opt-out of %s not applied %v after the broker acknowledged it (staleness %v)", user, time.Since(acked), l.Staleness())
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("opt-out %d applied %v after ack (%v after produce start)", i, time.Since(acked).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		if s := l.Staleness(); s > cfg.MaxStalenessOrDefault() || l.Stale() {
			t.Fatalf("staleness %v after tailing update", s)
		}
	}
	if changes.Load() != 5 {
		t.Errorf("%d tailing changes reported, want 5", changes.Load())
	}
	// Staleness stays bounded on an idle topic.
	time.Sleep(600 * time.Millisecond)
	if s := l.Staleness(); s > 600*time.Millisecond {
		t.Errorf("idle staleness %v", s)
	}
}

// TestLoaderSurvivesBrokerRestart stops the broker while the table is
// catching up and starts it again; the loader must reach ready with the full
// state and keep tailing. It restarts the shared test broker: run it alone
// (go test -run TestLoaderSurvivesBrokerRestart) when other packages' tests
// use the broker concurrently.
func TestLoaderSurvivesBrokerRestart(t *testing.T) {
	addr := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "consent")
	kafkatest.CreateCompactedTopic(t, addr, topic, 2)
	var msgs []kafka.Message
	for i := 0; i < 20_000; i++ {
		msgs = append(msgs, msg(UserKey("T1", fmt.Sprint("U", i)), []string{`{"default":"allow"}`, `{"default":"deny"}`}[i%2]))
	}
	kafkatest.Produce(t, addr, topic, kafka.Lz4, msgs...)
	all := kafkatest.ReadAll(t, addr, topic, 30*time.Second)

	gate := make(chan struct{})
	first := make(chan struct{})
	var once sync.Once
	cfg := Config{FetchMaxBytes: 16 << 10, RetryBackoff: Duration(50 * time.Millisecond), MaxRetryBackoff: Duration(500 * time.Millisecond)}
	l, tb := startLoader(t, addr, topic, cfg, optIn, WithOnChange(func(c Change) {
		once.Do(func() { close(first); <-gate })
	}))
	<-first
	kafkatest.StopBroker(t)
	close(gate)
	time.Sleep(time.Second)
	if l.Ready() {
		t.Fatal("ready while the broker is down and loading was not finished")
	}
	kafkatest.StartStoppedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := l.WaitReady(ctx); err != nil {
		t.Fatalf("WaitReady after broker restart: %v (positions %v, stats %+v)", err, tb.Positions(), l.Stats())
	}
	expectTable(t, tb, all)
	t.Logf("stats after restart: %+v", l.Stats())
	if l.Stats().Reconnects == 0 {
		t.Error("no reconnects counted")
	}
	// Tailing works after the restart.
	kafkatest.Produce(t, addr, topic, kafka.Lz4, msg(UserKey("T1", "U0"), `{"default":"deny"}`))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if d, _ := tb.Decide("T1", "U0", "chat"); d.Level == LevelDeny {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("update after restart not applied")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoaderMissingTopicRetries(t *testing.T) {
	addr := kafkatest.Brokers(t)
	topic := kafkatest.Topic(t, "consent")
	l, _ := startLoader(t, addr, topic, Config{RetryBackoff: Duration(20 * time.Millisecond)}, optIn)
	time.Sleep(300 * time.Millisecond)
	if l.Ready() || l.State() != StateConnecting {
		t.Fatalf("state %v on a missing topic", l.State())
	}
	// Created late: the loader gets there.
	kafkatest.CreateCompactedTopic(t, addr, topic, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		paths []string
	}{
		{"zero value needs topic", Config{}, []string{"topic"}},
		{"defaults", Config{Topic: "consent"}, nil},
		{"negative", Config{Topic: "c", MaxStaleness: -1, FetchMaxBytes: -1}, []string{"max_staleness", "fetch_max_bytes"}},
		{"poll above staleness", Config{Topic: "c", PollInterval: Duration(2 * time.Second)}, []string{"poll_interval"}},
		{"watchdog below max wait", Config{Topic: "c", WatchdogTimeout: Duration(100 * time.Millisecond)}, []string{"watchdog_timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.cfg.Validate()
			var paths []string
			for _, e := range errs {
				paths = append(paths, e.Path)
			}
			if fmt.Sprint(paths) != fmt.Sprint(tc.paths) {
				t.Fatalf("Validate paths = %v, want %v (%v)", paths, tc.paths, errs)
			}
		})
	}
	c := Config{Topic: "c"}
	if c.MaxStalenessOrDefault() != time.Second || c.PollIntervalOrDefault() != 200*time.Millisecond || c.MaxStaleness != 0 {
		t.Fatal("defaults")
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1.5s")); err != nil || d.D() != 1500*time.Millisecond {
		t.Fatal(d, err)
	}
	if err := d.UnmarshalText([]byte("1")); err == nil {
		t.Fatal("want error for a duration without unit")
	}
	if err := d.UnmarshalYAML(func(v any) error { *v.(*string) = "200ms"; return nil }); err != nil || d.D() != 200*time.Millisecond {
		t.Fatal(d, err)
	}
}
