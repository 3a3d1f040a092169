package proxy

import "github.com/segmentio/kafka-go"

// DecideBatch exposes the stage's decide step (with its re-decision when
// consent changes meanwhile) to tests without Kafka.
func DecideBatch(proc BatchProcessor, feed Feed, b *Batch, msgs []kafka.Message) error {
	s := &Stage{proc: proc, consent: feed, metrics: NewMetrics(nil)}
	return s.decide(b, msgs)
}
