package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/segmentio/kafka-go"
)

// feed kinds for the oracle goroutine.
const (
	feedInput = iota
	feedOutput
	feedQuarantine
	feedAudit
	feedExpected
)

type feedItem struct {
	kind   int
	stream int
	msg    kafka.Message
	n      int64
}

// Run executes one load test: it creates the topics (unless told not to),
// seeds consent, starts the stage instances (or the baseline copy), writes
// traffic and consent churn for the configured duration or event count,
// waits until the oracle has accounted for every input or DrainTimeout
// passes, stops the stages, and returns the report (also written to
// OutDir when set).
//
// The returned error is for runs that could not be carried out (bad config,
// broker unreachable, a write that failed); a run that was carried out and
// found violations returns a Report with Passed false and a nil error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	runID := strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond)%(1<<32), 36)
	tp := cfg.Topics
	brokers := cfg.Brokers
	addr := brokers[0]

	if !cfg.SkipCreateTopics {
		logAppend := map[string]string{"message.timestamp.type": "LogAppendTime"}
		all := append(append([]string{tp.Quarantine, tp.Audit}, tp.Inputs[:]...), tp.Outputs[:]...)
		for _, t := range all {
			if err := kafkatest.CreateTopicErr(addr, t, cfg.Partitions, logAppend); err != nil {
				return nil, fmt.Errorf("loadtest: create topic %s: %w", t, err)
			}
		}
		if !cfg.Baseline {
			compact := map[string]string{"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"}
			if err := kafkatest.CreateTopicErr(addr, tp.Consent, cfg.Partitions, compact); err != nil {
				return nil, fmt.Errorf("loadtest: create topic %s: %w", tp.Consent, err)
			}
		}
	}

	// Start offsets: the oracle reads from here, the baseline group starts here.
	type topicRef struct {
		kind, stream int
		topic        string
	}
	var refs []topicRef
	for i := range 3 {
		refs = append(refs, topicRef{feedInput, i, tp.Inputs[i]}, topicRef{feedOutput, i, tp.Outputs[i]})
	}
	if !cfg.Baseline {
		refs = append(refs, topicRef{feedQuarantine, 0, tp.Quarantine}, topicRef{feedAudit, 0, tp.Audit})
	}
	starts := map[string]map[int]int64{}
	for _, r := range refs {
		end, err := endOffsets(ctx, addr, r.topic)
		if err != nil {
			return nil, fmt.Errorf("loadtest: offsets of %s: %w", r.topic, err)
		}
		starts[r.topic] = end
	}

	canaries := NewCanaries(cfg.Seed)
	gen := NewGenerator(runID, cfg.Seed, cfg.Tenants, cfg.UsersPerTenant, cfg.MalformedRatio, canaries)
	clog := NewConsentLog(cfg.defaultLevels())
	rep := &Report{RunID: runID, Mode: "stage", Settings: settingsOf(cfg, len(canaries))}
	if cfg.Baseline {
		rep.Mode = "baseline"
	}

	var ch *churner
	if !cfg.Baseline {
		ch = newChurner(brokers, tp.Consent, cfg.Seed, gen.Subjects, clog)
		defer ch.close()
		if err := ch.seed(ctx); err != nil {
			return nil, err
		}
	}

	// The oracle and its readers.
	feed := make(chan feedItem, 8192)
	rctx, stopReaders := context.WithCancel(ctx)
	defer stopReaders()
	var readers sync.WaitGroup
	readErr := make(chan error, 1)
	for _, r := range refs {
		for p, off := range starts[r.topic] {
			readers.Add(1)
			go func() {
				defer readers.Done()
				if err := readPartition(rctx, brokers, r.topic, p, off, r.kind, r.stream, feed); err != nil {
					select {
					case readErr <- err:
					default:
					}
				}
			}()
		}
	}

	var (
		genStart              = time.Now()
		orc                   = NewOracle(runID, tp, cfg.MaxStaleness+cfg.BatchAllowance, cfg.Baseline, gen, clog, genStart)
		accounted, inputsRead atomic.Int64
		drained               = make(chan struct{})
		oracleDone            = make(chan struct{})
	)
	for i, in := range tp.Inputs {
		for p, off := range starts[in] {
			orc.SetInputStart(i, p, off)
		}
	}
	go func() {
		defer close(oracleDone)
		closed := false
		for it := range feed {
			switch it.kind {
			case feedInput:
				orc.Input(it.stream, it.msg)
			case feedOutput:
				orc.Output(it.stream, it.msg)
			case feedQuarantine:
				orc.Quarantine(it.msg)
			case feedAudit:
				orc.Audit(it.msg)
			case feedExpected:
				orc.SetExpected(it.n)
			}
			in, acc := orc.Progress()
			inputsRead.Store(in)
			accounted.Store(acc)
			if !closed && orc.Done() {
				closed = true
				close(drained)
			}
		}
	}()

	// The stage.
	startStage := cfg.StartStage
	if cfg.Baseline {
		group := baselineGroup(runID)
		inStarts := map[string]map[int]int64{}
		for _, in := range tp.Inputs {
			inStarts[in] = starts[in]
		}
		if err := seedGroupOffsets(ctx, brokers, group, inStarts); err != nil {
			return nil, err
		}
		startStage = baselineStage(brokers, tp, group)
	}
	type instance struct {
		stop   func() error
		cancel context.CancelFunc
		killed bool
		err    error
		done   chan struct{}
	}
	var instances []*instance
	stopAll := func() {
		for _, in := range instances {
			if in.killed {
				<-in.done
				continue
			}
			if in.stop != nil {
				in.err = in.stop()
			}
			in.cancel()
		}
	}
	if startStage != nil {
		for i := range cfg.Instances {
			sctx, cancel := context.WithCancel(ctx)
			stop, err := startStage(sctx, StageInstance{Index: i, Count: cfg.Instances})
			inst := &instance{stop: stop, cancel: cancel, done: make(chan struct{})}
			if err != nil {
				cancel()
				stopAll()
				return nil, fmt.Errorf("loadtest: start stage instance %d: %w", i, err)
			}
			instances = append(instances, inst)
		}
	}
	kill := func() {
		if !cfg.KillOne || len(instances) == 0 {
			return
		}
		in := instances[0]
		in.killed = true
		in.cancel()
		go func() {
			defer close(in.done)
			if in.stop != nil {
				in.err = in.stop()
			}
		}()
	}

	// Progress.
	var generated atomic.Int64
	prog := newProgress(cfg, &generated, &accounted)
	defer prog.finish()

	// Generation and churn.
	genStart = time.Now()
	rep.Started = genStart
	gctx, stopGen := context.WithCancel(ctx)
	if cfg.Duration > 0 {
		gctx, stopGen = context.WithTimeout(ctx, cfg.Duration)
	}
	var churnErr error
	var churnWG sync.WaitGroup
	if ch != nil {
		churnWG.Add(1)
		go func() {
			defer churnWG.Done()
			churnErr = ch.run(gctx, cfg.ChurnRate)
		}()
	}
	genErr := produce(gctx, cfg, gen, &generated, kill)
	stopGen()
	churnWG.Wait()
	rep.GenerationEnded = time.Now()
	if err := errors.Join(genErr, churnErr); err != nil {
		stopAll()
		stopReaders()
		return nil, err
	}
	n := int64(gen.Ledger.Len())
	prog.setMax(n)
	feed <- feedItem{kind: feedExpected, n: n}

	// Drain.
	drainT := time.NewTimer(cfg.DrainTimeout)
	select {
	case <-drained:
		rep.Drained = true
	case <-drainT.C:
	case err := <-readErr:
		stopAll()
		stopReaders()
		return nil, err
	case <-ctx.Done():
	}
	drainT.Stop()
	stopAll()
	stopReaders()
	readers.Wait()
	close(feed)
	<-oracleDone
	prog.finish()
	rep.Ended = time.Now()
	for i, in := range instances {
		sr := StageResult{Index: i, Killed: in.killed}
		if in.err != nil && !errors.Is(in.err, context.Canceled) {
			sr.Error = in.err.Error()
		}
		rep.Stages = append(rep.Stages, sr)
	}

	v := orc.Finish()
	fillReport(rep, v, clog, cfg)
	if cfg.OutDir != "" {
		if err := rep.WriteFiles(cfg.OutDir); err != nil {
			return rep, err
		}
	}
	return rep, ctx.Err()
}

// endOffsets reads a topic's end offsets, retrying while a new topic's
// leadership settles (Not Leader For Partition right after creation).
func endOffsets(ctx context.Context, addr, topic string) (map[int]int64, error) {
	var err error
	for range 25 {
		var end map[int]int64
		if _, end, err = kafkatest.Offsets(ctx, addr, topic); err == nil {
			return end, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil, err
}

func settingsOf(cfg Config, canaries int) Settings {
	return Settings{
		Brokers: cfg.Brokers, Topics: cfg.Topics, DurationSeconds: cfg.Duration.Seconds(), Events: cfg.Events,
		Rate: cfg.Rate, ChurnRate: cfg.ChurnRate, Tenants: cfg.Tenants, UsersPerTenant: cfg.UsersPerTenant,
		MalformedRatio: cfg.MalformedRatio, Seed: cfg.Seed,
		MaxStalenessMs: float64(cfg.MaxStaleness) / 1e6, BatchAllowanceMs: float64(cfg.BatchAllowance) / 1e6,
		Instances: cfg.Instances, KillOne: cfg.KillOne, Canaries: canaries,
	}
}

// fillReport turns the oracle's verdict into the report's sections.
func fillReport(rep *Report, v *Verdict, clog *ConsentLog, cfg Config) {
	rep.Counts = v.Counts
	rep.Violations, rep.Warnings, rep.Examples = v.Violations, v.Warnings, v.Examples
	rep.Latency = summarizeLatency(v.Latencies)
	rep.Propagation = summarizePropagation(v.Propagation, cfg.MaxStaleness+cfg.BatchAllowance)
	for _, w := range clog.Writes() {
		if w.seed {
			rep.Consent.Seeded++
			continue
		}
		if w.Uncertain {
			rep.Consent.Uncertain++
		}
		rep.Consent.Writes++
		if w.Value == nil {
			rep.Consent.Tombstones++
		}
		if w.Malformed {
			rep.Consent.Malformed++
		}
	}
	rep.Consent.Receipts = v.Receipts
	rep.Throughput = summarizeThroughput(v.Series, v.Counts.Expected, rep.GenerationEnded.Sub(rep.Started),
		v.FirstInput, v.LastOutcome, v.Counts.Forwarded+v.Counts.Denied+v.Counts.Quarantined)
	rep.judge()
}

// readPartition feeds every record of one partition from offset on until
// ctx is done. It rides out broker outages (a restart mid-run) by reopening
// the partition after the last record it fed, and gives up only when the
// partition has been unreadable for maxReadOutage.
func readPartition(ctx context.Context, brokers []string, topic string, partition int, offset int64, kind, stream int, feed chan<- feedItem) error {
	var failingSince time.Time
	for {
		next, err := readPartitionOnce(ctx, brokers, topic, partition, offset, kind, stream, feed)
		if err == nil || ctx.Err() != nil {
			return nil
		}
		if next > offset {
			offset, failingSince = next, time.Time{}
		}
		if failingSince.IsZero() {
			failingSince = time.Now()
		} else if time.Since(failingSince) > maxReadOutage {
			return fmt.Errorf("loadtest: read %s/%d: unreadable for %s: %w", topic, partition, maxReadOutage, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Broker outages the load test rides out: writes retry for about a minute
// (kafka-go backs off up to WriteBackoffMax between attempts), reads for
// maxReadOutage.
const (
	outageAttempts = 60
	maxReadOutage  = 2 * time.Minute
)

// readPartitionOnce feeds records from offset until ctx is done (nil) or the
// reader fails; it returns the offset after the last record fed.
func readPartitionOnce(ctx context.Context, brokers []string, topic string, partition int, offset int64, kind, stream int, feed chan<- feedItem) (int64, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, QueueCapacity: 1000,
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		return offset, err
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return offset, nil
			}
			return offset, err
		}
		select {
		case feed <- feedItem{kind: kind, stream: stream, msg: m}:
			offset = m.Offset + 1
		case <-ctx.Done():
			return offset, nil
		}
	}
}

// produce writes generated events until ctx is done or cfg.Events are
// written, at cfg.Rate when set. It calls half once, halfway through.
func produce(ctx context.Context, cfg Config, gen *Generator, generated *atomic.Int64, half func()) error {
	w := &kafka.Writer{
		Addr: kafka.TCP(cfg.Brokers...), Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchBytes: 16 << 20,
		BatchTimeout: 2 * time.Millisecond, WriteTimeout: 30 * time.Second,
		MaxAttempts: outageAttempts, WriteBackoffMax: time.Second, // ride out a broker restart
	}
	defer w.Close()
	batches := make(chan []kafka.Message, 2)
	var wg sync.WaitGroup
	var werr error
	var once sync.Once
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := w.WriteMessages(wctx, b...); err != nil {
					once.Do(func() { werr = fmt.Errorf("loadtest: produce %d events: %w", len(b), err); cancel() })
				}
				generated.Add(int64(len(b)))
			}
		}()
	}
	start := time.Now()
	var n int64
	halfDone := false
	const maxBatch = 500
	for ctx.Err() == nil && wctx.Err() == nil && (cfg.Events == 0 || n < cfg.Events) {
		due := int64(maxBatch)
		if cfg.Rate > 0 {
			due = int64(cfg.Rate*time.Since(start).Seconds()) - n
			if due <= 0 {
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Millisecond):
				}
				continue
			}
			due = min(due, maxBatch)
		}
		if cfg.Events > 0 {
			due = min(due, cfg.Events-n)
		}
		b := make([]kafka.Message, 0, due)
		now := time.Now()
		for range due {
			ev := gen.Next(now)
			b = append(b, kafka.Message{
				Topic: cfg.Topics.Inputs[ev.Stream], Key: ev.Key, Value: ev.Value, Time: now,
				Headers: []kafka.Header{{Key: HeaderRun, Value: []byte(gen.RunID)},
					{Key: HeaderSeq, Value: strconv.AppendUint(nil, ev.Seq, 10)}},
			})
		}
		n += due
		batches <- b
		if !halfDone && (cfg.Events > 0 && n >= cfg.Events/2 || cfg.Duration > 0 && time.Since(start) >= cfg.Duration/2) {
			halfDone = true
			half()
		}
	}
	close(batches)
	wg.Wait()
	return werr
}
