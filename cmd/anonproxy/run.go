package main

import (
	"io"
	"time"

	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

func cmdRun(args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := newFlags("run", "-config FILE [-http ADDR]", stderr)
	path := fs.String("config", "", "config file (YAML)")
	httpAddr := fs.String("http", "", "health and metrics address (default: http.listen, else 127.0.0.1:9464)")
	drain := fs.Duration("drain-timeout", 30*time.Second, "on SIGTERM, how long to wait for in-flight batches to be acknowledged and committed")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	cfg, ok := loadConfig(*path, stderr)
	if !ok {
		return exitUsage
	}
	if *httpAddr != "" {
		cfg.HTTP.Listen = *httpAddr
	}
	log := newLogger(cfg.Log, stderr)
	ctx, stop := signalContext()
	defer stop()
	app, err := wire.Build(cfg, log, nil)
	if err != nil {
		log.Error("cannot start", "error", err.Error())
		return exitRuntime
	}
	health, err := proxy.ListenHealth(cfg.HTTP.Listen, app.Stage.Ready, app.Metrics.Handler(), log)
	if err != nil {
		log.Error("cannot serve health endpoints", "error", err.Error())
		return exitRuntime
	}
	defer health.Close()
	log.Info("anonproxy run", "brokers", app.Clients.Brokers, "http", health.Addr(), "streams", len(cfg.Streams))
	if err := app.Run(ctx, *drain); err != nil {
		log.Error("stage failed", "error", err.Error())
		return exitRuntime
	}
	return exitOK
}
