package loadtest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/loadtest"
)

// EnvCrashTest selects the crash test's form: "full" runs the documented
// form of docs/reliability.md (scripts/crashtest.sh sets it); anything else
// the reduced form of the test command.
const EnvCrashTest = "ANONPROXY_CRASHTEST"

// crashPlan is one form of the crash test.
type crashPlan struct {
	Duration  time.Duration // traffic
	Rate      float64       // events per second over the three streams
	Instances int           // stage processes in the group
	Kills     int           // SIGKILLs, each followed by a restart
	Seed      uint64
}

func crashPlanFromEnv() crashPlan {
	p := crashPlan{Duration: 20 * time.Second, Rate: 300, Instances: 2, Kills: 3, Seed: 7}
	if os.Getenv(EnvCrashTest) == "full" {
		p = crashPlan{Duration: 2 * time.Minute, Rate: 500, Instances: 2, Kills: 12, Seed: 11}
	}
	if s := os.Getenv(EnvCrashTest + "_SEED"); s != "" {
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			p.Seed = n
		}
	}
	return p
}

// TestCrashRecoveryBrokerRestart is the crash test: stage processes in one
// consumer group under load-test traffic with consent churn are SIGKILLed at
// random moments and restarted each time, and the broker is restarted once
// mid-run. The oracle must find no loss and no leak; duplicates are allowed
// (at-least-once) but bounded by what was uncommitted at each fault: for
// every kill and for the broker restart, the records between the group's
// committed offsets just before the fault and the inputs' end offsets just
// after it.
//
// The reduced form (3 kills, ~20 s) runs in the test command; the full form
// (12 kills, 2 min) is scripts/crashtest.sh. It restarts the broker, hence
// the name: scripts/test.sh runs it alone, after every other test.
func TestCrashRecoveryBrokerRestart(t *testing.T) {
	addr := kafkatest.Brokers(t)
	plan := crashPlanFromEnv()
	cfg := stageConfig(t, addr)
	topics, err := wire.LoadtestTopics(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	cfgPath := filepath.Join(t.TempDir(), "stage.yaml")
	if err := os.WriteFile(cfgPath, configYAML(t, cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "stages.log")
	outDir := os.Getenv(EnvCrashTest + "_OUT")
	if outDir != "" {
		logPath = filepath.Join(outDir, "stages.log")
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	d := &crashDriver{
		t: t, plan: plan, addr: addr, group: cfg.Stage.GroupID, inputs: topics.Inputs[:],
		start: wire.SubprocessStage(bin, cfgPath, []string{addr}, &syncWriter{w: logFile}),
		rng:   rand.New(rand.NewPCG(plan.Seed, 0xfa17)),
	}
	t.Logf("crash test: %d kills and 1 broker restart over %s of traffic at %.0f events/s, %d stage processes (seed %d)",
		plan.Kills, plan.Duration, plan.Rate, plan.Instances, plan.Seed)
	ctx, cancel := context.WithTimeout(context.Background(), plan.Duration+8*time.Minute)
	defer cancel()
	rep, err := loadtest.Run(ctx, loadtest.Config{
		Brokers: []string{addr}, Topics: topics, Partitions: 3,
		Duration: plan.Duration, Rate: plan.Rate, ChurnRate: 5, Quiet: true, Seed: plan.Seed,
		MaxStaleness: cfg.Consent.MaxStalenessOrDefault(),
		// Recovery: each kill costs the group a session timeout (10 s)
		// before the dead member's partitions move; the broker restart
		// about 20 s. The drain must outlast the faults still pending when
		// traffic ends.
		DrainTimeout: 3 * time.Minute,
		Instances:    plan.Instances, OutDir: outDir,
		StartStage: d.stageFunc(),
	})
	d.halt()
	for _, e := range d.errors() {
		t.Errorf("fault driver: %v", e)
	}
	if err != nil {
		t.Fatalf("%v (stage logs: %s)", err, logPath)
	}
	var b bytes.Buffer
	d.writeFaults(&b)
	t.Logf("\n%s", b.String())
	if outDir != "" {
		_ = os.WriteFile(filepath.Join(outDir, "faults.txt"), b.Bytes(), 0o644)
	}
	report(t, rep)
	kills, restarts, bound := d.totals()
	if kills < plan.Kills || restarts != 1 {
		t.Errorf("faults injected: %d kills and %d broker restarts, want %d and 1", kills, restarts, plan.Kills)
	}
	t.Logf("duplicates: %d outcome records beyond the first (bound: %d records uncommitted at the faults)",
		rep.Counts.Duplicates, bound)
	if rep.Counts.Duplicates > bound {
		t.Errorf("duplicates %d exceed the records uncommitted at the faults (%d): something was re-processed that had been committed",
			rep.Counts.Duplicates, bound)
	}
}

// crashDriver is a StageFunc that keeps Instances stage processes running
// and, from a goroutine, injects the plan's faults at random moments of the
// traffic window: SIGKILL of a random process (a new one is started at
// once), and one broker restart in the middle.
type crashDriver struct {
	t      *testing.T
	plan   crashPlan
	addr   string
	group  string
	inputs []string
	start  loadtest.StageFunc
	rng    *rand.Rand

	mu      sync.Mutex
	slots   []*slot
	faults  []fault
	errs    []error
	stopCh  chan struct{}
	done    chan struct{}
	once    sync.Once
	started bool
}

// slot is one instance index; proc is its current process.
type slot struct {
	inst loadtest.StageInstance
	proc *proc
}

// proc is one incarnation of a stage process.
type proc struct {
	cancel  context.CancelFunc // SIGKILLs it (SubprocessStage)
	ready   chan struct{}      // closed when start returned
	stop    func() error       // nil if start failed
	started time.Time
}

// fault is one injected fault and what was uncommitted when it hit.
type fault struct {
	At          time.Duration // since the first instance started
	Kind        string        // "kill" or "broker restart"
	Instance    int
	Consuming   bool          // the killed process had joined the group
	Uncommitted int64         // end offsets after − committed offsets before
	Took        time.Duration // broker restart
}

func (d *crashDriver) stageFunc() loadtest.StageFunc {
	return func(ctx context.Context, inst loadtest.StageInstance) (func() error, error) {
		s := &slot{inst: inst}
		p := d.launch(ctx, s)
		<-p.ready
		if p.stop == nil {
			return nil, fmt.Errorf("stage instance %d did not start", inst.Index)
		}
		d.mu.Lock()
		d.slots = append(d.slots, s)
		last := len(d.slots) == inst.Count
		d.mu.Unlock()
		if last {
			d.stopCh, d.done = make(chan struct{}), make(chan struct{})
			d.started = true
			go d.loop(ctx)
		}
		return func() error {
			d.halt()
			d.mu.Lock()
			p := s.proc
			d.mu.Unlock()
			<-p.ready
			if p.stop == nil {
				return nil
			}
			return p.stop()
		}, nil
	}
}

// launch starts a process for s in the background; a start that fails on
// its own (not killed) is retried.
func (d *crashDriver) launch(ctx context.Context, s *slot) *proc {
	pctx, cancel := context.WithCancel(ctx)
	p := &proc{cancel: cancel, ready: make(chan struct{}), started: time.Now()}
	d.mu.Lock()
	s.proc = p
	d.mu.Unlock()
	go func() {
		defer close(p.ready)
		for pctx.Err() == nil {
			stop, err := d.start(pctx, s.inst)
			if err == nil {
				p.stop = stop
				return
			}
			if pctx.Err() == nil {
				d.fail(fmt.Errorf("instance %d start: %v: %w", s.inst.Index, err, errStartRetry))
				time.Sleep(time.Second)
			}
		}
	}()
	return p
}

// halt stops injecting faults and waits for the one in progress.
func (d *crashDriver) halt() {
	d.once.Do(func() {
		if d.started {
			close(d.stopCh)
			<-d.done
		}
	})
}

// loop injects the faults at times drawn uniformly over the first 60 % of
// the traffic window, the broker restart as the middle one, and at least
// minFaultGap after the previous fault ended (a fault due while the
// previous one still recovers goes then). Every fault so lands before the
// oracle can have drained.
func (d *crashDriver) loop(ctx context.Context) {
	defer close(d.done)
	t0 := time.Now()
	n := d.plan.Kills + 1
	at := make([]time.Duration, n)
	for i := range at {
		at[i] = time.Duration(d.rng.Int64N(int64(d.plan.Duration) * 6 / 10))
	}
	sort.Slice(at, func(i, j int) bool { return at[i] < at[j] })
	restartAt := n / 2
	var last time.Time
	for i, due := range at {
		wait := max(time.Until(t0.Add(due)), time.Until(last.Add(minFaultGap)), 0)
		select {
		case <-d.stopCh:
			return
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if i == restartAt {
			d.restartBroker(ctx, t0)
		} else {
			d.kill(ctx, t0)
		}
		last = time.Now()
	}
}

const minFaultGap = 2 * time.Second

func (d *crashDriver) kill(ctx context.Context, t0 time.Time) {
	s, p := d.victim(ctx)
	if p == nil {
		return
	}
	before := d.committed(ctx)
	f := fault{At: time.Since(t0), Kind: "kill", Instance: s.inst.Index, Consuming: true}
	p.cancel() // SIGKILL
	<-p.ready
	if p.stop != nil {
		_ = p.stop() // reap: reports "killed"
	}
	f.Uncommitted = d.uncommitted(ctx, before)
	d.launch(ctx, s)
	d.mu.Lock()
	d.faults = append(d.faults, f)
	d.mu.Unlock()
}

// victim picks a random instance whose process has joined the group and
// consumes (so that the kill lands on in-flight work, not on a start-up),
// waiting for one if every instance is starting.
func (d *crashDriver) victim(ctx context.Context) (*slot, *proc) {
	for {
		var ready []*slot
		d.mu.Lock()
		for _, s := range d.slots {
			select {
			case <-s.proc.ready:
				if s.proc.stop != nil {
					ready = append(ready, s)
				}
			default:
			}
		}
		d.mu.Unlock()
		if len(ready) > 0 {
			s := ready[d.rng.IntN(len(ready))]
			d.mu.Lock()
			defer d.mu.Unlock()
			return s, s.proc
		}
		select {
		case <-d.stopCh:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *crashDriver) restartBroker(ctx context.Context, t0 time.Time) {
	before := d.committed(ctx)
	f := fault{At: time.Since(t0), Kind: "broker restart", Instance: -1}
	start := time.Now()
	tb := &goTB{TB: d.t}
	kafkatest.RestartBroker(tb) // scripts/kafka/broker.sh restart, for KAFKA_RUN_DIR's broker
	if tb.err != nil {
		d.fail(tb.err)
	}
	f.Took = time.Since(start)
	f.Uncommitted = d.uncommitted(ctx, before)
	d.mu.Lock()
	d.faults = append(d.faults, f)
	d.mu.Unlock()
}

// committed returns the group's committed offset per input partition
// (partitions without one count from 0: the topics are the run's own).
func (d *crashDriver) committed(ctx context.Context) map[string]map[int]int64 {
	c := &kafka.Client{Addr: kafka.TCP(d.addr), Timeout: 10 * time.Second}
	req := &kafka.OffsetFetchRequest{GroupID: d.group, Topics: map[string][]int{}}
	for _, in := range d.inputs {
		req.Topics[in] = []int{0, 1, 2}
	}
	for attempt := 0; ; attempt++ {
		res, err := c.OffsetFetch(ctx, req)
		if err == nil && res.Error == nil {
			out := map[string]map[int]int64{}
			for topic, parts := range res.Topics {
				out[topic] = map[int]int64{}
				for _, p := range parts {
					out[topic][p.Partition] = max(p.CommittedOffset, 0)
				}
			}
			return out
		}
		if attempt == 20 || ctx.Err() != nil {
			d.fail(fmt.Errorf("offset fetch: %v %v", err, res))
			return map[string]map[int]int64{}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// uncommitted is the bound on what the fault can make the group re-process:
// end offsets now minus the committed offsets before the fault.
func (d *crashDriver) uncommitted(ctx context.Context, before map[string]map[int]int64) int64 {
	var n int64
	for _, in := range d.inputs {
		var end map[int]int64
		var err error
		for attempt := 0; attempt < 60; attempt++ { // the broker may still be starting
			if _, end, err = kafkatest.Offsets(ctx, d.addr, in); err == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			d.fail(fmt.Errorf("end offsets of %s: %v", in, err))
			continue
		}
		for p, e := range end {
			n += max(e-before[in][p], 0)
		}
	}
	return n
}

func (d *crashDriver) fail(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.errs = append(d.errs, err)
}

func (d *crashDriver) errors() []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Start retries are reported but are not failures by themselves: the
	// oracle judges whether anything was lost.
	var out []error
	for _, e := range d.errs {
		if !errors.Is(e, errStartRetry) {
			out = append(out, e)
		}
	}
	return out
}

var errStartRetry = errors.New("start retried")

func (d *crashDriver) totals() (kills, restarts int, bound int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.faults {
		if f.Kind == "kill" {
			kills++
		} else {
			restarts++
		}
		bound += f.Uncommitted
	}
	return kills, restarts, bound
}

func (d *crashDriver) writeFaults(b *bytes.Buffer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(b, "faults injected (%d):\n", len(d.faults))
	for i, f := range d.faults {
		switch f.Kind {
		case "kill":
			state := "consuming"
			if !f.Consuming {
				state = "starting"
			}
			fmt.Fprintf(b, "  %2d  t=%6.1fs  SIGKILL instance %d (%s), uncommitted %d\n", i+1, f.At.Seconds(), f.Instance, state, f.Uncommitted)
		default:
			fmt.Fprintf(b, "  %2d  t=%6.1fs  broker restart (%.1fs), uncommitted %d\n", i+1, f.At.Seconds(), f.Took.Seconds(), f.Uncommitted)
		}
	}
	for _, e := range d.errs {
		fmt.Fprintf(b, "  note: %v\n", e)
	}
}

// goTB lets a kafkatest helper run off the test goroutine, where Fatalf
// must not be called: it records the failure instead.
type goTB struct {
	testing.TB
	err error
}

func (g *goTB) Helper() {}
func (g *goTB) Fatalf(format string, args ...any) {
	g.err = fmt.Errorf(format, args...)
}
