// Package consent holds the consent state of every tenant and user, read
// from the compacted consent topic, and decides the effective consent level
// of an event (CONTRACT.md §3 and §6).
//
// # Parts
//
//   - Keys and values: ParseKey, TenantKey, UserKey (percent-encoded ids,
//     RFC 3986) and ParseValue.
//   - Policy: PolicyConfig holds the configured defaults; the composition
//     rule (tenant and user record → the more restrictive; one record → that
//     one; none → the configured default of the category) lives in one
//     function, used by Table.Decide, which is the single code path for the
//     stage and for "anonproxy consent explain".
//   - Table: the in-memory state; Table.Decide answers lookups.
//   - Loader: reads the topic into a Table and keeps it current.
//
// # Guarantees
//
// Fail closed. A value that is not valid JSON, is not an object, names an
// unknown level, has a level that is not a string, or repeats a field counts
// as deny for every category of its key; it is counted
// (LoaderStats.MalformedValues, TableStats.Malformed), logged and reported
// through the OnChange callback as ChangeMalformedValue, so the stage can
// write it to the audit topic. A record without "default" has deny as its
// default. A key that does not parse is ignored, counted and reported as
// ChangeMalformedKey. Keys with lower-case hex escapes, escaped unreserved
// characters or unescaped non-ASCII bytes are accepted and canonicalized, so
// a record meant for a subject is never lost to an encoding variant.
//
// Readiness. Table.Decide returns ErrNotReady until every partition has been
// read up to its end offset as read (ListOffsets) when the Loader started:
// the read position after each fetch, which skips offsets removed by
// compaction, must be at or beyond that end. Empty partitions are caught up
// at once. The start offset is each partition's log start offset, so offsets
// removed by compaction or retention are never requested. Readiness is never
// lost once reached.
//
// Staleness. After ready the Loader keeps tailing the topic and reads the
// end offsets every poll_interval. Loader.Staleness is the time since the
// start of the last end-offset poll that the table has fully reached; it
// grows while the broker is unreachable. Loader.Stale reports whether it
// exceeds max_staleness (or the table is not ready); the stage must pause
// consumption while it is true (CONTRACT §6). An update acknowledged by the
// broker is therefore visible to Decide within max_staleness whenever Stale
// is false.
//
// Ordering. Records are applied in offset order per partition, so the
// latest record of a key wins (a key always lives in one partition, as the
// producers use the Java client's murmur2 partitioning). Adding partitions
// to the consent topic breaks this and is not supported: the Loader reads
// the partitions that existed when it started.
//
// Transactions and empty values. The topic is treated as non-transactional:
// transaction control records are skipped, but records of aborted
// transactions are applied (kafka-go does not report them, #1332), so
// producers must not use transactions that abort. kafka-go returns both a
// null and an empty value as nil, so an empty value is a tombstone too.
//
// Robustness. Each partition is read on its own connection to its leader
// (kafka.Conn.ReadBatchWith). Any error (broker restart, leader change)
// closes the connection and reconnects from the current position with
// exponential backoff. A watchdog drops a partition's connection when its
// position has been below the end offset for watchdog_timeout without
// progress (the compacted-topic hangs of kafka-go #423, #1416) and
// reconnects from the same position; the table stays stale (fail closed)
// rather than skip records.
//
// # Concurrency
//
// Any number of goroutines may call Table.Decide, Table.Ready, Table.Len,
// Table.Positions, Table.Stats, Loader.State, Loader.Ready,
// Loader.WaitReady, Loader.Staleness, Loader.Stale and Loader.Stats at any
// time, including while the table is being loaded. Decide takes no lock,
// never waits for the writer and does not allocate; a lookup that races an
// update of the same record sees either the old or the new record, never a
// mix. A Table has exactly one writer: its Loader's goroutine (Loader.Run),
// or, without a Loader, the one goroutine calling Table.Apply and
// Table.MarkReady. The OnChange callback runs on the writer goroutine, in
// order per partition, after the change is visible to Decide.
//
// # Memory
//
// Keys are stored once, next to their 24-byte state, in append-only arena
// chunks; an open-addressing index adds 8 bytes per slot at a load factor of
// 3/8 to 3/4. Distinct (default, categories) combinations are interned and
// shared. Records deleted by tombstones keep their key until restart.
package consent
