package replay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/proxy"
)

// Producer writes records to Kafka and returns once they are acknowledged
// (or failed). *kafka.Writer from proxy.NewWriter (RequireAll) implements it.
type Producer interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// fileSink is one JSONL output file. Records of a batch are buffered and
// written, as one zstd frame for a .zst file, and fsynced by write.
type fileSink struct {
	path string
	f    *os.File
	zenc *zstd.Encoder // nil: plain
	out  []byte        // compressed frame
	size int64         // acknowledged length
}

// openFileSink opens path for appending at size bytes. A resumed replay
// truncates what a crash left after the acknowledged length; a fresh one
// refuses an existing non-empty file rather than overwrite it.
func openFileSink(path string, size int64, resume bool) (*fileSink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replay: %w", err)
	}
	switch {
	case !resume && st.Size() > 0:
		f.Close()
		return nil, fmt.Errorf("replay: %s exists and is not empty: remove it, or resume the replay that wrote it", path)
	case st.Size() < size:
		f.Close()
		return nil, fmt.Errorf("replay: %s is %d bytes, shorter than the %d the checkpoint acknowledged: it was changed, cannot resume", path, st.Size(), size)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("replay: truncating %s to the checkpoint: %w", path, err)
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("replay: %w", err)
	}
	s := &fileSink{path: path, f: f, size: size}
	if strings.HasSuffix(path, ".zst") {
		if s.zenc, err = frameEncoder(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return s, nil
}

// frameEncoder is shared by every zstd sink: EncodeAll is safe for
// concurrent use, and its encoders' history buffers are reused.
var frameEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
})

// write appends data (whole records) and fsyncs: after it returns nil
// they are acknowledged, and size is a record (for zstd, frame) boundary.
func (s *fileSink) write(data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if s.zenc != nil {
		s.out = s.zenc.EncodeAll(data, s.out[:0])
		data = s.out
	}
	if _, err := s.f.Write(data); err != nil {
		return fmt.Errorf("replay: write %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("replay: fsync %s: %w", s.path, err)
	}
	s.size += int64(len(data))
	return nil
}

func (s *fileSink) close() error { return s.f.Close() }

// produce writes msgs until every one is acknowledged, retrying only the
// failed ones with capped exponential backoff. A batch in flight is
// finished even when ctx ends (the replay stops after it), unless it keeps
// failing for maxWriteAttempts attempts.
func produce(ctx context.Context, p Producer, msgs []kafka.Message, log *slog.Logger) error {
	const maxWriteAttempts = 10
	pending := msgs
	wait := 100 * time.Millisecond
	for attempt := 1; len(pending) > 0; attempt++ {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		err := p.WriteMessages(wctx, pending...)
		cancel()
		if err == nil {
			return nil
		}
		if attempt >= maxWriteAttempts || (ctx.Err() != nil && attempt >= 3) {
			return fmt.Errorf("replay: produce %d records: not acknowledged after %d attempts: %w", len(pending), attempt, err)
		}
		pending = proxy.Unacknowledged(pending, err)
		log.Warn("produce not acknowledged; retrying, the checkpoint does not move meanwhile", "records", len(pending), "attempt", attempt, "error", err.Error())
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Second)
	}
	return nil
}
