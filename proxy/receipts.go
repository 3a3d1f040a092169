package proxy

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/consent"
)

// Receipts writes a consent receipt to the audit topic for every consent
// change the table applies after its initial load, and for every malformed
// consent record (also during the load): the evidence that a revocation
// reached this instance, and when. Record never blocks the consent loader: a
// bounded queue sits between them, and receipts that do not fit are counted
// as dropped (the consent topic itself remains the record of truth).
type Receipts struct {
	topic   string
	writer  *kafka.Writer
	log     *slog.Logger
	queue   chan kafka.Message
	dropped atomic.Uint64
	written atomic.Uint64
}

// NewReceipts builds the receipt writer; Run sends what Record queued.
func NewReceipts(cfg *Config, c *Clients, log *slog.Logger) (*Receipts, error) {
	w, err := NewWriter(cfg, c)
	if err != nil {
		return nil, err
	}
	return &Receipts{topic: cfg.audit(), writer: w, log: log, queue: make(chan kafka.Message, 4096)}, nil
}

// Record queues the receipt of one applied change. It is called from the
// consent loader's writer goroutine and returns at once.
func (r *Receipts) Record(c consent.Change) {
	malformed := c.Kind == consent.ChangeMalformedValue || c.Kind == consent.ChangeMalformedKey
	if c.CatchingUp && !malformed {
		return
	}
	v := []byte(`{"kind":"consent","subject":`)
	v = appendJSONString(v, c.Key)
	v = append(v, `,"record":"`...)
	v = strconv.AppendInt(v, int64(c.Partition), 10)
	v = append(v, '/')
	v = strconv.AppendInt(v, c.Offset, 10)
	v = append(v, `","change":`...)
	v = appendJSONString(v, c.Kind.String())
	v = append(v, `,"malformed":`...)
	v = strconv.AppendBool(v, malformed)
	if c.Levels.Valid() {
		v = append(v, `,"default":`...)
		v = appendJSONString(v, c.Levels.Default().String())
	}
	v = append(v, `,"at":"`...)
	v = c.Applied.UTC().AppendFormat(v, time.RFC3339Nano)
	v = append(v, `"}`...)
	select {
	case r.queue <- kafka.Message{Topic: r.topic, Key: []byte(c.Key), Value: v}:
	default:
		r.dropped.Add(1)
	}
}

// Run writes queued receipts in batches until ctx ends, retrying failures.
func (r *Receipts) Run(ctx context.Context) {
	defer r.writer.Close()
	batch := make([]kafka.Message, 0, 256)
	b := newBackoff(5 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-r.queue:
			batch = append(batch[:0], m)
		}
	fill:
		for len(batch) < cap(batch) {
			select {
			case m := <-r.queue:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		for {
			err := r.writer.WriteMessages(ctx, batch...)
			if err == nil {
				r.written.Add(uint64(len(batch)))
				b.reset()
				break
			}
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("writing consent receipts to the audit topic", "records", len(batch), "error", err.Error())
			b.sleep(ctx)
		}
	}
}

// Dropped is how many receipts did not fit the queue.
func (r *Receipts) Dropped() uint64 { return r.dropped.Load() }
