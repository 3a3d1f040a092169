package consent

import (
	"fmt"
	"time"
)

// Duration is a time.Duration that reads and writes Go duration strings
// ("1s", "200ms") in YAML and text formats.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want a Go duration such as \"1s\" or \"200ms\")", b)
	}
	*d = Duration(v)
	return nil
}

// UnmarshalYAML implements the YAML unmarshaler interface understood by
// go.yaml.in/yaml/v3 (and gopkg.in/yaml.v2) without importing either.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return fmt.Errorf("duration must be a string such as \"1s\": %w", err)
	}
	return d.UnmarshalText([]byte(s))
}

// FieldError is a configuration problem at a YAML path relative to the
// section that was validated (for Config, e.g. "max_staleness").
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Msg }

// Config configures a Loader. YAML path: consent. The zero value is valid
// except for Topic. Defaults are applied by the accessor methods and never
// written back into the fields.
type Config struct {
	// Topic is the compacted consent topic. Required.
	Topic string `yaml:"topic"`

	// MaxStaleness is how far the table may fall behind the consent topic's
	// end offsets before the stage must pause (see Loader.Staleness; the
	// loader itself only measures). Default: 1s.
	MaxStaleness Duration `yaml:"max_staleness"`

	// PollInterval is how often the topic's end offsets are read to measure
	// staleness. Must be well below MaxStaleness. Default: 200ms.
	PollInterval Duration `yaml:"poll_interval"`

	// WatchdogTimeout is how long a partition may make no progress while its
	// position is below the end offset before its connection is dropped and
	// re-established from the current position (kafka-go hangs on compacted
	// topics). Must exceed FetchMaxWait. Default: 5s.
	WatchdogTimeout Duration `yaml:"watchdog_timeout"`

	// FetchMaxWait is how long the broker may hold a fetch that has no data.
	// Default: 500ms.
	FetchMaxWait Duration `yaml:"fetch_max_wait"`

	// FetchMaxBytes is the maximum size of one fetch response per partition;
	// it must exceed the largest consent record batch. Default: 16 MiB.
	FetchMaxBytes int `yaml:"fetch_max_bytes"`

	// RetryBackoff is the first wait before reconnecting after an error; it
	// doubles up to MaxRetryBackoff. Defaults: 100ms and 5s.
	RetryBackoff    Duration `yaml:"retry_backoff"`
	MaxRetryBackoff Duration `yaml:"max_retry_backoff"`
}

func orDefault(d Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// MaxStalenessOrDefault returns MaxStaleness or its default, 1s.
func (c *Config) MaxStalenessOrDefault() time.Duration { return orDefault(c.MaxStaleness, time.Second) }

// PollIntervalOrDefault returns PollInterval or its default, 200ms.
func (c *Config) PollIntervalOrDefault() time.Duration {
	return orDefault(c.PollInterval, 200*time.Millisecond)
}

// WatchdogTimeoutOrDefault returns WatchdogTimeout or its default, 5s.
func (c *Config) WatchdogTimeoutOrDefault() time.Duration {
	return orDefault(c.WatchdogTimeout, 5*time.Second)
}

// FetchMaxWaitOrDefault returns FetchMaxWait or its default, 500ms.
func (c *Config) FetchMaxWaitOrDefault() time.Duration {
	return orDefault(c.FetchMaxWait, 500*time.Millisecond)
}

// FetchMaxBytesOrDefault returns FetchMaxBytes or its default, 16 MiB.
func (c *Config) FetchMaxBytesOrDefault() int {
	if c.FetchMaxBytes == 0 {
		return 16 << 20
	}
	return c.FetchMaxBytes
}

// RetryBackoffOrDefault returns RetryBackoff or its default, 100ms.
func (c *Config) RetryBackoffOrDefault() time.Duration {
	return orDefault(c.RetryBackoff, 100*time.Millisecond)
}

// MaxRetryBackoffOrDefault returns MaxRetryBackoff or its default, 5s.
func (c *Config) MaxRetryBackoffOrDefault() time.Duration {
	return orDefault(c.MaxRetryBackoff, 5*time.Second)
}

// Validate returns every problem, each naming its YAML path relative to the
// consent section, or nil.
func (c *Config) Validate() []FieldError {
	var errs []FieldError
	add := func(path, format string, args ...any) {
		errs = append(errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Topic == "" {
		add("topic", "required: the compacted consent topic")
	}
	for _, f := range []struct {
		path string
		d    Duration
	}{
		{"max_staleness", c.MaxStaleness}, {"poll_interval", c.PollInterval},
		{"watchdog_timeout", c.WatchdogTimeout}, {"fetch_max_wait", c.FetchMaxWait},
		{"retry_backoff", c.RetryBackoff}, {"max_retry_backoff", c.MaxRetryBackoff},
	} {
		if f.d < 0 {
			add(f.path, "must not be negative (got %s)", f.d)
		}
	}
	if c.FetchMaxBytes < 0 {
		add("fetch_max_bytes", "must not be negative (got %d)", c.FetchMaxBytes)
	}
	if len(errs) > 0 {
		return errs
	}
	if c.PollIntervalOrDefault() >= c.MaxStalenessOrDefault() {
		add("poll_interval", "must be below max_staleness (%s >= %s): staleness is measured at most every poll_interval",
			c.PollIntervalOrDefault(), c.MaxStalenessOrDefault())
	}
	if c.WatchdogTimeoutOrDefault() <= c.FetchMaxWaitOrDefault() {
		add("watchdog_timeout", "must exceed fetch_max_wait (%s <= %s): an idle fetch would trip the watchdog",
			c.WatchdogTimeoutOrDefault(), c.FetchMaxWaitOrDefault())
	}
	if c.RetryBackoffOrDefault() > c.MaxRetryBackoffOrDefault() {
		add("retry_backoff", "must not exceed max_retry_backoff (%s > %s)", c.RetryBackoffOrDefault(), c.MaxRetryBackoffOrDefault())
	}
	if c.FetchMaxBytes != 0 && c.FetchMaxBytes < 1<<10 {
		add("fetch_max_bytes", "must be at least 1 KiB (got %d)", c.FetchMaxBytes)
	}
	return errs
}
