package replay_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/replay"
)

// feed is a consent feed under the test's control.
type feed struct {
	ready     chan struct{}
	staleness atomic.Int64
}

func (f *feed) Ready() bool {
	select {
	case <-f.ready:
		return true
	default:
		return false
	}
}

func (f *feed) WaitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *feed) Staleness() time.Duration { return time.Duration(f.staleness.Load()) }

// TestReplayFailsClosed: nothing is read or written before the consent
// table is ready, and nothing is decided while the feed is too stale.
func TestReplayFailsClosed(t *testing.T) {
	t.Setenv("ANONPROXY_HMAC_KEY", testKey)
	dir := t.TempDir()
	rp := tableReplay(t, refConfig(t))
	in := filepath.Join(dir, "in.jsonl")
	writeJSONL(t, in, chatEvents(30), "")

	t.Run("not ready", func(t *testing.T) {
		out := filepath.Join(dir, "never.jsonl")
		o := fileOptions(rp, out, in)
		o.Consent = &feed{ready: make(chan struct{})}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := replay.Run(ctx, o)
		if !errors.Is(err, replay.ErrInterrupted) {
			t.Fatalf("err %v, want ErrInterrupted", err)
		}
		for _, f := range []string{out, o.Checkpoint} {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s written before consent was ready", f)
			}
		}
	})

	t.Run("stale", func(t *testing.T) {
		out := filepath.Join(dir, "stale.jsonl")
		f := &feed{ready: make(chan struct{})}
		close(f.ready)
		f.staleness.Store(int64(time.Hour))
		o := fileOptions(rp, out, in)
		o.Consent, o.MaxStaleness = f, time.Second
		done := make(chan error, 1)
		go func() { _, err := replay.Run(context.Background(), o); done <- err }()
		time.Sleep(200 * time.Millisecond)
		if st, err := os.Stat(out); err != nil || st.Size() != 0 {
			t.Fatalf("output written while consent was stale: %v %v", st, err)
		}
		f.staleness.Store(0)
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("replay did not resume once consent was fresh")
		}
		checkFileOutputs(t, out, 30, "in.jsonl")
	})
}
