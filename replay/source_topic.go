package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/proxy"
)

// maxFetchFailures bounds consecutive failed fetches of one partition
// before the replay gives up (it can be resumed from its checkpoint).
const maxFetchFailures = 10

// planTopic reads the topic's partitions and fixes each one's range: from
// the first offset at or after from (an offset, or the first record
// timestamped at or after fromTime), up to the end offset now, or the
// first offset timestamped at or after toTime.
func planTopic(ctx context.Context, c *proxy.Clients, topic string, from int64, fromTime, toTime time.Time) ([]PartitionPos, error) {
	conn, err := dialAny(ctx, c)
	if err != nil {
		return nil, err
	}
	parts, err := conn.ReadPartitions(topic)
	conn.Close()
	if err != nil {
		return nil, fmt.Errorf("replay: partitions of %s: %w", topic, err)
	}
	out := make([]PartitionPos, len(parts))
	for _, p := range parts {
		if p.ID < 0 || p.ID >= len(parts) {
			return nil, fmt.Errorf("replay: %s: unexpected partition id %d", topic, p.ID)
		}
		pc, err := dialLeader(ctx, c, topic, p.ID)
		if err != nil {
			return nil, err
		}
		pos, err := planPartition(pc, p.ID, from, fromTime, toTime)
		pc.Close()
		if err != nil {
			return nil, fmt.Errorf("replay: offsets of %s/%d: %w", topic, p.ID, err)
		}
		out[p.ID] = pos
	}
	return out, nil
}

func planPartition(conn *kafka.Conn, id int, from int64, fromTime, toTime time.Time) (PartitionPos, error) {
	first, end, err := conn.ReadOffsets()
	if err != nil {
		return PartitionPos{}, err
	}
	start := max(from, first)
	if !fromTime.IsZero() {
		o, err := conn.ReadOffset(fromTime)
		if err != nil {
			return PartitionPos{}, err
		}
		if o < 0 { // no record at or after fromTime
			o = end
		}
		start = max(start, o)
	}
	if !toTime.IsZero() {
		o, err := conn.ReadOffset(toTime)
		if err != nil {
			return PartitionPos{}, err
		}
		if o >= 0 {
			end = min(end, o)
		}
	}
	start = min(start, end)
	return PartitionPos{Partition: id, Start: start, Next: start, End: end}, nil
}

func dialAny(ctx context.Context, c *proxy.Clients) (*kafka.Conn, error) {
	var errs []error
	for _, b := range c.Brokers {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		conn, err := c.Dialer.DialContext(dctx, "tcp", b)
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("replay: no broker reachable: %w", errors.Join(errs...))
}

func dialLeader(ctx context.Context, c *proxy.Clients, topic string, partition int) (*kafka.Conn, error) {
	var errs []error
	for _, b := range c.Brokers {
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		conn, err := c.Dialer.DialLeader(dctx, "tcp", b, topic, partition)
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("replay: leader of %s/%d: %w", topic, partition, errors.Join(errs...))
}

// topicSource reads the partitions one after the other, each from its
// position to its end offset, in chunks of at most batch records.
type topicSource struct {
	clients          *proxy.Clients
	topic            string
	parts            []PartitionPos // the source's own position: ahead of the acknowledged one
	idx              int
	fromTime, toTime time.Time
	batch            int
	maxBytes         int
	log              *slog.Logger

	conn     *kafka.Conn
	pending  []kafka.Message
	pendNext int64 // the position once pending is consumed
	failures int
}

func (s *topicSource) close() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func (s *topicSource) next(ctx context.Context, c *chunk) error {
	for {
		if s.idx >= len(s.parts) {
			s.close()
			return io.EOF
		}
		p := &s.parts[s.idx]
		if len(s.pending) == 0 && p.Next >= p.End {
			s.close()
			s.idx++
			continue
		}
		if len(s.pending) == 0 {
			moved, err := s.fetch(ctx, p)
			if err != nil {
				return err
			}
			if len(s.pending) == 0 && !moved {
				continue
			}
		}
		n := min(len(s.pending), s.batch)
		from := p.Next
		for _, m := range s.pending[:n] {
			if (!s.fromTime.IsZero() && m.Time.Before(s.fromTime)) || (!s.toTime.IsZero() && !m.Time.Before(s.toTime)) {
				c.counts.Skipped++
				continue
			}
			c.msgs = append(c.msgs, m)
		}
		if n > 0 {
			p.Next = s.pending[n-1].Offset + 1
		}
		s.pending = s.pending[n:]
		if len(s.pending) == 0 {
			p.Next = max(p.Next, s.pendNext)
		}
		c.input = s.topic
		c.progress = p.Next - from
		idx, next := s.idx, p.Next
		c.advance = func(cp *Checkpoint) { cp.Partitions[idx].Next = next }
		return nil
	}
}

// fetch reads one fetch response of partition p into pending. It reports
// whether the position moved without records (past a compacted gap,
// control records, or records removed by retention).
func (s *topicSource) fetch(ctx context.Context, p *PartitionPos) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if s.conn == nil {
		conn, err := dialLeader(ctx, s.clients, s.topic, p.Partition)
		if err == nil {
			_, err = conn.Seek(p.Next, kafka.SeekAbsolute)
			if err != nil {
				conn.Close()
			}
		}
		if err != nil {
			return false, s.failed(ctx, p, err)
		}
		s.conn = conn
	}
	_ = s.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	batch := s.conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: s.maxBytes, MaxWait: 500 * time.Millisecond})
	s.pending = s.pending[:0]
	beyond := false
	for {
		m, err := batch.ReadMessage()
		if err != nil {
			break
		}
		if m.Offset < p.Next {
			continue
		}
		if m.Offset >= p.End {
			beyond = true
			continue
		}
		s.pending = append(s.pending, m)
	}
	next := batch.Offset()
	err := batch.Close()
	if beyond {
		next = p.End
	}
	s.pendNext = min(max(next, p.Next), p.End)
	if len(s.pending) > 0 {
		s.failures = 0
		return false, nil
	}
	if s.pendNext > p.Next {
		s.failures = 0
		return true, nil
	}
	if err == nil || isTimeout(err) {
		err = errors.New("no records before the end offset")
	}
	if errors.Is(err, kafka.OffsetOutOfRange) {
		// Retention removed records since the replay planned this
		// partition: continue from the oldest one left.
		first, ferr := s.conn.ReadFirstOffset()
		if ferr == nil && first > p.Next {
			s.log.Warn("records removed by retention before they were replayed", "topic", s.topic,
				"partition", p.Partition, "from", p.Next, "to", first)
			s.pendNext = min(first, p.End)
			s.close()
			return true, nil
		}
	}
	return false, s.failed(ctx, p, err)
}

func (s *topicSource) failed(ctx context.Context, p *PartitionPos, err error) error {
	s.close()
	s.failures++
	if s.failures >= maxFetchFailures {
		return fmt.Errorf("replay: fetch %s/%d at offset %d: %d attempts failed, last: %w", s.topic, p.Partition, p.Next, s.failures, err)
	}
	s.log.Warn("fetch failed; retrying", "topic", s.topic, "partition", p.Partition, "offset", p.Next, "error", err.Error())
	t := time.NewTimer(time.Duration(s.failures) * 200 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
