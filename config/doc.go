// Package config loads anonproxy's YAML configuration file strictly: every
// unknown key, type mismatch and invalid value is reported with its YAML
// path (`streams[1].anonymized[0].action`) and line, all problems at once,
// and a file with any problem is rejected whole. Each package owns its own
// block (kafka and stage: proxy; consent and policy: consent; redaction and
// the rules inside streams: redact); this package only composes them, so the
// defaults and validation rules live beside the code they configure.
//
// Secrets never come from the file: see proxy.KafkaConfig (SASL password,
// TLS key) and redact.KeyringFromEnv (the pseudonymization key).
package config
