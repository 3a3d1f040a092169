package wire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/loadtest"
)

// LoadtestTopics returns the load test's view of a config's topics. The
// load test knows the three reference streams, in the order chat, files,
// messages.
func LoadtestTopics(cfg *config.File) (loadtest.Topics, error) {
	t := loadtest.Topics{Quarantine: cfg.Stage.QuarantineTopic, Audit: cfg.Stage.AuditTopic, Consent: cfg.Consent.Topic}
	for i, name := range []string{"chat", "files", "messages"} {
		s, err := cfg.Stream(name)
		if err != nil {
			return t, fmt.Errorf("the load test drives the reference streams: %w", err)
		}
		t.Inputs[i], t.Outputs[i] = s.Input, s.Output
	}
	return t, nil
}

// InProcessStage starts stages inside this process with cfg. Cancelling an
// instance's ctx without calling stop (the load test's kill) abandons it
// the way a crash would as far as the group is concerned; use
// SubprocessStage for a real SIGKILL.
func InProcessStage(cfg *config.File, log *slog.Logger) loadtest.StageFunc {
	return func(ctx context.Context, inst loadtest.StageInstance) (func() error, error) {
		app, err := Build(cfg, log, nil)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- app.Run(rctx, 30*time.Second) }()
		if err := waitReady(ctx, app.Stage.Ready, done); err != nil {
			cancel()
			return nil, err
		}
		return func() error { cancel(); return <-done }, nil
	}
}

// SubprocessStage starts each instance as `bin run -config cfgPath` with
// ANONPROXY_BROKERS set to brokers. A cancelled ctx SIGKILLs the process
// (a crash: nothing flushed, nothing committed); stop sends SIGTERM (the
// graceful drain) and waits. The instance's logs go to logs.
func SubprocessStage(bin, cfgPath string, brokers []string, logs io.Writer) loadtest.StageFunc {
	return func(ctx context.Context, inst loadtest.StageInstance) (func() error, error) {
		cmd := exec.Command(bin, "run", "-config", cfgPath, "-http", "127.0.0.1:0")
		cmd.Env = append(os.Environ(), "ANONPROXY_BROKERS="+strings.Join(brokers, ","))
		cmd.Stdout = logs
		stderr, err := cmd.StderrPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		// Ready once the process logs its first partition assignment.
		assigned := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			first := true
			for sc.Scan() {
				fmt.Fprintln(logs, sc.Text())
				if first && strings.Contains(sc.Text(), `"msg":"assigned"`) {
					first = false
					close(assigned)
				}
			}
		}()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		killed := make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
				cmd.Process.Kill()
				close(killed)
			case <-killed:
			}
		}()
		select {
		case <-assigned:
		case err := <-done:
			done <- err
			return nil, fmt.Errorf("stage process exited during start: %v", err)
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			return nil, errors.New("stage process not consuming within 60 s")
		}
		var stopped error
		return func() error {
			// A stop right after ctx is cancelled (the load test's kill, the
			// crash test's reaping) must not race the SIGKILL with a SIGTERM:
			// the process would start its graceful drain first.
			if ctx.Err() != nil {
				<-killed
			}
			select {
			case <-killed:
				<-done
				return errors.New("killed")
			default:
			}
			if kb := peakRSSKiB(cmd.Process.Pid); kb > 0 {
				fmt.Fprintf(logs, "anonproxy run (instance %d, pid %d): peak RSS %d MiB\n", inst.Index, cmd.Process.Pid, kb>>10)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case stopped = <-done:
			case <-time.After(45 * time.Second):
				cmd.Process.Kill()
				stopped = errors.New("did not stop within 45 s of SIGTERM")
			}
			return stopped
		}, nil
	}
}

func waitReady(ctx context.Context, ready func() bool, done chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for !ready() {
		select {
		case err := <-done:
			return fmt.Errorf("stage stopped during start: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("stage not ready within 60 s")
		}
	}
	return nil
}

// peakRSSKiB is a process's peak resident set (VmHWM) in KiB, or 0.
func peakRSSKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}
