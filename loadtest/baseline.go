package loadtest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// copier is the baseline "stage": a plain kafka-go copy of every input
// record to its stream's output topic with the client settings a Kafka
// stage would use (consumer group, batch fetch, writes acknowledged by all
// in-sync replicas, commit after the write) and no processing, so that the
// stage's throughput can be read as a fraction of it. It sets the two
// headers the oracle reads (anonproxy-source, anonproxy-decision: allow).
type copier struct {
	readers []*kafka.Reader
	w       *kafka.Writer
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	err     error
}

// copyBatch is the largest batch fetched before a write, and copyLinger how
// long a batch waits for more records once it has one.
const (
	copyBatch  = 1000
	copyLinger = 5 * time.Millisecond
)

func baselineGroup(runID string) string { return "anonproxy-loadtest-baseline-" + runID }

// seedGroupOffsets commits the run's start offsets for a new consumer
// group, so the copy starts exactly where this run's inputs begin (not at
// an earlier run's backlog, not past records produced before it joined).
func seedGroupOffsets(ctx context.Context, brokers []string, group string, starts map[string]map[int]int64) error {
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	topics := map[string][]kafka.OffsetCommit{}
	for topic, ps := range starts {
		for p, off := range ps {
			topics[topic] = append(topics[topic], kafka.OffsetCommit{Partition: p, Offset: off})
		}
	}
	res, err := c.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: topics})
	if err != nil {
		return fmt.Errorf("loadtest: seed offsets of group %s: %w", group, err)
	}
	for topic, ps := range res.Topics {
		for _, p := range ps {
			if p.Error != nil {
				return fmt.Errorf("loadtest: seed offset of group %s, %s/%d: %w", group, topic, p.Partition, p.Error)
			}
		}
	}
	return nil
}

// baselineStage returns a StageFunc that runs copier instances.
func baselineStage(brokers []string, topics Topics, group string) StageFunc {
	return func(ctx context.Context, inst StageInstance) (func() error, error) {
		ctx, cancel := context.WithCancel(ctx)
		c := &copier{cancel: cancel, w: &kafka.Writer{
			Addr: kafka.TCP(brokers...), Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchSize: copyBatch, BatchBytes: 16 << 20,
			BatchTimeout: time.Millisecond, WriteTimeout: 30 * time.Second,
		}}
		for i, in := range topics.Inputs {
			r := kafka.NewReader(kafka.ReaderConfig{
				Brokers: brokers, GroupID: group, Topic: in,
				MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond,
				QueueCapacity: 4 * copyBatch, CommitInterval: 0,
				SessionTimeout: 6 * time.Second, RebalanceTimeout: 10 * time.Second,
				HeartbeatInterval: time.Second, StartOffset: kafka.FirstOffset,
			})
			c.readers = append(c.readers, r)
			c.wg.Add(1)
			go c.loop(ctx, r, topics.Outputs[i])
		}
		return c.stop, nil
	}
}

func (c *copier) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

func (c *copier) loop(ctx context.Context, r *kafka.Reader, out string) {
	defer c.wg.Done()
	in := make([]kafka.Message, 0, copyBatch)
	outs := make([]kafka.Message, 0, copyBatch)
	for ctx.Err() == nil {
		in = in[:0]
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.fail(fmt.Errorf("loadtest: baseline fetch %s: %w", r.Config().Topic, err))
			}
			return
		}
		in = append(in, m)
		lctx, lcancel := context.WithTimeout(ctx, copyLinger)
		for len(in) < copyBatch {
			m, err := r.FetchMessage(lctx)
			if err != nil {
				break
			}
			in = append(in, m)
		}
		lcancel()
		outs = outs[:0]
		for _, m := range in {
			src := m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10)
			outs = append(outs, kafka.Message{Topic: out, Key: m.Key, Value: m.Value, Headers: []kafka.Header{
				{Key: HeaderSource, Value: []byte(src)}, {Key: HeaderDecision, Value: []byte("allow")},
			}})
		}
		if err := c.w.WriteMessages(ctx, outs...); err != nil {
			if ctx.Err() == nil {
				c.fail(fmt.Errorf("loadtest: baseline write %s: %w", out, err))
			}
			return
		}
		if err := r.CommitMessages(ctx, in...); err != nil && ctx.Err() == nil {
			// A commit lost to a rebalance only means duplicates later.
			if !errors.Is(err, kafka.RebalanceInProgress) {
				c.fail(fmt.Errorf("loadtest: baseline commit %s: %w", r.Config().Topic, err))
				return
			}
		}
	}
}

func (c *copier) stop() error {
	c.cancel()
	c.wg.Wait()
	var errs []error
	for _, r := range c.readers {
		errs = append(errs, r.Close())
	}
	errs = append(errs, c.w.Close())
	c.mu.Lock()
	errs = append(errs, c.err)
	c.mu.Unlock()
	return errors.Join(errs...)
}
