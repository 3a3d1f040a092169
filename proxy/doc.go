// Package proxy is the pipeline stage: source → decide → redact → sink.
//
// A Stage consumes the streams' input topics in a Kafka consumer group,
// decides every event against the consent table (package consent), redacts
// what is forwarded (package redact), produces the results and commits.
// The Processor is the pure part (decide and redact, no I/O) and is shared
// with replay, so a backfill decides exactly as the live stage.
//
// Guarantees:
//
//   - At-least-once. Each input partition is handled one fetched batch at a
//     time, in order. Every record derived from a batch (the forwarded
//     events, quarantine records, denial audit records) is acknowledged by
//     all in-sync replicas (RequiredAcks = all) before the offset after the
//     batch is committed; failed writes are retried with capped backoff and
//     nothing is committed meanwhile. A crash re-delivers at most the
//     batches that were in flight.
//   - Commits go through the consumer-group generation that owns the
//     partition. After a rebalance a late commit is rejected by the group
//     coordinator and the partition's new owner resumes from the last
//     commit; a stale commit can never move another owner's offset.
//   - Order within an input partition is preserved in its outputs.
//   - Fail closed. Nothing is consumed before the consent table has caught
//     up with the end offsets of the consent topic read at start; while the
//     consent feed is staler than consent.max_staleness, no batch is
//     decided. An event whose subject has no record gets the configured
//     default (deny unless configured).
//   - Nothing is silently dropped. Every input record ends as exactly one of:
//     forwarded (output topic, headers anonproxy-decision and
//     anonproxy-source), denied (audit record) or quarantined (quarantine
//     record with a reason). Events that are not valid JSON, lack a
//     resolvable tenant or user id, repeat an id key, exceed
//     stage.max_event_bytes, or that the redaction engine rejects (e.g. a
//     decompression bomb) are quarantined.
//   - No payload byte is written to logs, metric labels, audit records, or
//     (unless stage.quarantine_payload is set) quarantine records. Input
//     headers are not copied unless allow-listed per stream.
//
// Concurrency: a Processor is safe for concurrent use, each goroutine with
// its own Batch. A Stage runs one goroutine per assigned partition.
package proxy
