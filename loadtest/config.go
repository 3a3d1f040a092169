package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/anonproxy/anonproxy/consent"
)

// Topics names the topics of the stage under test. The zero value is the
// reference topology of CONTRACT §4.
type Topics struct {
	// Inputs and Outputs of the streams chat, files, messages, in that
	// order. Default: raw.chat, raw.files, raw.messages and train.chat,
	// train.files, train.messages.
	Inputs  [3]string `json:"inputs" yaml:"inputs"`
	Outputs [3]string `json:"outputs" yaml:"outputs"`
	// Default: anonproxy.quarantine.
	Quarantine string `json:"quarantine" yaml:"quarantine"`
	// Default: anonproxy.audit.
	Audit string `json:"audit" yaml:"audit"`
	// Default: consent.
	Consent string `json:"consent" yaml:"consent"`
}

func (t Topics) withDefaults() Topics {
	defIn := [3]string{"raw.chat", "raw.files", "raw.messages"}
	defOut := [3]string{"train.chat", "train.files", "train.messages"}
	for i := range 3 {
		if t.Inputs[i] == "" {
			t.Inputs[i] = defIn[i]
		}
		if t.Outputs[i] == "" {
			t.Outputs[i] = defOut[i]
		}
	}
	if t.Quarantine == "" {
		t.Quarantine = "anonproxy.quarantine"
	}
	if t.Audit == "" {
		t.Audit = "anonproxy.audit"
	}
	if t.Consent == "" {
		t.Consent = "consent"
	}
	return t
}

// StageInstance identifies one instance of the stage started by the load
// test.
type StageInstance struct {
	Index int // 0 .. Count-1
	Count int // Config.Instances
}

// StageFunc starts one instance of the stage under test against the run's
// brokers and topics, and returns once the instance is consuming (so that
// start-up is not measured as latency), or with an error.
//
// The instance runs until stop is called or ctx is cancelled. stop is the
// graceful end (flush, commit, return) and reports the instance's error; the
// load test calls it once, after the oracle has drained. With
// Config.KillOne, the load test kills instance 0 halfway through the run by
// cancelling its ctx without calling stop first: an in-process stage must
// then abandon in-flight work as a crash would (a hook that runs a process
// should SIGKILL it when ctx is done); stop is called afterwards only to
// reap it, and its error is recorded, not failed on.
type StageFunc func(ctx context.Context, inst StageInstance) (stop func() error, err error)

// Config configures a load test run. The zero value plus Brokers runs 30 s
// of unthrottled traffic against a stage that is already running.
type Config struct {
	// Brokers to bootstrap from (host:port). Required.
	Brokers []string `json:"brokers"`
	// Topics of the stage. Default: Topics{} (the reference topology).
	Topics Topics `json:"topics"`
	// Partitions of each topic the load test creates; existing topics are
	// left as they are. Default: 3.
	Partitions int `json:"partitions"`
	// SkipCreateTopics leaves topic creation to someone else. Topics the
	// load test creates use message.timestamp.type=LogAppendTime, so that
	// record timestamps are broker append times whatever the stage's
	// producer sets (latency is measured between them).
	SkipCreateTopics bool `json:"skip_create_topics"`

	// Duration of traffic generation. Default: 30 s unless Events is set.
	Duration time.Duration `json:"duration"`
	// Events stops generation after this many events (with Duration set,
	// whichever comes first).
	Events int64 `json:"events"`
	// Rate is the target total event rate per second over the three
	// streams. 0: as fast as the producer can.
	Rate float64 `json:"rate"`
	// MalformedRatio is the fraction of events that are invalid JSON or
	// lack a user_id, to be quarantined. Default: 0.01; negative: none.
	MalformedRatio float64 `json:"malformed_ratio"`

	// Tenants and UsersPerTenant size the subject population.
	// Default: 8 and 64.
	Tenants        int `json:"tenants"`
	UsersPerTenant int `json:"users_per_tenant"`
	// ChurnRate is consent writes per second during the run (tenant and user
	// records, tombstones and malformed values among them). Default: 5;
	// negative: no churn after the initial seeding.
	ChurnRate float64 `json:"churn_rate"`
	// Defaults are the stage's configured levels (policy.defaults) for a
	// subject with neither a tenant nor a user record, per category.
	// Default: deny for every category. The oracle must agree with the stage.
	Defaults map[string]consent.Level `json:"defaults"`

	// MaxStaleness is the stage's consent.max_staleness. Default: 1 s.
	MaxStaleness time.Duration `json:"max_staleness"`
	// BatchAllowance is the "plus one batch" of the revocation guarantee:
	// how long one batch may take from decision to acknowledgement.
	// Default: 2 s.
	BatchAllowance time.Duration `json:"batch_allowance"`
	// DrainTimeout bounds how long the oracle waits after generation for
	// every input to be accounted for. Default: 60 s.
	DrainTimeout time.Duration `json:"drain_timeout"`

	// Seed makes traffic and churn reproducible. Default: 1.
	Seed uint64 `json:"seed"`
	// OutDir receives report.json, report.txt and report.html. Empty: no
	// files are written.
	OutDir string `json:"out_dir"`
	// Quiet disables the progress bar (it is also off when stderr is not a
	// terminal).
	Quiet bool `json:"quiet"`

	// Baseline replaces the stage by a plain kafka-go copy from each input
	// to its output (consumer group, batch fetch, RequireAll writes, no
	// processing), to measure what the stage costs. The oracle then checks
	// only loss and duplicates.
	Baseline bool `json:"baseline"`
	// StartStage starts the stage under test; nil means one is already
	// running against these brokers and topics. Ignored with Baseline.
	StartStage StageFunc `json:"-"`
	// Instances of the stage (or of the baseline copier) to start.
	// Default: 1.
	Instances int `json:"instances"`
	// KillOne kills instance 0 halfway through generation (see StageFunc).
	// Needs Instances ≥ 2 and a StartStage hook or Baseline.
	KillOne bool `json:"kill_one"`
}

func (c Config) withDefaults() Config {
	c.Topics = c.Topics.withDefaults()
	if c.Partitions == 0 {
		c.Partitions = 3
	}
	if c.Duration == 0 && c.Events == 0 {
		c.Duration = 30 * time.Second
	}
	if c.MalformedRatio == 0 {
		c.MalformedRatio = 0.01
	} else if c.MalformedRatio < 0 {
		c.MalformedRatio = 0
	}
	if c.Tenants == 0 {
		c.Tenants = 8
	}
	if c.UsersPerTenant == 0 {
		c.UsersPerTenant = 64
	}
	if c.ChurnRate == 0 {
		c.ChurnRate = 5
	} else if c.ChurnRate < 0 {
		c.ChurnRate = 0
	}
	if c.MaxStaleness == 0 {
		c.MaxStaleness = time.Second
	}
	if c.BatchAllowance == 0 {
		c.BatchAllowance = 2 * time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 60 * time.Second
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Instances == 0 {
		c.Instances = 1
	}
	return c
}

// defaultLevels returns Defaults as an array in stream order.
func (c Config) defaultLevels() [numStreams]consent.Level {
	var d [numStreams]consent.Level
	for i, cat := range Categories {
		d[i] = c.Defaults[cat] // missing: LevelDeny, the zero value
	}
	return d
}

// Validate reports the first invalid field, by name.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case len(c.Brokers) == 0:
		return errors.New("loadtest: brokers: at least one broker is required")
	case c.Duration < 0:
		return fmt.Errorf("loadtest: duration: %v is negative", c.Duration)
	case c.Events < 0:
		return fmt.Errorf("loadtest: events: %d is negative", c.Events)
	case c.Rate < 0:
		return fmt.Errorf("loadtest: rate: %v is negative", c.Rate)
	case c.MalformedRatio > 0.5:
		return fmt.Errorf("loadtest: malformed_ratio: %v is above 0.5", c.MalformedRatio)
	case c.Tenants < 0 || c.UsersPerTenant < 0:
		return errors.New("loadtest: tenants, users_per_tenant: must be positive")
	case c.Tenants*c.UsersPerTenant > 1<<20:
		return errors.New("loadtest: tenants × users_per_tenant: above 1048576 subjects")
	case c.Partitions < 0:
		return fmt.Errorf("loadtest: partitions: %d is negative", c.Partitions)
	case c.MaxStaleness < 0 || c.BatchAllowance < 0 || c.DrainTimeout < 0:
		return errors.New("loadtest: max_staleness, batch_allowance, drain_timeout: must not be negative")
	case c.Instances < 1:
		return fmt.Errorf("loadtest: instances: %d is below 1", c.Instances)
	case c.Instances > 1 && !c.Baseline && c.StartStage == nil:
		return errors.New("loadtest: instances: more than one needs a StartStage hook (or baseline)")
	case c.KillOne && c.Instances < 2:
		return errors.New("loadtest: kill_one: needs instances ≥ 2, or nothing would be left to drain")
	case c.KillOne && !c.Baseline && c.StartStage == nil:
		return errors.New("loadtest: kill_one: needs a StartStage hook (or baseline)")
	}
	for cat := range c.Defaults {
		ok := false
		for _, k := range Categories {
			ok = ok || k == cat
		}
		if !ok {
			return fmt.Errorf("loadtest: defaults.%s: unknown category (want chat, files or messages)", cat)
		}
	}
	return nil
}
