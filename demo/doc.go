// Package demo is `anonproxy demo`: the newcomer's first run. It starts an
// in-process Kafka-protocol broker (kfake), creates the reference topics,
// seeds consent (tenants at each level, users overriding their tenant, one
// malformed record), and sends synthetic traffic through the real stage —
// the same wiring as `anonproxy run` with the reference config — for a
// bounded time. Halfway through, a user opts out live and the demo measures
// how long the opt-out took to take effect. It then prints a summary, one
// before/after sample per level with the changed spans marked, and checks
// its own numbers: every event produced is accounted for (forwarded, denied
// or quarantined) and no event of the opted-out user is forwarded after the
// staleness bound.
//
// Nothing leaves 127.0.0.1; the broker lives in memory and is gone when the
// demo returns (unless Options.Keep asks it to stay until cancelled).
package demo
