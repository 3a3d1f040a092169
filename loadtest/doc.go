// Package loadtest is the black-box load test of anonproxy: a generator of
// realistic traffic with consent churn, and an oracle that verifies the
// stage through its Kafka topics only (CONTRACT §3–§6). It never imports the
// stage; a caller that wants an in-process stage passes a StageFunc.
//
// # What a run does
//
// Run creates the topics it needs (inputs, outputs, quarantine, audit with
// message.timestamp.type=LogAppendTime, and a compacted consent topic),
// seeds consent for a population of tenants and users whose ids carry the
// run id (so runs sharing a cluster never share consent keys; some user ids
// need percent-encoding in keys), starts the stage instances, and writes
// chat messages, shared files (plain, gzip and binary contents, base64) and
// e-mail-like messages at a target rate, with a fraction of malformed
// events, while a churn writer flips tenant and user records between levels,
// with tombstones and malformed values. Every consent write is synchronous
// with acks from all in-sync replicas, and its send and acknowledgement
// times are recorded. Free text and decoded file contents carry canaries:
// known PII and credential values in real formats (libphonenumber-valid
// phone numbers, Luhn-valid cards, mod-97-valid IBANs, SSNs, IPs, cloud keys,
// GitHub tokens, private key blocks, secrets in URLs).
//
// # What the oracle proves
//
// The oracle reads back, from the offsets at the start of the run, every
// input record (to map anonproxy-source coordinates to events) and
// everything the stage wrote, and checks, for this run's events:
//
//   - No loss: every input has an outcome: an output record, a denial audit
//     record or a quarantine record. Duplicates (the same source twice, as
//     at-least-once delivery allows) are counted and reported, not failed.
//   - No leak: no forwarded record contains, byte for byte in its JSON or
//     in its decoded (base64, gunzipped) file contents, a canary its
//     decision forbids: credentials, tokens, private keys and URL secrets at
//     `allow`; every canary at `anonymized`. User ids are identifiers, not
//     canaries. Quarantine and audit records contain no canary at all.
//   - No permissive decision: no event is forwarded at a level above the
//     most permissive effective level the stage could legitimately have
//     used at the output record's timestamp: min(tenant, user) record level
//     or the configured default, over the states where every write
//     acknowledged at least max_staleness plus the batch allowance earlier
//     is applied and any write sent by then may be. Malformed consent values
//     count as deny. Outcomes more restrictive than every such state are
//     reported as warnings.
//   - Shape: malformed events (invalid JSON, no user_id, not an object) are
//     quarantined, never forwarded or denied; forwarded values are valid
//     JSON with the input's event_id on the stream's own output topic, and
//     carry valid anonproxy-decision and anonproxy-source headers; denial
//     audit records name the event's subject key.
//
// It measures throughput per second, end-to-end latency (input record
// timestamp to the timestamp of the first record accounting for it) and
// revocation propagation (from a restricting consent write's
// acknowledgement to the last event of an affected subject forwarded at
// the old level), and writes a JSON, a text and a self-contained HTML
// report.
//
// What it does not prove: that anonymized output is useful, that pseudonyms
// are keyed HMACs, or that PII outside the canary set is found. Timestamps
// and ack times come from the same host's clock (single-host runs), and the
// permissive check relies on the output topic's append time being after the
// decision, which holds for LogAppendTime topics.
//
// In Baseline mode a plain kafka-go copy stands in for the stage; the
// oracle then checks loss and duplicates only, and the throughput is the
// ceiling the stage is compared with.
package loadtest
