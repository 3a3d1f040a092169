// Package redact is anonproxy's byte-level JSON redaction and free-text
// PII detection. It knows nothing about Kafka or consent: the stage decides
// the Level of an event and calls Engine.AppendRedacted, or, having checked
// the event once with Event.Check (valid JSON, valid UTF-8, nesting at most
// MaxDepth, root members indexed) to read its ids before deciding,
// Engine.AppendRedactedEvent.
//
// # Guarantees
//
//   - Pure: AppendRedacted does no I/O, logs nothing and keeps no
//     reference to its arguments. The only I/O in the package is
//     KeyringFromEnv reading ANONPROXY_HMAC_KEY_FILE.
//   - Valid JSON out: the input is validated before any edit, accepting
//     exactly what gjson.Valid accepts (FuzzValid checks it); an invalid
//     event fails with reason invalid_json and nothing is appended. (On
//     amd64 with AVX2, strings are checked against a bitmap of the
//     document's quotes, backslashes and control bytes built 64 bytes at
//     a time by bitmap_amd64.s; the result is the portable loop's, which
//     TestBitmapCheckMatches and FuzzValid check, and -tags purego builds
//     without it.) Every
//     replacement is a complete JSON value, correctly escaped (invalid
//     UTF-8 inside a replaced string becomes U+FFFD).
//   - Bytes outside replaced spans are identical to the input,
//     including whitespace, key order and escapes (a scanned string with
//     escapes keeps its raw bytes between matches). A replaced span is a
//     whole value or a match inside a string, except: a dropped member's
//     span includes one adjacent comma, and a truncated string (or one
//     where a match would begin or end inside an escape sequence, or with
//     a configured token that is not valid UTF-8) is re-encoded as a whole.
//   - Fail closed: an event that cannot be redacted (bad base64, unknown
//     or corrupt content_encoding, decompression beyond MaxFileBytes,
//     nesting beyond MaxDepth under a scanned container) is an *Error with
//     a stable Reason, for the stage to quarantine. Values a rule cannot
//     handle become null (pseudonymize/mask of an object, a file rule on a
//     non-object), never pass through.
//   - Duplicate keys: every occurrence of a key matches a rule path, not
//     only the first (gjson.Get picks the first, encoding/json the last), so
//     no duplicate can smuggle an unredacted value past a rule. The stage
//     quarantines an event whose tenant or user id key occurs twice
//     (Event.Member counts them).
//   - Concurrency: an Engine is immutable after Compile and safe for
//     concurrent use. A Stats is not: use one per goroutine and Add them.
//   - Buffers: in the spirit of strconv.Append*, the caller owns dst and
//     src; src is read through an unsafe string view (no copy) and must not
//     change during the call.
//   - Allocations: none per event in steady state (scratch buffers come
//     from a per-Engine free list that, unlike a sync.Pool, survives
//     garbage collections), proven by TestAllocsPerEvent and the
//     benchmarks. Exceptions: a phone-number candidate not in the verdict
//     cache (libphonenumber allocates), and file events (decompression and
//     re-compression). Each pooled scratch of an Engine with keys holds
//     a 64 KB cache of recent pseudonyms (the ids recur; an HMAC is the
//     single most expensive step of a short event).
//
// # Rules and levels
//
// A StreamConfig has Anonymized rules (level anonymized only) and Always
// rules (both levels). Rules are matched against the original bytes in one
// pass; where several rules hit the same value they compose as if applied
// in order: a later drop/null/replace/mask/pseudonymize wins over earlier
// ones; scans, truncations and file processing combine (union of
// detectors, shortest max_len, scan before truncation); an edit inside a
// value another rule replaced is skipped (the value is already gone).
//
// # Detectors
//
// Hand-written byte scanners, validated beyond pattern shape: email
// (domain labels, alphabetic TLD), phone (international +CC for every
// country, national formats for Options.PhoneRegions, validated by
// libphonenumber), card (brand prefix, 13-19 digits, Luhn), iban (country
// length table, mod 97), ip (IPv4, IPv6 incl. "::" and brackets; ports are
// kept), ssn (US, valid area/group/serial, separated form only), mention
// (<@U123> and <@U123|name>, pseudonymized), and the credentials group:
// aws_access_key, aws_secret_key (40 characters near the word "secret"),
// github_token, slack_token, stripe_key, google_api_key, jwt (header
// decodes to JSON with "alg"), private_key (PEM block; unterminated runs to
// the end), url_secret (password in scheme://user:pass@host, and values
// of token-like parameters such as token=, access_token=, api_key=, key=,
// secret=, password=, sig=).
//
// A scan finds exactly what trying every detector at every word start
// would find: it runs them only around the bytes that can start or
// affect a match (trigger tables in scan.go), and TestScanMatchesReference
// and FuzzScan hold it to that reference loop. On amd64 with AVX2 those
// bytes are found 30 at a time by trigger_amd64.s, whose result is the
// scalar loop's (the trigger_test.go tests; -tags purego builds without).
//
// # Pseudonyms and keys
//
// A pseudonym is "ps_<keyid>_" followed by base64url (no padding) of the
// first 16 bytes of HMAC-SHA256(key, id): stable, URL-safe, keyed (not
// reversible or guessable without the key). The same id gives the same
// pseudonym everywhere: user_id "U2", the mention <@U2>, and an email
// address (pseudonymized as its lower-cased address, also when written as
// "Name <addr>").
//
// Keys come from the environment, never from YAML:
//
//	ANONPROXY_HMAC_KEY       the secret, or "id:secret"
//	ANONPROXY_HMAC_KEY_FILE  a file of lines "id:secret" (or one bare secret); '#' comments
//	ANONPROXY_HMAC_KEY_ID    the current key id; default: the last key given ("k1" for a bare secret)
//
// Ids are 1-16 characters [A-Za-z0-9]; secrets at least 16 bytes. To
// rotate, append a new "k2:secret" line: output switches to k2 (the id is
// in every pseudonym, so consumers see the change), and Keyring.Pseudonym
// with the old id still computes old pseudonyms for re-keying joins.
package redact
