// Package wire builds a running stage from a config file: the consent
// loader filling the table, the processor deciding with it, the stage, its
// metrics and consent receipts. The anonproxy command, the demo, the load
// test's in-process stage and the integration tests all start stages
// through it, so they run exactly the same wiring.
package wire

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/proxy"
	"github.com/anonproxy/anonproxy/redact"
)

// App is one wired stage: the consent loader filling the table, and the
// stage deciding with it.
type App struct {
	Clients   *proxy.Clients
	Table     *consent.Table
	Loader    *consent.Loader
	Processor *proxy.Processor
	Stage     *proxy.Stage
	Metrics   *proxy.Metrics
	log       *slog.Logger
}

// Build wires a stage from a config. onChange, if set, also sees every
// consent change (the demo uses it to time an opt-out).
func Build(cfg *config.File, log *slog.Logger, onChange func(consent.Change)) (*App, error) {
	keys, err := redact.KeyringFromEnv()
	if err != nil {
		return nil, err
	}
	clients, err := cfg.Kafka.Connect()
	if err != nil {
		return nil, err
	}
	table := consent.NewTable(cfg.Policy, cfg.Categories()...)
	metrics := proxy.NewMetrics(nil)
	proc, err := proxy.NewProcessor(&cfg.Stage, cfg.Streams, cfg.Redaction, keys, table)
	if err != nil {
		return nil, err
	}
	receipts, err := proxy.NewReceipts(&cfg.Stage, clients, log)
	if err != nil {
		return nil, err
	}
	loader, err := consent.NewLoader(clients.Brokers, clients.Dialer, cfg.Consent, table,
		consent.WithLogger(log), consent.WithOnChange(func(c consent.Change) {
			receipts.Record(c)
			if onChange != nil {
				onChange(c)
			}
		}))
	if err != nil {
		return nil, err
	}
	metrics.ConsentGauges(table.Len, loader.Staleness, func() uint64 { return uint64(loader.Stats().MalformedValues) })
	stage, err := proxy.NewStage(proxy.StageOptions{Config: &cfg.Stage, Clients: clients, Processor: proc,
		Consent: loader, MaxStaleness: cfg.Consent.MaxStalenessOrDefault(), Metrics: metrics, Logger: log, Receipts: receipts})
	if err != nil {
		return nil, err
	}
	return &App{Clients: clients, Table: table, Loader: loader, Processor: proc, Stage: stage, Metrics: metrics, log: log}, nil
}

// Run runs the loader and the stage until ctx ends, then drains: the stage
// finishes and commits its in-flight batches within drain, and the loader stops.
func (a *App) Run(ctx context.Context, drain time.Duration) error {
	lctx, stopLoader := context.WithCancel(context.Background())
	defer stopLoader()
	loaderErr := make(chan error, 1)
	go func() { loaderErr <- a.Loader.Run(lctx) }()
	stageErr := make(chan error, 1)
	go func() { stageErr <- a.Stage.Run(ctx) }()
	select {
	case err := <-stageErr:
		return err
	case err := <-loaderErr:
		if ctx.Err() == nil {
			return fmt.Errorf("consent loader stopped: %w", err)
		}
	case <-ctx.Done():
	}
	a.log.Info("stopping: no new fetches; flushing and committing what was acknowledged")
	select {
	case err := <-stageErr:
		return err
	case <-time.After(drain):
		return fmt.Errorf("drain timed out after %s: uncommitted batches will be re-read on restart (at-least-once)", drain)
	}
}
