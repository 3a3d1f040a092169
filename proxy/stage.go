package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"

	"github.com/anonproxy/anonproxy/consent"
)

// Feed is what the stage needs of the consent loader: readiness (nothing is
// consumed before it) and staleness (processing pauses while it exceeds the
// configured bound). *consent.Loader implements it.
type Feed interface {
	Ready() bool
	WaitReady(ctx context.Context) error
	Staleness() time.Duration
}

// BatchProcessor turns one fetched batch of one input partition into the
// records to produce. *Processor is the real one; a benchmark swaps in a
// plain copy to measure what the stage's own work costs on the same
// fetch, produce and commit path.
type BatchProcessor interface {
	Process(b *Batch, msgs []kafka.Message) error
	InputTopics() []string
	StreamOf(topic string) string
}

// Stage is the Kafka-to-Kafka pipeline stage: it consumes the streams'
// input topics in a consumer group, decides and redacts each event, produces
// the results with acknowledgement from all in-sync replicas, and only then
// commits the input offsets.
//
// Delivery contract: at-least-once. For every input partition the stage
// handles one fetched batch at a time, in order: all records derived from
// the batch (outputs, quarantine and audit records) are acknowledged before
// the offset after the batch is committed, so a committed offset never
// passes an unacknowledged record, and order within a partition is kept.
// Commits go through the consumer-group generation that owns the partition;
// after a rebalance a late commit is rejected by the coordinator, never
// applied to a partition another instance now owns.
type Stage struct {
	cfg          *Config
	clients      *Clients
	proc         BatchProcessor
	consent      Feed
	maxStaleness time.Duration
	metrics      *Metrics
	log          *slog.Logger
	writer       *kafka.Writer
	receipts     *Receipts

	consuming  atomic.Bool
	stopping   atomic.Bool
	fail       context.CancelCauseFunc // set by Run: stop with an unretriable error (consent.Fatal)
	partitions sync.WaitGroup
	partMu     sync.Mutex // orders partitions.Add against the final Wait
}

// StageOptions wires a Stage. Metrics and Logger may be nil.
type StageOptions struct {
	Config       *Config
	Clients      *Clients
	Processor    BatchProcessor
	Consent      Feed // the processor decides with the table this feed fills
	MaxStaleness time.Duration
	Metrics      *Metrics
	Logger       *slog.Logger
	// Receipts, if set, is run alongside the stage to audit consent changes.
	Receipts *Receipts
}

// NewStage builds a stage; it does not connect until Run.
func NewStage(o StageOptions) (*Stage, error) {
	w, err := NewWriter(o.Config, o.Clients)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.MaxStaleness <= 0 {
		o.MaxStaleness = time.Second
	}
	s := &Stage{cfg: o.Config, clients: o.Clients, proc: o.Processor, consent: o.Consent,
		maxStaleness: o.MaxStaleness, metrics: o.Metrics, log: o.Logger, receipts: o.Receipts}
	s.writer = w
	return s, nil
}

// NewWriter is the producer every output of the stage (and replay) goes
// through: acknowledged by all in-sync replicas, key-hashed like the Java
// client (murmur2), records carry their own topics.
func NewWriter(cfg *Config, c *Clients) (*kafka.Writer, error) {
	codec, err := compression(cfg.Compression)
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Transport:    c.Transport,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		Compression:  codec,
		// kafka-go allocates a batch's message slice at BatchSize up front:
		// keep it near what one batch of BatchBytes holds.
		BatchSize:    2048,
		BatchBytes:   int64(cfg.writeBatchBytes()),
		BatchTimeout: cfg.writeBatchTimeout(),
		MaxAttempts:  3,
	}, nil
}

func compression(name string) (kafka.Compression, error) {
	switch name {
	case "", "lz4":
		return kafka.Lz4, nil
	case "none":
		return kafka.Compression(compress.None), nil
	case "gzip":
		return kafka.Gzip, nil
	case "snappy":
		return kafka.Snappy, nil
	case "zstd":
		return kafka.Zstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want none, gzip, snappy, lz4 or zstd)", name)
}

// Ready reports whether the consent table has caught up and the stage is
// consuming (not paused for stale consent): what /readyz serves.
func (s *Stage) Ready() bool {
	return s.consent.Ready() && s.consuming.Load() && !s.stopping.Load() &&
		s.consent.Staleness() <= s.maxStaleness
}

// Run consumes until ctx is cancelled, then stops fetching, lets every
// partition finish the batch it holds (write, acknowledge, commit), leaves
// the group and returns nil. It returns an error if it cannot start, or if
// the brokers refuse it in a way retrying cannot fix (consent.Fatal:
// credentials, certificates, ACLs); then it stops the same way first.
func (s *Stage) Run(ctx context.Context) error {
	if s.receipts != nil {
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { s.receipts.Run(rctx); close(done) }()
		defer func() { time.AfterFunc(2*time.Second, cancel); <-done }()
	}
	s.log.Info("waiting for the consent table to catch up before consuming")
	if err := s.consent.WaitReady(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("proxy: consent table: %w", err)
	}
	start := kafka.FirstOffset
	if s.cfg.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID: s.cfg.groupID(), Brokers: s.clients.Brokers, Dialer: s.clients.Dialer,
		Topics: s.proc.InputTopics(), StartOffset: start,
		HeartbeatInterval: time.Second, SessionTimeout: 10 * time.Second,
		RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 500 * time.Millisecond,
		PartitionWatchInterval: 5 * time.Second, WatchPartitionChanges: true,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			s.log.Warn("kafka consumer group", "error", fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		return fmt.Errorf("proxy: consumer group: %w", err)
	}
	defer s.writer.Close()
	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	s.fail = fail
	stopped := make(chan struct{})
	go func() {
		<-runCtx.Done()
		s.stopping.Store(true)
		s.partMu.Lock()
		s.partitions.Wait()
		s.partMu.Unlock()
		group.Close()
		close(stopped)
	}()
	s.log.Info("consuming", "group", s.cfg.groupID(), "topics", s.proc.InputTopics())
	backoff := newBackoff(s.cfg.retryBackoffMax())
	for {
		gen, err := group.Next(context.Background())
		if err != nil {
			if s.stopping.Load() || errors.Is(err, kafka.ErrGroupClosed) {
				<-stopped
				s.consuming.Store(false)
				if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil {
					s.log.Error("stopped: the brokers refuse the stage; retrying cannot help", "error", cause.Error())
					return cause
				}
				s.log.Info("stopped: every partition flushed and committed what was acknowledged")
				return nil
			}
			if ferr := consent.Fatal(err); ferr != nil {
				fail(fmt.Errorf("proxy: consumer group: %w", ferr))
				continue // Next returns ErrGroupClosed once the stop above closed the group
			}
			s.consuming.Store(false)
			s.log.Warn("joining the consumer group", "error", err.Error())
			backoff.sleep(ctx)
			continue
		}
		backoff.reset()
		s.consuming.Store(true)
		s.metrics.Rebalances.Inc()
		n := 0
		for topic, parts := range gen.Assignments {
			for _, a := range parts {
				n++
				topic, id, offset := topic, a.ID, a.Offset
				s.partMu.Lock()
				if s.stopping.Load() {
					s.partMu.Unlock()
					continue
				}
				s.partitions.Add(1)
				s.partMu.Unlock()
				gen.Start(func(gctx context.Context) {
					defer s.partitions.Done()
					s.runPartition(gctx, gen, topic, id, offset)
				})
			}
		}
		s.log.Info("assigned", "generation", gen.ID, "partitions", n)
	}
}

// runPartition owns one input partition for one generation.
func (s *Stage) runPartition(ctx context.Context, gen *kafka.Generation, topic string, partition int, offset int64) {
	log := s.log.With("topic", topic, "partition", partition)
	labels := []string{topic, strconv.Itoa(partition)}
	lag := s.metrics.CommitLag.WithLabelValues(labels...)
	defer s.metrics.CommitLag.DeleteLabelValues(labels...)
	stream := s.proc.StreamOf(topic)
	sm := s.metrics.stream(stream)
	var (
		conn    *kafka.Conn
		b       Batch
		msgs    = make([]kafka.Message, 0, 1024)
		backoff = newBackoff(s.cfg.retryBackoffMax())
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for !s.stopping.Load() && ctx.Err() == nil {
		if conn == nil {
			var err error
			conn, offset, err = s.connect(ctx, topic, partition, offset)
			if ferr := consent.Fatal(err); ferr != nil {
				s.fail(fmt.Errorf("proxy: %s/%d: %w", topic, partition, ferr))
				return
			}
			if err != nil {
				log.Warn("connecting to the partition leader", "error", err.Error())
				backoff.sleep(ctx)
				continue
			}
		}
		if !s.waitFresh(ctx) {
			return
		}
		t0 := time.Now()
		_ = conn.SetReadDeadline(t0.Add(s.cfg.fetchMaxWait() + 30*time.Second))
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: s.cfg.fetchMaxBytes(), MaxWait: s.cfg.fetchMaxWait()})
		msgs = msgs[:0]
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			msgs = append(msgs, m)
		}
		next, hwm := batch.Offset(), batch.HighWaterMark()
		if err := batch.Close(); err != nil && len(msgs) == 0 {
			if errors.Is(err, kafka.OffsetOutOfRange) {
				log.Warn("committed offset no longer exists; restarting from the earliest offset", "offset", offset)
				offset = kafka.FirstOffset
			} else if ferr := consent.Fatal(err); ferr != nil {
				s.fail(fmt.Errorf("proxy: fetch %s/%d: %w", topic, partition, ferr))
				return
			} else if !isTimeout(err) {
				log.Warn("fetch", "error", err.Error())
				backoff.sleep(ctx)
			}
			conn.Close()
			conn = nil
			continue
		}
		if len(msgs) == 0 {
			if next > offset {
				offset = next // past a compacted tail or control records
			}
			continue
		}
		if err := s.decide(&b, msgs); err != nil {
			log.Warn("consent table cannot decide; retrying the batch", "error", err.Error())
			_, _ = conn.Seek(offset, kafka.SeekAbsolute)
			backoff.sleep(ctx)
			continue
		}
		if err := s.writeAll(ctx, b.Out, log); err != nil {
			return // generation over or hard stop: nothing past offset is committed
		}
		if err := gen.CommitOffsets(map[string]map[int]int64{topic: {partition: next}}); err != nil {
			log.Warn("commit rejected; the partition's next owner resumes from the last commit", "error", err.Error(), "offset", next)
			return
		}
		offset = next
		backoff.reset()
		lag.Set(float64(max(hwm-next, 0)))
		sm.observe(&b, len(msgs), time.Since(t0))
		s.metrics.redactions(&b.Redactions)
	}
}

func (s *Stage) connect(ctx context.Context, topic string, partition int, offset int64) (*kafka.Conn, int64, error) {
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := s.clients.Dialer.DialLeader(dctx, "tcp", s.clients.Brokers[0], topic, partition)
	if err != nil {
		return nil, offset, err
	}
	switch offset {
	case kafka.FirstOffset:
		offset, err = conn.ReadFirstOffset()
	case kafka.LastOffset:
		offset, err = conn.ReadLastOffset()
	}
	if err == nil {
		_, err = conn.Seek(offset, kafka.SeekAbsolute)
	}
	if err != nil {
		conn.Close()
		return nil, offset, err
	}
	return conn, offset, nil
}

// decide processes a batch. A consent change applied while the batch was
// being decided may revoke what it forwards, so when the table changed
// meanwhile the batch is decided again before anything is produced (a few
// times at most; a change after that is the next batch's to see). This
// narrows a revocation's window to the produce of the batch in flight.
func (s *Stage) decide(b *Batch, msgs []kafka.Message) error {
	v, ok := s.consent.(interface{ Version() uint64 })
	if !ok {
		return s.proc.Process(b, msgs)
	}
	before := v.Version()
	for range 3 {
		if err := s.proc.Process(b, msgs); err != nil {
			return err
		}
		now := v.Version()
		if now == before {
			return nil
		}
		before = now
		s.metrics.Redecided.Inc()
	}
	return nil
}

// waitFresh blocks while consent is staler than the bound: events are not
// decided against a table that may be missing a revocation.
func (s *Stage) waitFresh(ctx context.Context) bool {
	if s.consent.Staleness() <= s.maxStaleness {
		return true
	}
	s.metrics.Paused.Set(1)
	defer s.metrics.Paused.Set(0)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.consent.Staleness() > s.maxStaleness {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		if s.stopping.Load() {
			return false
		}
	}
	return true
}

// writeAll produces msgs until every one is acknowledged, retrying only the
// failed ones with capped exponential backoff. It gives up only when ctx
// ends (rebalance or hard stop), and then nothing is committed.
func (s *Stage) writeAll(ctx context.Context, msgs []kafka.Message, log *slog.Logger) error {
	if len(msgs) == 0 {
		return nil
	}
	backoff := newBackoff(s.cfg.retryBackoffMax())
	pending := msgs
	for {
		err := s.writer.WriteMessages(ctx, pending...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ferr := fatalWrite(err); ferr != nil {
			s.fail(fmt.Errorf("proxy: produce: %w", ferr))
			return ferr // nothing committed: the batch is re-read after a restart
		}
		pending = Unacknowledged(pending, err)
		s.metrics.WriteRetries.Inc()
		log.Warn("produce not acknowledged; retrying, nothing committed meanwhile", "records", len(pending), "error", err.Error())
		backoff.sleep(ctx)
	}
}

// Unacknowledged returns the records of pending that a failed
// kafka.Writer.WriteMessages did not write: those its kafka.WriteErrors
// name, or all of pending when the error does not say.
func Unacknowledged(pending []kafka.Message, err error) []kafka.Message {
	var werrs kafka.WriteErrors
	if !errors.As(err, &werrs) || len(werrs) != len(pending) {
		return pending
	}
	failed := make([]kafka.Message, 0, werrs.Count())
	for i, e := range werrs {
		if e != nil {
			failed = append(failed, pending[i])
		}
	}
	return failed
}

// fatalWrite is consent.Fatal for a Writer's error, which may be a
// kafka.WriteErrors (one error per record, not unwrapped by errors.Is).
func fatalWrite(err error) error {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if ferr := consent.Fatal(e); ferr != nil {
				return ferr
			}
		}
	}
	return consent.Fatal(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

type backoff struct {
	cur, max time.Duration
}

func newBackoff(max time.Duration) *backoff { return &backoff{max: max} }

func (b *backoff) reset() { b.cur = 0 }

func (b *backoff) sleep(ctx context.Context) {
	if b.cur == 0 {
		b.cur = 50 * time.Millisecond
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	t := time.NewTimer(b.cur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
