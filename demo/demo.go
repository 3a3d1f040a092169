package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/configs"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

// Options configure a demo run. The zero value runs 20 s at 400 events/s.
type Options struct {
	// Duration of synthetic traffic. Default: 20s. At most 5m.
	Duration time.Duration
	// Rate of synthetic events per second, over the three streams. Default: 400.
	Rate int
	// Listen is the broker's address. Default: 127.0.0.1 on a free port.
	Listen int
	// Keep leaves the broker (with every topic and record) listening after
	// the summary until ctx is cancelled, for kcat or `anonproxy run`.
	Keep bool
	// Color marks changed spans with ANSI colour instead of ⟦ ⟧.
	Color bool
	// Logger receives the stage's logs. Default: discarded.
	Logger *slog.Logger
}

// Summary is what a demo run measured; Run also prints it.
type Summary struct {
	Broker              string
	Produced            int
	In                  int
	ForwardedAllow      int
	ForwardedAnonymized int
	Denied              int
	Quarantined         int
	Redactions          map[string]int
	Elapsed             time.Duration
	// OptOutApplied is the time from the broker's acknowledgement of the
	// opt-out to the consent table applying it.
	OptOutApplied time.Duration
	OptOutSeen    bool
	// ForwardedAfterOptOut counts events of the opted-out user forwarded
	// although produced after the acknowledgement plus the staleness bound
	// (must be 0).
	ForwardedAfterOptOut int
}

// Accounted reports whether every consumed event was forwarded, denied or quarantined.
func (s *Summary) Accounted() bool {
	return s.In == s.Produced && s.ForwardedAllow+s.ForwardedAnonymized+s.Denied+s.Quarantined == s.In
}

// Run runs the demo, printing to out.
func Run(ctx context.Context, o Options, out io.Writer) (*Summary, error) {
	if o.Duration <= 0 {
		o.Duration = 20 * time.Second
	}
	if o.Duration > 5*time.Minute {
		return nil, errors.New("demo: duration is at most 5m")
	}
	if o.Rate <= 0 {
		o.Rate = 400
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if o.Listen > 0 {
		opts = append(opts, kfake.Ports(o.Listen))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("demo: embedded broker: %w", err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]

	cfg, err := config.Parse(configs.Example)
	if err != nil {
		return nil, fmt.Errorf("demo: reference config: %w", err)
	}
	cfg.Kafka.Brokers = []string{addr}
	cfg.Stage.FetchMaxWait = proxy.Duration(50 * time.Millisecond)
	fmt.Fprintf(out, "anonproxy demo: embedded Kafka-protocol broker on %s, reference config (configs/example.yaml)\n", addr)
	if err := createTopics(addr, cfg); err != nil {
		return nil, err
	}

	// Consent first: the stage reads nothing before its table has caught up.
	w := &kafka.Writer{Addr: kafka.TCP(addr), Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond, BatchSize: 10000}
	defer w.Close()
	var seed []kafka.Message
	fmt.Fprintln(out, "\nConsent records (topic consent):")
	for _, kv := range seedConsent() {
		seed = append(seed, kafka.Message{Topic: cfg.Consent.Topic, Key: []byte(kv[0]), Value: []byte(kv[1])})
		fmt.Fprintf(out, "  %-16s %s\n", kv[0], kv[1])
	}
	fmt.Fprintf(out, "  (no record)      umbrella and its users: the configured default, deny (opt-in)\n")
	if err := w.WriteMessages(ctx, seed...); err != nil {
		return nil, fmt.Errorf("demo: seed consent: %w", err)
	}

	optOutKey := consent.UserKey(optOut.tenant, optOut.user)
	var (
		mu        sync.Mutex
		appliedAt time.Time
	)
	app, err := wire.Build(cfg, o.Logger, func(c consent.Change) {
		if c.Key == optOutKey && !c.CatchingUp {
			mu.Lock()
			appliedAt = c.Applied
			mu.Unlock()
		}
	})
	if err != nil {
		return nil, err
	}
	sctx, stopStage := context.WithCancel(ctx)
	defer stopStage()
	stageDone := make(chan error, 1)
	go func() { stageDone <- app.Run(sctx, 30*time.Second) }()
	if err := waitFor(ctx, 30*time.Second, app.Stage.Ready); err != nil {
		return nil, fmt.Errorf("demo: stage not ready: %w", err)
	}

	fmt.Fprintf(out, "\nSending %d events/s for %s through the stage (dave of acme opts out halfway)...\n", o.Rate, o.Duration)
	start := time.Now()
	p, err := produce(ctx, w, cfg, o, optOutKey)
	if err != nil {
		return nil, err
	}
	// Drain: wait until the stage has consumed everything produced.
	sum := &Summary{Broker: addr, Produced: p.produced}
	_ = waitFor(ctx, 60*time.Second, func() bool { readMetrics(app.Metrics, sum); return sum.In >= sum.Produced })
	stopStage()
	if err := <-stageDone; err != nil {
		return nil, fmt.Errorf("demo: stage: %w", err)
	}
	readMetrics(app.Metrics, sum)
	sum.Elapsed = time.Since(start)
	mu.Lock()
	if !appliedAt.IsZero() {
		// The table may apply the record before the producer has read the
		// broker's acknowledgement: that counts as zero.
		sum.OptOutSeen, sum.OptOutApplied = true, max(appliedAt.Sub(p.optOutAck), 0)
	}
	mu.Unlock()

	samples, err := collectSamples(ctx, addr, cfg, p, sum)
	if err != nil {
		return nil, err
	}
	printSummary(out, sum, cfg, p)
	printSamples(out, samples, o.Color)
	if o.Keep {
		fmt.Fprintf(out, "\nThe broker stays up on %s until Ctrl-C. Try:\n  kcat -b %s -C -t train.chat -o beginning -e -f '%%h\\n%%s\\n\\n'\n", addr, addr)
		<-ctx.Done()
	}
	return sum, nil
}

func createTopics(addr string, cfg *config.File) error {
	for _, s := range cfg.Streams {
		for _, t := range []string{s.Input, s.Output} {
			if err := kafkatest.CreateTopicErr(addr, t, 3, nil); err != nil {
				return fmt.Errorf("demo: create %s: %w", t, err)
			}
		}
	}
	for _, t := range []string{cfg.Stage.QuarantineTopic, cfg.Stage.AuditTopic} {
		if err := kafkatest.CreateTopicErr(addr, t, 1, nil); err != nil {
			return fmt.Errorf("demo: create %s: %w", t, err)
		}
	}
	if err := kafkatest.CreateTopicErr(addr, cfg.Consent.Topic, 3, map[string]string{"cleanup.policy": "compact"}); err != nil {
		return fmt.Errorf("demo: create %s: %w", cfg.Consent.Topic, err)
	}
	return nil
}

// produced is what the generator sent.
type produced struct {
	produced  int
	optOutAck time.Time
	// afterBound are ids of opted-out-user events produced after the
	// acknowledgement plus the staleness bound: none may be forwarded.
	afterBound map[string]bool
}

func produce(ctx context.Context, w *kafka.Writer, cfg *config.File, o Options, optOutKey string) (*produced, error) {
	topics := map[string]string{}
	for _, s := range cfg.Streams {
		topics[s.Name] = s.Input
	}
	r := rand.New(rand.NewPCG(42, 7))
	p := &produced{afterBound: map[string]bool{}}
	const tick = 50 * time.Millisecond
	perTick := max(1, o.Rate*int(tick)/int(time.Second))
	bound := cfg.Consent.MaxStalenessOrDefault() + time.Second // staleness plus one batch
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	msgs := make([]kafka.Message, 0, perTick)
	for n := 0; time.Since(start) < o.Duration; {
		if p.optOutAck.IsZero() && time.Since(start) >= o.Duration/2 {
			err := w.WriteMessages(ctx, kafka.Message{Topic: cfg.Consent.Topic, Key: []byte(optOutKey),
				Value: []byte(`{"default":"deny","updated_by":"user:dave","updated_at":"` + time.Now().UTC().Format(time.RFC3339) + `"}`)})
			if err != nil {
				return nil, fmt.Errorf("demo: opt-out: %w", err)
			}
			p.optOutAck = time.Now()
		}
		afterBound := !p.optOutAck.IsZero() && time.Since(p.optOutAck) > bound
		msgs = msgs[:0]
		for i := 0; i < perTick; i++ {
			s := subjects[r.IntN(len(subjects))]
			stream, key, value := event(r, n, s)
			if afterBound && s == optOut {
				p.afterBound[fmt.Sprintf("demo-%06d", n)] = true
			}
			msgs = append(msgs, kafka.Message{Topic: topics[stream], Key: key, Value: value})
			n++
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return nil, fmt.Errorf("demo: produce: %w", err)
		}
		p.produced += len(msgs)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return p, nil
}

func waitFor(ctx context.Context, d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// readMetrics fills the summary's counters from the stage's own metrics.
func readMetrics(m *proxy.Metrics, s *Summary) {
	fams, err := m.Registry.Gather()
	if err != nil {
		return
	}
	s.In, s.ForwardedAllow, s.ForwardedAnonymized, s.Denied, s.Quarantined = 0, 0, 0, 0, 0
	s.Redactions = map[string]int{}
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			v := int(mt.GetCounter().GetValue())
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "anonproxy_events_in_total":
				s.In += v
			case "anonproxy_events_forwarded_total":
				if labels["decision"] == "allow" {
					s.ForwardedAllow += v
				} else {
					s.ForwardedAnonymized += v
				}
			case "anonproxy_events_denied_total":
				s.Denied += v
			case "anonproxy_events_quarantined_total":
				s.Quarantined += v
			case "anonproxy_redactions_total":
				s.Redactions[labels["kind"]+" "+labels["name"]] += v
			}
		}
	}
}

func printSummary(out io.Writer, s *Summary, cfg *config.File, p *produced) {
	fmt.Fprintln(out, "\nSummary")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "  %s\t%8v\n", k, v) }
	row("events in", s.In)
	row("forwarded as allow (always-on scrubbing only)", s.ForwardedAllow)
	row("forwarded anonymized", s.ForwardedAnonymized)
	row("denied (audit record, nothing forwarded)", s.Denied)
	row("quarantined (malformed)", s.Quarantined)
	row("throughput (events/s, from first event to drained)", fmt.Sprintf("%.0f", float64(s.In)/s.Elapsed.Seconds()))
	tw.Flush()
	if !s.Accounted() {
		fmt.Fprintf(out, "  WARNING: %d produced, %d consumed, %d accounted for\n", s.Produced, s.In,
			s.ForwardedAllow+s.ForwardedAnonymized+s.Denied+s.Quarantined)
	}
	fmt.Fprintln(out, "\nRedactions by detector and action")
	var names []string
	for k, v := range s.Redactions {
		if v > 0 {
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool { return s.Redactions[names[i]] > s.Redactions[names[j]] })
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, k := range names {
		fmt.Fprintf(tw, "  %s\t%8d\n", k, s.Redactions[k])
	}
	tw.Flush()
	fmt.Fprintln(out, "\nLive opt-out: dave of acme (tenant: allow) set his consent to deny halfway through")
	if s.OptOutSeen {
		fmt.Fprintf(out, "  took effect %s after the broker acknowledged it (bound: consent.max_staleness = %s, plus one batch)\n",
			s.OptOutApplied.Round(time.Millisecond), cfg.Consent.MaxStalenessOrDefault())
	} else {
		fmt.Fprintln(out, "  the consent table did not report applying it")
	}
	fmt.Fprintf(out, "  dave's events produced after that bound: %d, forwarded: %d\n", len(p.afterBound), s.ForwardedAfterOptOut)
}
