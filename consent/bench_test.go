package consent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/segmentio/kafka-go"
)

// benchTable is a ready table of n user subjects spread over n/20 tenants,
// a tenth of the tenants with a tenant record, and the ids to look up: three
// quarters existing users, one quarter unknown.
func benchTable(b *testing.B, n int) (*Table, [][2]string) {
	tb := NewTable(optOut, "chat", "files", "messages")
	vals := [][]byte{
		[]byte(`{"default":"allow"}`),
		[]byte(`{"default":"anonymized","categories":{"chat":"deny"}}`),
		[]byte(`{"default":"deny","categories":{"files":"allow"}}`),
	}
	var kb []byte
	for i := 0; i < n; i++ {
		kb = appendUserKey(kb[:0], fmt.Sprintf("T%06d", i%(n/20)), fmt.Sprintf("U%09d", i))
		tb.Apply(kb, vals[i%3], i%8, int64(i))
	}
	for i := 0; i < n/20; i += 10 {
		tb.Apply(appendTenantKey(kb[:0], fmt.Sprintf("T%06d", i)), vals[(i/10)%3], 0, int64(n+i))
	}
	tb.MarkReady()
	return tb, benchIDs(n, n*4/3)
}

// benchIDs returns ids of users drawn uniformly from the first set of a table
// of n subjects (ids ≥ n do not exist).
func benchIDs(n, set int) [][2]string {
	ids := make([][2]string, 1<<16)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range ids {
		u := r.IntN(set)
		ids[i] = [2]string{fmt.Sprintf("T%06d", u%(n/20)), fmt.Sprintf("U%09d", u)}
	}
	return ids
}

var benchSink Decision

// BenchmarkDecide measures lookups in a table of 1 M subjects: each op is one
// Decide (tenant lookup + user lookup + composition).
func BenchmarkDecide(b *testing.B) {
	small, smallIDs := benchTable(b, 10_000)
	b.Run("table-10k/parallel", func(b *testing.B) {
		b.ReportAllocs()
		start, cpu0 := time.Now(), cpuTime()
		var seed atomicCounter
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.add(7919))
			for pb.Next() {
				id := &smallIDs[i&(len(smallIDs)-1)]
				small.Decide(id[0], id[1], "chat")
				i++
			}
		})
		reportLookups(b, start, cpu0)
	})
	// Baseline for table-10k: the same work with a Go map[string] of the
	// same keys, both keys built per Decide as a map needs them.
	b.Run("baseline-map-10k/parallel", func(b *testing.B) {
		m := make(map[string]Level, 10_000)
		for i := 0; i < 10_000; i++ {
			m[UserKey(fmt.Sprintf("T%06d", i%500), fmt.Sprintf("U%09d", i))] = Level(i % 3)
		}
		for i := 0; i < 500; i += 10 {
			m[TenantKey(fmt.Sprintf("T%06d", i))] = Level(i % 3)
		}
		b.ReportAllocs()
		start, cpu0 := time.Now(), cpuTime()
		var seed atomicCounter
		b.RunParallel(func(pb *testing.PB) {
			i := int(seed.add(7919))
			var buf [256]byte
			var l Level
			for pb.Next() {
				id := &smallIDs[i&(len(smallIDs)-1)]
				tk := appendTenantKey(buf[:0], id[0])
				l += m[string(tk)]
				l += m[string(appendUserKey(buf[len(tk):len(tk)], id[0], id[1]))]
				i++
			}
			_ = l
		})
		reportLookups(b, start, cpu0)
	})
	tb, ids := benchTable(b, 1_000_000)
	cats := []string{"chat", "files", "telemetry"}
	for _, ws := range []struct {
		name string
		ids  [][2]string
	}{{"hot-10k", benchIDs(1_000_000, 10_000)}, {"uniform-1M", ids}} {
		b.Run(ws.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			start, cpu0 := time.Now(), cpuTime()
			var d Decision
			for i := 0; b.Loop(); i++ {
				id := &ws.ids[i&(len(ws.ids)-1)]
				d, _ = tb.Decide(id[0], id[1], cats[i%3])
			}
			benchSink = d
			reportLookups(b, start, cpu0)
		})
		b.Run(ws.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			start, cpu0 := time.Now(), cpuTime()
			var seed atomicCounter
			b.RunParallel(func(pb *testing.PB) {
				i := int(seed.add(7919))
				var d Decision
				for pb.Next() {
					id := &ws.ids[i&(len(ws.ids)-1)]
					d, _ = tb.Decide(id[0], id[1], cats[i%3])
					i++
				}
				_ = d
			})
			reportLookups(b, start, cpu0)
		})
	}
	// Baseline: a Go map[string] of the same keys, one lookup per op, with
	// the key built per lookup as the stage would have to.
	b.Run("baseline-map-parallel", func(b *testing.B) {
		m := make(map[string]Level, 1_000_000)
		for i := 0; i < 1_000_000; i++ {
			m[UserKey(fmt.Sprintf("T%06d", i%50_000), fmt.Sprintf("U%09d", i))] = Level(i % 3)
		}
		b.ReportAllocs()
		b.ResetTimer()
		start, cpu0 := time.Now(), cpuTime()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			var buf [256]byte
			var l Level
			for pb.Next() {
				id := &ids[i&(len(ids)-1)]
				k := appendUserKey(buf[:0], id[0], id[1])
				l += m[string(k)]
				i++
			}
			_ = l
		})
		reportLookups(b, start, cpu0)
	})
}

type atomicCounter struct {
	mu sync.Mutex
	n  int64
}

func (c *atomicCounter) add(d int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
	return c.n
}

// BenchmarkTableMemory reports heap bytes per subject beyond the key bytes
// at 1 M and 10 M subjects (the 10 M case needs ~2 GB and a minute).
func BenchmarkTableMemory(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("%dM", n/1_000_000), func(b *testing.B) {
			var per, key float64
			for b.Loop() {
				per, key = measureTableMemory(b, n)
			}
			b.ReportMetric(per, "B/subject")
			b.ReportMetric(key, "keyB/subject")
		})
	}
}

const (
	benchRecords    = 1_000_000
	benchPartitions = 4
	benchTopic      = "consent.bench.1M.zstd.v1"
)

// benchConsentTopic returns a topic with 1 M consent records of ~150 bytes
// (key + value), zstd, 4 partitions; it is created once and reused by later
// runs against the same broker.
func benchConsentTopic(b *testing.B, addr string) (topic string, records int64) {
	ctx := context.Background()
	if _, end, err := kafkatest.Offsets(ctx, addr, benchTopic); err == nil {
		var n int64
		for _, e := range end {
			n += e
		}
		if n >= benchRecords {
			return benchTopic, n
		}
	}
	kafkatest.CreateCompactedTopic(b, addr, benchTopic, benchPartitions)
	w := &kafka.Writer{
		Addr: kafka.TCP(addr), Topic: benchTopic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, Compression: kafka.Zstd,
		BatchSize: 5000, BatchBytes: 16 << 20, BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	levels := []string{"deny", "anonymized", "allow"}
	msgs := make([]kafka.Message, 0, 50_000)
	for i := 0; i < benchRecords; i++ {
		v := fmt.Sprintf(`{"default":"%s","categories":{"chat":"%s","files":"%s"},"updated_at":"2026-11-22T10:%02d:%02dZ","updated_by":"admin:U%06d"}`,
			levels[i%3], levels[(i/3)%3], levels[(i/9)%3], i/60%60, i%60, i%1_000_000)
		msgs = append(msgs, kafka.Message{Key: []byte(UserKey(fmt.Sprintf("T%05d", i%20_000), fmt.Sprintf("U%08d", i))), Value: []byte(v)})
		if len(msgs) == cap(msgs) {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		b.Fatal(err)
	}
	return benchTopic, benchRecords
}

// BenchmarkBootstrap loads 1 M consent records from the real broker into a
// table until ready, next to a plain kafka-go read of the same topic (one
// kafka.Reader per partition, concurrently, until the end offsets). Needs
// ANONPROXY_TEST_BROKERS; the first run against a broker produces the topic.
func BenchmarkBootstrap(b *testing.B) {
	if os.Getenv(kafkatest.EnvBrokers) == "" {
		b.Skip(kafkatest.EnvBrokers + " not set")
	}
	addr := kafkatest.Brokers(b)
	topic, n := benchConsentTopic(b, addr)
	b.Run("kafka-go-reader", func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			plainRead(b, addr, topic)
		}
		reportRecords(b, n, cpu0)
	})
	b.Run("kafka-go-conn-batch", func(b *testing.B) {
		cpu0 := cpuTime()
		for b.Loop() {
			connRead(b, addr, topic)
		}
		reportRecords(b, n, cpu0)
	})
	b.Run("loader", func(b *testing.B) {
		var tb *Table
		cpu0 := cpuTime()
		for b.Loop() {
			tb = NewTable(optIn, "chat", "files", "messages")
			l, err := NewLoader([]string{addr}, nil, Config{Topic: topic}, tb, WithLogger(testLogger(b)))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			if err := l.WaitReady(ctx); err != nil {
				b.Fatal(err)
			}
			cancel()
			<-done
		}
		reportRecords(b, n, cpu0)
		if tb.Len() != int(n) {
			b.Fatalf("table has %d subjects, want %d", tb.Len(), n)
		}
	})
}

func plainRead(b *testing.B, addr, topic string) {
	ctx := context.Background()
	_, end, err := kafkatest.Offsets(ctx, addr, topic)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for p, e := range end {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p,
				MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				if m.Offset+1 >= e {
					return
				}
			}
		}()
	}
	wg.Wait()
}

func connRead(b *testing.B, addr, topic string) {
	ctx := context.Background()
	_, end, err := kafkatest.Offsets(ctx, addr, topic)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for p, e := range end {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
			if err != nil {
				b.Error(err)
				return
			}
			defer conn.Close()
			for pos := int64(0); pos < e; {
				conn.Seek(pos, kafka.SeekAbsolute|kafka.SeekDontCheck)
				batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 200 * time.Millisecond})
				for {
					if _, err := batch.ReadMessage(); err != nil {
						break
					}
				}
				if err := batch.Close(); err != nil && !errors.Is(err, io.EOF) {
					b.Error(err)
					return
				}
				pos = batch.Offset()
			}
		}()
	}
	wg.Wait()
}

// cpuTime returns the process's user+system CPU time. On a shared machine
// the wall-clock rate understates capacity; CPU time per lookup does not.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportLookups reports the wall-clock lookup rate, the CPU time per lookup
// and the rate that implies for two fully available cores.
func reportLookups(b *testing.B, start time.Time, cpu0 time.Duration) {
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(b.N)/wall.Seconds()/1e6, "Mlookups/s")
	perOp := float64(cpu.Nanoseconds()) / float64(b.N)
	b.ReportMetric(perOp, "cpu-ns/lookup")
	b.ReportMetric(2*1e3/perOp, "Mlookups/s@2cores")
}

// reportRecords reports the wall-clock record rate and the CPU time per
// record (broker excluded: it is another process).
func reportRecords(b *testing.B, n int64, cpu0 time.Duration) {
	recs := float64(n) * float64(b.N)
	b.ReportMetric(recs/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/recs, "cpu-ns/record")
}
