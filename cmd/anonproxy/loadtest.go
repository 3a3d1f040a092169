package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/configs"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/loadtest"
)

func cmdLoadtest(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("loadtest", "[-config FILE] [-brokers H:P,...] [-stage external|inprocess|process] [-duration 30s] [-rate N] [-out DIR]", stderr)
	path := fs.String("config", "", "the stage's config: topics, policy defaults and max_staleness come from it (default: the reference config)")
	brokers := fs.String("brokers", "", "brokers, comma-separated (default: ANONPROXY_BROKERS, else the config's)")
	stage := fs.String("stage", "external", "external: a stage is already running; inprocess: start it in this process; process: start `anonproxy run` processes")
	baseline := fs.Bool("baseline", false, "measure a plain kafka-go copy of the same traffic instead of the stage")
	instances := fs.Int("instances", 1, "stage instances to start (inprocess, process or baseline)")
	killOne := fs.Bool("kill-one", false, "kill instance 0 halfway through (needs -instances ≥ 2; with -stage process it is a SIGKILL)")
	duration := fs.Duration("duration", 30*time.Second, "how long to generate traffic")
	events := fs.Int64("events", 0, "stop after this many events (0: duration only)")
	rate := fs.Float64("rate", 0, "target events per second (0: as fast as possible)")
	churn := fs.Float64("churn", 5, "consent writes per second during the run")
	tenants := fs.Int("tenants", 8, "tenants in the synthetic population")
	users := fs.Int("users", 64, "users per tenant")
	partitions := fs.Int("partitions", 3, "partitions of the topics the load test creates")
	seed := fs.Uint64("seed", 1, "seed of the traffic and the churn")
	out := fs.String("out", "loadtest-report", "directory for report.json, report.txt and report.html")
	quiet := fs.Bool("quiet", false, "no progress bar")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var (
		cfg *config.File
		err error
	)
	if *path != "" {
		var ok bool
		if cfg, ok = loadConfig(*path, stderr); !ok {
			return exitUsage
		}
	} else if cfg, err = config.Parse(configs.Example); err != nil {
		fmt.Fprintf(stderr, "anonproxy loadtest: reference config: %v\n", err)
		return exitUsage
	}
	if *brokers != "" {
		os.Setenv("ANONPROXY_BROKERS", *brokers)
	}
	topics, err := wire.LoadtestTopics(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy loadtest: %v\n", err)
		return exitUsage
	}
	defaults := map[string]consent.Level{}
	for _, s := range []string{"chat", "files", "messages"} {
		defaults[s] = cfg.Policy.DefaultFor(s)
	}
	lc := loadtest.Config{
		Brokers: cfg.Kafka.BrokerList(), Topics: topics, Partitions: *partitions,
		Duration: *duration, Events: *events, Rate: *rate, ChurnRate: *churn,
		Tenants: *tenants, UsersPerTenant: *users, Seed: *seed, OutDir: *out, Quiet: *quiet,
		Defaults: defaults, MaxStaleness: cfg.Consent.MaxStalenessOrDefault(),
		Baseline: *baseline, Instances: *instances, KillOne: *killOne,
	}
	log := newLogger(cfg.Log, io.Discard)
	switch *stage {
	case "external":
	case "inprocess":
		log = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		lc.StartStage = wire.InProcessStage(cfg, log)
	case "process":
		bin, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "anonproxy loadtest: %v\n", err)
			return exitRuntime
		}
		cfgPath := *path
		if cfgPath == "" {
			cfgPath = filepath.Join(os.TempDir(), fmt.Sprintf("anonproxy-loadtest-%d.yaml", os.Getpid()))
			if err := os.WriteFile(cfgPath, configs.Example, 0o600); err != nil {
				fmt.Fprintf(stderr, "anonproxy loadtest: %v\n", err)
				return exitRuntime
			}
			defer os.Remove(cfgPath)
		}
		lc.StartStage = wire.SubprocessStage(bin, cfgPath, lc.Brokers, stderr)
	default:
		fmt.Fprintf(stderr, "anonproxy loadtest: -stage %q: want external, inprocess or process\n", *stage)
		return exitUsage
	}
	if err := lc.Validate(); err != nil {
		fmt.Fprintf(stderr, "anonproxy loadtest: %v\n", err)
		return exitUsage
	}
	ctx, stop := signalContext()
	defer stop()
	rep, err := loadtest.Run(ctx, lc)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy loadtest: %v\n", err)
		return exitRuntime
	}
	rep.WriteText(stdout)
	fmt.Fprintf(stdout, "\nreports: %s\n", strings.Join([]string{filepath.Join(*out, "report.html"), filepath.Join(*out, "report.json"), filepath.Join(*out, "report.txt")}, ", "))
	if !rep.Passed {
		return exitFailed
	}
	return exitOK
}
