// Package replay backfills: it re-runs the pipeline over historical data
// under today's consent (CONTRACT §2, replay row; §5; §6).
//
// A replay reads one source — a topic from a start time or offset up to the
// end offsets read when the replay first started (optionally bounded by a
// time), or JSONL files, plain, gzip or zstd, told apart by their magic
// bytes — and writes what the live stage would: it runs the same
// proxy.Processor (the same decision and redaction code) against the same
// consent table, and routes forwarded records, quarantine records and audit
// records to topics or to JSONL files.
//
// Guarantees:
//
//   - Fail closed: nothing is read before the consent table has caught up
//     with the consent topic (Options.Consent), and processing pauses while
//     the consent feed is staler than Options.MaxStaleness. The table keeps
//     tailing the consent topic during the replay, so a revocation made
//     while it runs applies from then on.
//   - Terminates: a topic replay's end offsets are read once, when the
//     replay starts, and kept in the checkpoint; a resumed replay stops at
//     the same offsets.
//   - At-least-once into topics, exactly-once into files: a batch is
//     acknowledged once every record derived from it (forwarded, quarantine,
//     audit) is acknowledged by all in-sync replicas (topic routes) and
//     written and fsynced (file routes); only then does the checkpoint move
//     past it. The checkpoint is JSON, replaced atomically (temporary file,
//     fsync, rename). After a crash, a replay run again with Resume
//     re-reads from the checkpoint: records of the one batch that was not
//     acknowledged may reach topics twice (each carries anonproxy-source
//     for deduplication); files are first truncated to the lengths the
//     checkpoint recorded, so they hold every record exactly once. A zstd
//     output file is written as one zstd frame per batch, so every
//     checkpointed length is a frame boundary.
//   - Order: batches are decided and redacted in parallel (Options.Workers)
//     but written, acknowledged and checkpointed in source order: per
//     partition for topics (partitions one after the other), and in the
//     order the files were given.
//   - Nothing of a payload is logged; quarantine records carry no payload
//     unless stage.quarantine_payload says so, as in the stage.
//
// A topic's range is an offset range: the start and end offsets come from
// the broker's time index (the first record at or after the time), and
// records inside it whose own timestamps fall outside the time range are
// skipped and counted, since timestamps need not grow with offsets.
//
// Records read from files carry the source coordinates
// <file base name>/0/<line number> (1-based) in anonproxy-source and in
// quarantine and audit records; two source files must therefore not share
// a base name. The processor is built per file with the stream's input
// named after the file (Options.Processor). Blank lines are skipped; a line
// that is not a valid JSON event is quarantined. A file output holds one
// record value per line; keys and headers are not written.
package replay
