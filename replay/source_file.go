package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/segmentio/kafka-go"
)

// Compression formats of source files, told apart by their first bytes.
var (
	magicGzip = []byte{0x1f, 0x8b}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// fileSource reads JSON lines from files, in order, one file per chunk.
type fileSource struct {
	files   []FilePos // the source's own position: ahead of the acknowledged one
	idx     int
	cur     *lineFile
	batch   int
	maxLine int
	bufHint int // the largest chunk buffer so far
	spans   []lineSpan
}

type lineSpan struct {
	start, end int
	line       int64
}

// lineFile is one open source file.
type lineFile struct {
	f        *os.File
	raw      *countingReader // compressed bytes read, for progress
	dec      io.Closer       // the decompressor, if any
	r        *bufio.Reader
	input    string // the file's base name: the "topic" of its source coordinates
	line     int64
	offset   int64
	reported int64
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// openLineFile opens pos.Path at pos (for compressed files by decompressing
// and discarding pos.Offset bytes: their streams cannot be entered midway).
func openLineFile(pos *FilePos) (*lineFile, error) {
	f, err := os.Open(pos.Path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("replay: %w", err)
	}
	if st.Size() != pos.Size {
		f.Close()
		return nil, fmt.Errorf("replay: %s: size %d, was %d when the replay started: the file changed", pos.Path, st.Size(), pos.Size)
	}
	lf := &lineFile{f: f, raw: &countingReader{r: f}, input: filepath.Base(pos.Path), line: pos.Line, offset: pos.Offset}
	head := bufio.NewReaderSize(lf.raw, 1<<20)
	magic, _ := head.Peek(4)
	var dec io.Reader
	switch {
	case bytes.HasPrefix(magic, magicGzip):
		zr, err := gzip.NewReader(head)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("replay: %s: gzip: %w", pos.Path, err)
		}
		dec, lf.dec = zr, zr
	case bytes.HasPrefix(magic, magicZstd):
		zr, err := zstd.NewReader(head, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("replay: %s: zstd: %w", pos.Path, err)
		}
		dec, lf.dec = zr, zstdCloser{zr}
	default:
		if pos.Offset > 0 {
			if _, err := f.Seek(pos.Offset, io.SeekStart); err != nil {
				f.Close()
				return nil, fmt.Errorf("replay: %s: %w", pos.Path, err)
			}
			lf.raw.n = pos.Offset
			head.Reset(lf.raw)
		}
		lf.r = head
		return lf, nil
	}
	lf.r = bufio.NewReaderSize(dec, 1<<20)
	if pos.Offset > 0 {
		if n, err := lf.r.Discard(int(pos.Offset)); err != nil {
			lf.close()
			return nil, fmt.Errorf("replay: %s: skipping to the checkpoint's offset %d (reached %d): %w", pos.Path, pos.Offset, n, err)
		}
	}
	return lf, nil
}

type zstdCloser struct{ d *zstd.Decoder }

func (z zstdCloser) Close() error { z.d.Close(); return nil }

func (lf *lineFile) close() {
	if lf.dec != nil {
		lf.dec.Close()
	}
	lf.f.Close()
}

func (s *fileSource) next(_ context.Context, c *chunk) error {
	for s.cur == nil {
		if s.idx >= len(s.files) {
			return io.EOF
		}
		if s.files[s.idx].Done {
			s.idx++
			continue
		}
		lf, err := openLineFile(&s.files[s.idx])
		if err != nil {
			return err
		}
		s.cur = lf
	}
	lf, pos := s.cur, &s.files[s.idx]
	c.input = lf.input
	// Size the chunk once from the previous ones rather than growing it.
	if cap(c.buf) < s.bufHint {
		c.buf = make([]byte, 0, s.bufHint+s.bufHint/4)
	}
	if cap(c.msgs) < s.batch {
		c.msgs = make([]kafka.Message, 0, s.batch)
	}
	defer func() { s.bufHint = max(s.bufHint, len(c.buf)) }()
	spans := s.spans[:0]
	defer func() { s.spans = spans[:0] }()
	var eof bool
	for len(spans) < s.batch {
		start := len(c.buf)
		var (
			err  error
			full bool
		)
		for {
			var frag []byte
			frag, err = lf.r.ReadSlice('\n')
			lf.offset += int64(len(frag))
			// An over-long line keeps only maxLine+1 bytes: enough for the
			// processor to quarantine it as too large without holding it.
			if room := s.maxLine + 1 - (len(c.buf) - start); room > 0 {
				c.buf = append(c.buf, frag[:min(len(frag), room)]...)
			} else {
				full = true
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("replay: %s: line %d: %w", pos.Path, lf.line+1, err)
		}
		if len(c.buf) == start && err == io.EOF {
			eof = true
			break
		}
		lf.line++
		body := c.buf[start:]
		if !full {
			body = bytes.TrimRight(body, "\r\n")
		}
		if len(bytes.TrimSpace(body)) == 0 {
			c.buf = c.buf[:start]
			c.counts.Skipped++
		} else {
			spans = append(spans, lineSpan{start, start + len(body), lf.line})
		}
		if err == io.EOF {
			eof = true
			break
		}
	}
	for _, sp := range spans {
		c.msgs = append(c.msgs, kafka.Message{Topic: lf.input, Offset: sp.line, Value: c.buf[sp.start:sp.end:sp.end]})
	}
	pos.Line, pos.Offset = lf.line, lf.offset
	idx := s.idx
	if eof {
		pos.Done = true
		c.progress = pos.Size - lf.reported
		lf.close()
		s.cur = nil
		s.idx++
	} else {
		c.progress = min(lf.raw.n, pos.Size) - lf.reported
	}
	lf.reported += c.progress
	at := *pos
	c.advance = func(cp *Checkpoint) {
		f := &cp.Files[idx]
		f.Line, f.Offset, f.Done = at.Line, at.Offset, at.Done
	}
	return nil
}
