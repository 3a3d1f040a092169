package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// checkpointVersion is bumped when the file's meaning changes.
const checkpointVersion = 1

// Checkpoint is a replay's resumable state: what it reads, where each source
// stands after the last acknowledged batch, and how long each output file
// was then. It is written as JSON after every acknowledged batch.
type Checkpoint struct {
	Version int  `json:"version"`
	Done    bool `json:"done"`
	// The source: Topic with Partitions, or Files.
	Topic      string         `json:"topic,omitempty"`
	FromOffset int64          `json:"from_offset,omitempty"`
	FromTime   string         `json:"from_time,omitempty"`
	ToTime     string         `json:"to_time,omitempty"`
	Partitions []PartitionPos `json:"partitions,omitempty"`
	Files      []FilePos      `json:"files,omitempty"`
	// Where each class of record goes.
	Output     RoutePos `json:"output"`
	Quarantine RoutePos `json:"quarantine"`
	Audit      RoutePos `json:"audit"`
	// Counts so far, over every run of this replay.
	Counts    Counts    `json:"counts"`
	UpdatedAt time.Time `json:"updated_at"`
}

// PartitionPos is one source partition: Next is the offset after the last
// acknowledged batch; the replay of the partition ends at End, read once at
// the start.
type PartitionPos struct {
	Partition int   `json:"partition"`
	Start     int64 `json:"start"`
	Next      int64 `json:"next"`
	End       int64 `json:"end"`
}

// FilePos is one source file: Line lines (Offset uncompressed bytes) were
// acknowledged. Size is the file's size when the replay started; a resumed
// replay refuses a file whose size changed.
type FilePos struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	Line   int64  `json:"line"`
	Offset int64  `json:"offset"`
	Done   bool   `json:"done"`
}

// RoutePos is where one class of record goes: a topic ("" = the topic the
// processor names), or a file and its acknowledged length in bytes.
type RoutePos struct {
	Topic string `json:"topic,omitempty"`
	File  string `json:"file,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
}

// Counts are a replay's record counts.
type Counts struct {
	// In counts records read from the source and processed.
	In int64 `json:"in"`
	// Allow and Anonymized count forwarded records by level.
	Allow      int64 `json:"allow"`
	Anonymized int64 `json:"anonymized"`
	// Denied records went to audit; Quarantined ones to quarantine.
	Denied      int64 `json:"denied"`
	Quarantined int64 `json:"quarantined"`
	// Skipped counts topic records inside the offset range but outside the
	// time range, and blank lines in files.
	Skipped int64 `json:"skipped"`
}

func (c *Counts) add(o Counts) {
	c.In += o.In
	c.Allow += o.Allow
	c.Anonymized += o.Anonymized
	c.Denied += o.Denied
	c.Quarantined += o.Quarantined
	c.Skipped += o.Skipped
}

// ReadCheckpoint reads a checkpoint file.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Checkpoint
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("replay: checkpoint %s: %w", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("replay: checkpoint %s: version %d, want %d", path, c.Version, checkpointVersion)
	}
	return &c, nil
}

// write replaces the checkpoint at path atomically: a reader (or a resumed
// replay after a crash) sees the old or the new checkpoint, never a mix.
// The directory is fsynced only when syncDir is set (the first write of a
// run): after a power loss an older checkpoint may be what survives a
// later rename, which is safe, as files only grow and a resumed replay
// truncates them to the lengths the checkpoint it reads recorded.
func (c *Checkpoint) write(path string, dirSync bool) error {
	c.UpdatedAt = time.Now().UTC()
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("replay: checkpoint: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replay: checkpoint: %w", err)
	}
	if dirSync {
		syncDir(filepath.Dir(path))
	}
	return nil
}

// syncDir makes a rename in dir durable; best effort (not every platform
// can fsync a directory).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// errMismatch reports a checkpoint that belongs to another replay.
var errMismatch = errors.New("the checkpoint belongs to a different replay")

// sameReplay reports how want (built from the options) differs from the
// checkpoint c, or nil when c can be resumed with these options.
func (c *Checkpoint) sameReplay(want *Checkpoint) error {
	diff := func(what string, a, b any) error {
		return fmt.Errorf("%w: %s is %v in the checkpoint, %v now", errMismatch, what, a, b)
	}
	switch {
	case c.Topic != want.Topic:
		return diff("the source topic", c.Topic, want.Topic)
	case c.FromOffset != want.FromOffset:
		return diff("the start offset", c.FromOffset, want.FromOffset)
	case c.FromTime != want.FromTime:
		return diff("the start time", c.FromTime, want.FromTime)
	case c.ToTime != want.ToTime:
		return diff("the end time", c.ToTime, want.ToTime)
	case c.Output.Topic != want.Output.Topic || c.Output.File != want.Output.File:
		return diff("the output", c.Output, want.Output)
	case c.Quarantine.Topic != want.Quarantine.Topic || c.Quarantine.File != want.Quarantine.File:
		return diff("the quarantine output", c.Quarantine, want.Quarantine)
	case c.Audit.Topic != want.Audit.Topic || c.Audit.File != want.Audit.File:
		return diff("the audit output", c.Audit, want.Audit)
	}
	paths := func(fs []FilePos) []string {
		out := make([]string, len(fs))
		for i, f := range fs {
			out[i] = f.Path
		}
		return out
	}
	if a, b := paths(c.Files), paths(want.Files); !slices.Equal(a, b) {
		return diff("the source files", a, b)
	}
	return nil
}
