package proxy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/anonproxy/anonproxy/redact"
)

// Config is the stage's own block (`stage:` in the YAML). The zero value
// works: every field has a default, applied by accessors that never
// overwrite what the user set.
type Config struct {
	// GroupID of the consumer group; instances with the same id share the
	// input partitions. Default: anonproxy.
	GroupID string `yaml:"group_id"`
	// QuarantineTopic receives malformed events (no payload, see
	// QuarantinePayload). Default: anonproxy.quarantine.
	QuarantineTopic string `yaml:"quarantine_topic"`
	// AuditTopic receives denials and consent receipts. Default: anonproxy.audit.
	AuditTopic string `yaml:"audit_topic"`
	// MaxEventBytes: larger events are quarantined. Default: 1 MiB.
	MaxEventBytes int `yaml:"max_event_bytes"`
	// StartOffset for partitions the group has never committed: earliest
	// or latest. Default: earliest (lose nothing).
	StartOffset string `yaml:"start_offset"`
	// FetchMaxBytes bounds one fetch per partition, and so one batch.
	// Default: 4 MiB (raised to hold one MaxEventBytes event).
	FetchMaxBytes int `yaml:"fetch_max_bytes"`
	// FetchMaxWait: how long the broker may hold a fetch to fill it. Default: 100ms.
	FetchMaxWait Duration `yaml:"fetch_max_wait"`
	// WriteBatchTimeout: how long the producer waits to fill a batch before
	// sending it. Default: 2ms (each partition writes whole fetches at once).
	WriteBatchTimeout Duration `yaml:"write_batch_timeout"`
	// WriteBatchBytes: the producer's maximum request batch per partition;
	// must not exceed the broker's message.max.bytes. Default: 1 MiB, raised
	// to hold one MaxEventBytes event with its headers.
	WriteBatchBytes int `yaml:"write_batch_bytes"`
	// Compression of produced records: none, gzip, snappy, lz4, zstd. Default: lz4.
	Compression string `yaml:"compression"`
	// QuarantinePayload copies the offending event's bytes into its
	// quarantine record. Default: false (the quarantine topic then holds no
	// customer content).
	QuarantinePayload bool `yaml:"quarantine_payload"`
	// RetryBackoffMax caps the backoff between retries of an unacknowledged
	// write. Default: 5s.
	RetryBackoffMax Duration `yaml:"retry_backoff_max"`
}

// StreamConfig maps one input topic to one output topic (`streams[i]`).
type StreamConfig struct {
	// Name identifies the stream in metrics, audit records and `redact -stream`.
	Name   string `yaml:"name"`
	Input  string `yaml:"input"`
	Output string `yaml:"output"`
	// TenantPath and UserPath are gjson paths to the ids. An event where a
	// configured path does not resolve to a non-empty string or number is
	// quarantined. TenantPath may be empty for products without tenants.
	TenantPath string `yaml:"tenant_path"`
	UserPath   string `yaml:"user_path"`
	// Category is the stream's fixed consent category; or CategoryPath names
	// a field whose value is mapped through Categories (unmapped values are
	// quarantined). Exactly one of Category and CategoryPath.
	Category     string            `yaml:"category"`
	CategoryPath string            `yaml:"category_path"`
	Categories   map[string]string `yaml:"categories"`
	// HeadersAllow lists input header keys copied to the output. Default: none.
	HeadersAllow []string `yaml:"headers_allow"`
	// The stream's redaction rules: anonymized and always.
	redact.StreamConfig `yaml:",inline"`
}

func (c *Config) groupID() string    { return orString(c.GroupID, "anonproxy") }
func (c *Config) quarantine() string { return orString(c.QuarantineTopic, "anonproxy.quarantine") }
func (c *Config) audit() string      { return orString(c.AuditTopic, "anonproxy.audit") }
func (c *Config) maxEventBytes() int { return orInt(c.MaxEventBytes, 1<<20) }
func (c *Config) fetchMaxBytes() int {
	return max(orInt(c.FetchMaxBytes, 4<<20), c.maxEventBytes()+64<<10)
}
func (c *Config) writeBatchBytes() int {
	return max(orInt(c.WriteBatchBytes, 1<<20), c.maxEventBytes()+64<<10)
}
func (c *Config) fetchMaxWait() time.Duration {
	return orDur(c.FetchMaxWait, 100*time.Millisecond)
}
func (c *Config) writeBatchTimeout() time.Duration {
	return orDur(c.WriteBatchTimeout, 2*time.Millisecond)
}
func (c *Config) retryBackoffMax() time.Duration { return orDur(c.RetryBackoffMax, 5*time.Second) }

// Defaults returns c with every unset field at its default, for display.
func (c Config) Defaults() Config {
	c.GroupID, c.QuarantineTopic, c.AuditTopic = c.groupID(), c.quarantine(), c.audit()
	c.MaxEventBytes, c.FetchMaxBytes, c.WriteBatchBytes = c.maxEventBytes(), c.fetchMaxBytes(), c.writeBatchBytes()
	c.StartOffset = orString(c.StartOffset, "earliest")
	c.Compression = orString(c.Compression, "lz4")
	c.FetchMaxWait, c.WriteBatchTimeout = Duration(c.fetchMaxWait()), Duration(c.writeBatchTimeout())
	c.RetryBackoffMax = Duration(c.retryBackoffMax())
	return c
}

// Validate reports each problem with its YAML path relative to `stage`.
func (c *Config) Validate() []FieldError {
	var errs []FieldError
	switch c.StartOffset {
	case "", "earliest", "latest":
	default:
		errs = append(errs, fieldErr("start_offset", fmt.Errorf("%q: want earliest or latest", c.StartOffset)))
	}
	if _, err := compression(c.Compression); err != nil {
		errs = append(errs, fieldErr("compression", err))
	}
	if c.MaxEventBytes < 0 {
		errs = append(errs, fieldErr("max_event_bytes", errors.New("must not be negative")))
	}
	if c.quarantine() == c.audit() {
		errs = append(errs, fieldErr("audit_topic", errors.New("must differ from quarantine_topic")))
	}
	return errs
}

// ValidateStreams checks the streams together (`streams`), including each
// stream's redaction rules, and that no output feeds back into an input.
func ValidateStreams(streams []StreamConfig, c *Config) []FieldError {
	var errs []FieldError
	if len(streams) == 0 {
		return []FieldError{fieldErr("streams", errors.New("at least one stream is required"))}
	}
	names, inputs := map[string]bool{}, map[string]bool{}
	for _, s := range streams {
		inputs[s.Input] = true
	}
	for i, s := range streams {
		at := func(f string) string { return fmt.Sprintf("streams[%d].%s", i, f) }
		if s.Name == "" {
			errs = append(errs, fieldErr(at("name"), errors.New("required")))
		} else if names[s.Name] {
			errs = append(errs, fieldErr(at("name"), fmt.Errorf("duplicate stream name %q", s.Name)))
		}
		names[s.Name] = true
		if s.Input == "" {
			errs = append(errs, fieldErr(at("input"), errors.New("required")))
		}
		if s.Output == "" {
			errs = append(errs, fieldErr(at("output"), errors.New("required")))
		} else if inputs[s.Output] || s.Output == c.quarantine() || s.Output == c.audit() {
			errs = append(errs, fieldErr(at("output"), fmt.Errorf("%q is also an input, quarantine or audit topic", s.Output)))
		}
		if s.UserPath == "" {
			errs = append(errs, fieldErr(at("user_path"), errors.New("required: every event must name its user")))
		}
		for _, p := range []struct{ field, path string }{{"tenant_path", s.TenantPath}, {"user_path", s.UserPath}, {"category_path", s.CategoryPath}} {
			if strings.ContainsAny(p.path, "|@*?#") {
				errs = append(errs, fieldErr(at(p.field), fmt.Errorf("%q: plain gjson paths only (no modifiers, pipes, wildcards or arrays)", p.path)))
			}
		}
		switch {
		case s.Category == "" && s.CategoryPath == "":
			errs = append(errs, fieldErr(at("category"), errors.New("required (or category_path with categories)")))
		case s.Category != "" && s.CategoryPath != "":
			errs = append(errs, fieldErr(at("category_path"), errors.New("set category or category_path, not both")))
		case s.CategoryPath != "" && len(s.Categories) == 0:
			errs = append(errs, fieldErr(at("categories"), errors.New("required with category_path")))
		case s.CategoryPath == "" && len(s.Categories) > 0:
			errs = append(errs, fieldErr(at("categories"), errors.New("only used with category_path")))
		}
		for _, fe := range s.StreamConfig.Validate() {
			errs = append(errs, fieldErr(fmt.Sprintf("streams[%d].%s", i, fe.Path), fe.Err))
		}
	}
	return errs
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
