package wire

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/proxy"
	"github.com/anonproxy/anonproxy/redact"
)

// Replay is what a backfill needs from a config: the consent table and the
// loader that fills it (the same as the stage's), the producer the stage
// writes with, and a processor factory for the replayed stream.
type Replay struct {
	Clients *proxy.Clients
	Table   *consent.Table
	Loader  *consent.Loader
	// Writer produces with acknowledgement from all in-sync replicas, like the stage.
	Writer *kafka.Writer
	// Stream is the replayed stream's configuration.
	Stream proxy.StreamConfig
	// QuarantineTopic and AuditTopic are the stage's (defaults applied).
	QuarantineTopic, AuditTopic string
	// MaxStaleness is consent.max_staleness.
	MaxStaleness consent.Duration

	cfg  *config.File
	keys *redact.Keyring
}

// ReplayStream resolves the stream a replay runs: the one named name, else
// the one whose input is topic.
func ReplayStream(cfg *config.File, name, topic string) (*proxy.StreamConfig, error) {
	if name != "" {
		return cfg.Stream(name)
	}
	var inputs []string
	for i := range cfg.Streams {
		if cfg.Streams[i].Input == topic {
			return &cfg.Streams[i], nil
		}
		inputs = append(inputs, cfg.Streams[i].Input)
	}
	if topic == "" {
		return nil, fmt.Errorf("no stream named: set -stream")
	}
	return nil, fmt.Errorf("no stream consumes topic %q (inputs: %s): name the stream with -stream", topic, strings.Join(inputs, ", "))
}

// BuildReplay wires a replay of stream (see ReplayStream) from a config.
// It does not connect: the caller runs Loader and closes Writer.
func BuildReplay(cfg *config.File, stream *proxy.StreamConfig, log *slog.Logger) (*Replay, error) {
	keys, err := redact.KeyringFromEnv()
	if err != nil {
		return nil, err
	}
	clients, err := cfg.Kafka.Connect()
	if err != nil {
		return nil, err
	}
	table := consent.NewTable(cfg.Policy, cfg.Categories()...)
	loader, err := consent.NewLoader(clients.Brokers, clients.Dialer, cfg.Consent, table, consent.WithLogger(log))
	if err != nil {
		return nil, err
	}
	writer, err := proxy.NewWriter(&cfg.Stage, clients)
	if err != nil {
		return nil, err
	}
	st := cfg.Stage.Defaults()
	r := &Replay{Clients: clients, Table: table, Loader: loader, Writer: writer,
		Stream: *stream, QuarantineTopic: st.QuarantineTopic, AuditTopic: st.AuditTopic,
		MaxStaleness: consent.Duration(cfg.Consent.MaxStalenessOrDefault()), cfg: cfg, keys: keys}
	// Compile once now, so a bad stream fails before anything runs.
	if _, err := r.Processor(stream.Input); err != nil {
		return nil, err
	}
	return r, nil
}

// Processor builds the stage's processor for the replayed stream, deciding
// with the replay's table, for records whose topic is input (the source
// topic, or a source file's base name).
func (r *Replay) Processor(input string) (*proxy.Processor, error) {
	sc := r.Stream
	sc.Input = input
	return proxy.NewProcessor(&r.cfg.Stage, []proxy.StreamConfig{sc}, r.cfg.Redaction, r.keys, r.Table)
}
