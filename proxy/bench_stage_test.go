package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/tidwall/gjson"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

// BenchmarkStageVsPlainCopy measures, on the real broker and in one run,
// the stage's end-to-end throughput on ~1 KB chat events with PII (every
// event anonymized, the costliest level) against a plain copy of the same
// topics through the very same fetch, produce (RequireAll) and commit path
// with no processing. b.N events are produced first; the rate is b.N over
// the span of the output's broker append times, so group joins and
// start-up are not measured. Run it with a fixed count:
//
//	go test -run '^$' -bench StageVsPlainCopy -benchtime 200000x ./proxy/
func BenchmarkStageVsPlainCopy(b *testing.B) {
	addr := kafkatest.Brokers(b)
	events := benchEvents(b)
	for _, mode := range []string{"copy", "stage"} {
		b.Run(mode, func(b *testing.B) {
			b.Setenv("ANONPROXY_HMAC_KEY", "k1:bench-key-0123456789abcdef0123")
			b.Setenv("ANONPROXY_BROKERS", "")
			cfg, err := config.Load("../configs/example.yaml")
			if err != nil {
				b.Fatal(err)
			}
			cfg.PrefixTopics(kafkatest.Topic(b, "bench-"+mode))
			cfg.Kafka.Brokers = []string{addr}
			chat, _ := cfg.Stream("chat")
			kafkatest.CreateCompactedTopic(b, addr, cfg.Consent.Topic, 1)
			kafkatest.CreateTopic(b, addr, chat.Input, 3, nil)
			kafkatest.CreateTopic(b, addr, chat.Output, 3, map[string]string{"message.timestamp.type": "LogAppendTime"})
			for _, t := range []string{cfg.Stage.QuarantineTopic, cfg.Stage.AuditTopic} {
				kafkatest.CreateTopic(b, addr, t, 1, nil)
			}
			cfg.Streams = []proxy.StreamConfig{*chat}
			var seed []kafka.Message
			for t := range 8 {
				seed = append(seed, kafka.Message{Key: []byte(consent.TenantKey("T" + strconv.Itoa(t))), Value: []byte(`{"default":"anonymized"}`)})
			}
			kafkatest.Produce(b, addr, cfg.Consent.Topic, kafka.Zstd, seed...)
			produceN(b, addr, chat.Input, events, b.N)

			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			app, err := wire.Build(cfg, log, nil)
			if err != nil {
				b.Fatal(err)
			}
			stage := app.Stage
			if mode == "copy" {
				clients, _ := cfg.Kafka.Connect()
				stage, err = proxy.NewStage(proxy.StageOptions{Config: &cfg.Stage, Clients: clients,
					Processor: plainCopy{in: chat.Input, out: chat.Output}, Consent: app.Loader, Logger: log})
				if err != nil {
					b.Fatal(err)
				}
			}
			os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // reset the peak RSS
			ctx, cancel := context.WithCancel(context.Background())
			lctx, stopLoader := context.WithCancel(context.Background())
			go app.Loader.Run(lctx)
			done := make(chan error, 1)
			b.ResetTimer()
			cpu0, machine0 := processCPU(), machineCPU()
			go func() { done <- stage.Run(ctx) }()
			waitOutput(b, addr, chat.Output, int64(b.N), 5*time.Minute)
			b.StopTimer()
			cpu, machine := processCPU()-cpu0, machineCPU()-machine0
			cancel()
			<-done
			stopLoader()
			span := appendSpan(b, addr, chat.Output)
			b.ReportMetric(float64(b.N)/span.Seconds(), "events/s")
			b.ReportMetric(float64(peakRSS()), "peak-RSS-MB")
			// CPU per event: of this process (the stage or the copy, with
			// its consent loader) and of the whole machine (the broker too).
			// On two shared cores both modes are CPU-bound, so the ratio of
			// the machine figures is what bounds the ratio of events/s.
			b.ReportMetric(cpu.Seconds()*1e6/float64(b.N), "proc-cpu-µs/event")
			b.ReportMetric(machine.Seconds()*1e6/float64(b.N), "machine-cpu-µs/event")
			b.SetBytes(int64(len(events[0])))
		})
	}
}

// plainCopy forwards every record unchanged to the output topic.
type plainCopy struct{ in, out string }

func (c plainCopy) Process(b *proxy.Batch, msgs []kafka.Message) error {
	b.Out, b.Outcomes, b.Reasons = b.Out[:0], b.Outcomes[:0], b.Reasons[:0]
	for i := range msgs {
		b.Out = append(b.Out, kafka.Message{Topic: c.out, Key: msgs[i].Key, Value: msgs[i].Value})
		b.Outcomes = append(b.Outcomes, proxy.Forwarded)
		b.Reasons = append(b.Reasons, "")
	}
	return nil
}
func (c plainCopy) InputTopics() []string  { return []string{c.in} }
func (c plainCopy) StreamOf(string) string { return "copy" }

func benchEvents(b *testing.B) [][]byte {
	f, err := os.Open("../redact/testdata/bench/chat.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// Spread the events over the 8 tenants that have consent records.
		line := strings.Replace(sc.Text(), `"tenant_id":"`+gjson.Get(sc.Text(), "tenant_id").Str+`"`,
			fmt.Sprintf(`"tenant_id":"T%d"`, len(out)%8), 1)
		out = append(out, []byte(line))
	}
	return out
}

func produceN(b *testing.B, addr, topic string, events [][]byte, n int) {
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.RoundRobin{}, RequiredAcks: kafka.RequireAll,
		Compression: kafka.Lz4, BatchSize: 5000, BatchBytes: 8 << 20, BatchTimeout: 10 * time.Millisecond}
	defer w.Close()
	batch := make([]kafka.Message, 0, 5000)
	for i := 0; i < n; i++ {
		batch = append(batch, kafka.Message{Key: []byte(strconv.Itoa(i)), Value: events[i%len(events)]})
		if len(batch) == cap(batch) || i == n-1 {
			if err := w.WriteMessages(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

func waitOutput(b *testing.B, addr, topic string, n int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		_, end, err := kafkatest.Offsets(context.Background(), addr, topic)
		if err == nil {
			var sum int64
			for _, e := range end {
				sum += e
			}
			if sum >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("output has fewer than %d records after %s", n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appendSpan is the time between the first and the last record appended to
// topic, from the broker's LogAppendTime timestamps.
func appendSpan(b *testing.B, addr, topic string) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, end, err := kafkatest.Offsets(ctx, addr, topic)
	if err != nil {
		b.Fatal(err)
	}
	var first, last time.Time
	for p, e := range end {
		if e == 0 {
			continue
		}
		for _, off := range []int64{0, e - 1} {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
			r.SetOffset(off)
			m, err := r.FetchMessage(ctx)
			r.Close()
			if err != nil {
				b.Fatal(err)
			}
			if first.IsZero() || m.Time.Before(first) {
				first = m.Time
			}
			if m.Time.After(last) {
				last = m.Time
			}
		}
	}
	return last.Sub(first)
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the CPU time all cores have spent busy (not idle, not
// waiting for I/O) since boot, from /proc/stat.
func machineCPU() time.Duration {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var busy int64
	for k := 1; k < len(f) && k <= 7; k++ { // not steal
		if k == 4 || k == 5 {
			continue // idle, iowait
		}
		v, _ := strconv.ParseInt(f[k], 10, 64)
		busy += v
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ is 100 on Linux
}

// peakRSS is the process's peak resident set in MiB since the last reset.
func peakRSS() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(l)[1])
			return kb / 1024
		}
	}
	return 0
}
