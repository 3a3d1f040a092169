package loadtest

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress draws a bar of accounted inputs with live rates on stderr. It is
// off when Quiet is set or stderr is not a terminal.
type progress struct {
	bar  *progressbar.ProgressBar
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	mu   sync.Mutex
}

func newProgress(cfg Config, generated, accounted *atomic.Int64) *progress {
	p := &progress{stop: make(chan struct{})}
	if cfg.Quiet || !term.IsTerminal(int(os.Stderr.Fd())) {
		return p
	}
	max := int64(-1)
	if cfg.Events > 0 {
		max = cfg.Events
	}
	p.bar = progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("load test"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionFullWidth(),
	)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		var lastG, lastA int64
		last := time.Now()
		for {
			select {
			case <-p.stop:
				return
			case now := <-tick.C:
				g, a := generated.Load(), accounted.Load()
				dt := now.Sub(last).Seconds()
				p.mu.Lock()
				p.bar.Describe(fmt.Sprintf("produced %d (%.0f/s) · accounted (%.0f/s)", g, float64(g-lastG)/dt, float64(a-lastA)/dt))
				_ = p.bar.Set64(a)
				p.mu.Unlock()
				lastG, lastA, last = g, a, now
			}
		}
	}()
	return p
}

// setMax fixes the bar's total once generation has ended.
func (p *progress) setMax(n int64) {
	if p.bar == nil {
		return
	}
	p.mu.Lock()
	p.bar.ChangeMax64(n)
	p.mu.Unlock()
}

func (p *progress) finish() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		if p.bar != nil {
			_ = p.bar.Finish()
			fmt.Fprintln(os.Stderr)
		}
	})
}
