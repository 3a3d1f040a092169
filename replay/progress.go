package replay

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress is the progress bar; a nil *progress shows nothing.
type progress struct {
	bar *progressbar.ProgressBar
	w   io.Writer
}

// newProgress shows total units (records, or source bytes for files), of
// which done are already replayed (a resumed replay).
func newProgress(w io.Writer, total, done int64, bytes bool) *progress {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("replay"),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rec"))
	}
	bar := progressbar.NewOptions64(max(total, 1), opts...)
	if done > 0 {
		_ = bar.Set64(done)
	}
	return &progress{bar: bar, w: w}
}

func (p *progress) add(n int64) {
	if p != nil && n > 0 {
		_ = p.bar.Add64(n)
	}
}

func (p *progress) finish() {
	if p != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}
