package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/proxy"
)

// Options configure one replay. The zero value of every optional field
// works. Exactly one source: Topic, or Files.
type Options struct {
	// Processor returns the processor for records read from input: the
	// source topic, or a file's base name (records from files carry the
	// source coordinates <file base name>/0/<line number>, so the processor
	// must treat input as its stream's input topic). It is called again for
	// every file; required.
	Processor func(input string) (*proxy.Processor, error)
	// QuarantineTopic and AuditTopic are the topics the processor writes
	// quarantine and audit records to: how the replay tells the three
	// classes of output apart. Required.
	QuarantineTopic, AuditTopic string
	// Consent, if set, must be ready before anything is read (fail closed),
	// and processing pauses while its Staleness exceeds MaxStaleness.
	// Nil: the processor's decider was filled and marked ready by the caller.
	Consent proxy.Feed
	// MaxStaleness of the consent feed. Default: 1s.
	MaxStaleness time.Duration

	// Topic is a source topic, read through Clients, from FromOffset (clamped
	// to the first offset; default: the first offset) or, if set, the first
	// record at or after FromTime, up to the end offsets read when the replay
	// starts, or to the first record at or after ToTime if set. Records in
	// that offset range whose timestamps are outside [FromTime, ToTime) are
	// skipped (timestamps need not grow with offsets).
	Topic            string
	Clients          *proxy.Clients
	FromOffset       int64
	FromTime, ToTime time.Time
	// FetchMaxBytes bounds one fetch of a topic source. Default: 8 MiB.
	FetchMaxBytes int

	// Files are source JSONL files, plain, gzip or zstd (detected by their
	// magic bytes), read in this order.
	Files []string
	// MaxLineBytes: longer lines are cut to MaxLineBytes+1 bytes, which the
	// processor then quarantines as too large (set it above the stage's
	// max_event_bytes). Default: 64 MiB.
	MaxLineBytes int

	// Output, Quarantine and Audit route the three classes of records: to a
	// file, or to a topic (Route{}: the topic the processor names, e.g. the
	// stream's output topic). Producer writes what goes to topics; it is
	// required when a route is a topic and must wait for all in-sync
	// replicas (proxy.NewWriter).
	Output, Quarantine, Audit Route
	Producer                  Producer

	// Checkpoint is the checkpoint file, written after every acknowledged
	// batch. Empty: the replay cannot be resumed. Without Resume, an
	// existing checkpoint is an error (it belongs to another replay).
	Checkpoint string
	// Resume continues the replay recorded in Checkpoint; without a
	// checkpoint file it starts a new replay.
	Resume bool
	// BatchSize: the most records per batch (one acknowledgement, one
	// checkpoint). Default: 1000.
	BatchSize int
	// Workers decide and redact batches in parallel; outputs and
	// checkpoints stay in source order. Default: GOMAXPROCS.
	Workers int
	// Progress, if set, shows a progress bar with rate and ETA.
	Progress io.Writer
	// Log receives warnings (never payload bytes). Default: discard.
	Log *slog.Logger
}

// Route is where one class of record goes: File, or a topic (Topic, or the
// processor's topic when both are empty).
type Route struct {
	Topic string
	File  string
}

func (r Route) toTopic() bool { return r.File == "" }

func (o *Options) batchSize() int { return orInt(o.BatchSize, 1000) }
func (o *Options) workers() int   { return orInt(o.Workers, runtime.GOMAXPROCS(0)) }
func (o *Options) maxLine() int   { return orInt(o.MaxLineBytes, 64<<20) }
func (o *Options) maxBytes() int  { return orInt(o.FetchMaxBytes, 8<<20) }
func (o *Options) maxStaleness() time.Duration {
	if o.MaxStaleness <= 0 {
		return time.Second
	}
	return o.MaxStaleness
}

func orInt(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// Validate reports the first problem with o, naming the field.
func (o *Options) Validate() error {
	routes := []struct {
		name string
		r    Route
	}{{"Output", o.Output}, {"Quarantine", o.Quarantine}, {"Audit", o.Audit}}
	switch {
	case o.Processor == nil:
		return errors.New("replay: Options.Processor is required")
	case o.QuarantineTopic == "" || o.AuditTopic == "":
		return errors.New("replay: Options.QuarantineTopic and AuditTopic are required")
	case (o.Topic == "") == (len(o.Files) == 0):
		return errors.New("replay: set exactly one source: Options.Topic or Options.Files")
	case o.Topic != "" && (o.Clients == nil || len(o.Clients.Brokers) == 0 || o.Clients.Dialer == nil):
		return errors.New("replay: Options.Clients (brokers and dialer) is required with a topic source")
	case o.Topic == "" && (o.FromOffset != 0 || !o.FromTime.IsZero() || !o.ToTime.IsZero()):
		return errors.New("replay: Options.FromOffset, FromTime and ToTime apply to a topic source only")
	case o.FromOffset < 0:
		return errors.New("replay: Options.FromOffset must not be negative")
	case !o.FromTime.IsZero() && !o.ToTime.IsZero() && !o.ToTime.After(o.FromTime):
		return errors.New("replay: Options.ToTime must be after FromTime")
	case o.Resume && o.Checkpoint == "":
		return errors.New("replay: Options.Resume needs Options.Checkpoint")
	}
	files := map[string]string{}
	for _, r := range routes {
		if r.r.File != "" && r.r.Topic != "" {
			return fmt.Errorf("replay: Options.%s: set File or Topic, not both", r.name)
		}
		if r.r.toTopic() && o.Producer == nil {
			return fmt.Errorf("replay: Options.%s goes to a topic: Options.Producer is required", r.name)
		}
		if r.r.File != "" {
			if other, ok := files[r.r.File]; ok {
				return fmt.Errorf("replay: Options.%s and %s name the same file %s", other, r.name, r.r.File)
			}
			files[r.r.File] = r.name
		}
	}
	bases := map[string]string{}
	for _, f := range o.Files {
		if _, ok := files[f]; ok || f == o.Checkpoint {
			return fmt.Errorf("replay: %s is both a source and an output", f)
		}
		// Base names are the "topic" of source coordinates, which
		// consumers deduplicate on: two files must not share them.
		if other, ok := bases[filepath.Base(f)]; ok {
			return fmt.Errorf("replay: source files %s and %s share the base name %s, so their records would share source coordinates (<base name>/0/<line>): rename or link one", other, f, filepath.Base(f))
		}
		bases[filepath.Base(f)] = f
	}
	return nil
}

// Summary is what a replay did.
type Summary struct {
	// Counts over every run of this replay (they are kept in the checkpoint).
	Counts
	// ThisRun counts what this run processed; Elapsed is its duration.
	ThisRun Counts
	Elapsed time.Duration
	// Resumed: this run continued a checkpointed replay. Done: the source
	// was read to its end.
	Resumed, Done bool
	// Files are the output files written.
	Files []string
}

// Rate is this run's records per second.
func (s *Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.ThisRun.In+s.ThisRun.Skipped) / s.Elapsed.Seconds()
}

// WriteText prints the summary for people.
func (s *Summary) WriteText(w io.Writer) {
	state := "complete"
	if !s.Done {
		state = "interrupted (resume with -resume and the same checkpoint)"
	}
	fmt.Fprintf(w, "replay %s\n", state)
	fmt.Fprintf(w, "  in           %d\n", s.In)
	fmt.Fprintf(w, "  forwarded    %d (anonymized %d, allow %d)\n", s.Anonymized+s.Allow, s.Anonymized, s.Allow)
	fmt.Fprintf(w, "  denied       %d (audit)\n", s.Denied)
	fmt.Fprintf(w, "  quarantined  %d\n", s.Quarantined)
	if s.Skipped > 0 {
		fmt.Fprintf(w, "  skipped      %d (outside the time range, or blank lines)\n", s.Skipped)
	}
	resumed := ""
	if s.Resumed {
		resumed = fmt.Sprintf(" (this run, resumed: %d in)", s.ThisRun.In)
	}
	fmt.Fprintf(w, "  elapsed      %s%s\n", s.Elapsed.Round(time.Millisecond), resumed)
	fmt.Fprintf(w, "  rate         %.0f records/s\n", s.Rate())
	for _, f := range s.Files {
		fmt.Fprintf(w, "  wrote        %s\n", f)
	}
}

// ErrInterrupted is returned (wrapped with the context's error) when ctx
// ends before the source does: every acknowledged batch is in the
// checkpoint, and the replay can be resumed.
var ErrInterrupted = errors.New("replay: interrupted")

// testHookAcked, if set, runs after batch n (0-based, this run) is
// acknowledged and before the checkpoint records it; an error from it ends
// the replay there, as a crash at the worst moment would.
var testHookAcked func(n int) error

// source produces chunks: the records of one batch, from one input.
type source interface {
	next(ctx context.Context, c *chunk) error
}

// chunk is one batch as read from a source.
type chunk struct {
	input    string
	msgs     []kafka.Message
	buf      []byte // owns file records' bytes
	counts   Counts // Skipped, as the source counted it
	progress int64
	advance  func(*Checkpoint) // moves the checkpoint past this chunk
}

func (c *chunk) reset() {
	clear(c.msgs)
	c.msgs, c.buf, c.counts, c.progress, c.advance, c.input = c.msgs[:0], c.buf[:0], Counts{}, 0, nil, ""
}

// Run replays until the source ends or ctx does. It returns the summary
// also with an error; errors.Is(err, ErrInterrupted) when ctx ended.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	sum := &Summary{}
	if o.Consent != nil {
		if err := o.Consent.WaitReady(ctx); err != nil {
			if ctx.Err() != nil {
				return sum, fmt.Errorf("%w before the consent table was ready: %w", ErrInterrupted, ctx.Err())
			}
			return sum, fmt.Errorf("replay: consent table: %w", err)
		}
	}
	cp, err := o.checkpoint(ctx)
	if err != nil {
		return sum, err
	}
	sum.Resumed = cp.UpdatedAt != (time.Time{})
	r := &run{o: &o, cp: cp, sum: sum}
	defer r.closeSinks()
	if err := r.openSinks(); err != nil {
		return sum, err
	}
	sum.Counts = cp.Counts
	if cp.Done {
		sum.Done = true
		return sum, nil
	}
	err = r.loop(ctx)
	sum.Counts, sum.Elapsed = cp.Counts, time.Since(started)
	return sum, err
}

// checkpoint loads the checkpoint to resume, or plans a new replay.
func (o *Options) checkpoint(ctx context.Context) (*Checkpoint, error) {
	want := &Checkpoint{Version: checkpointVersion, Topic: o.Topic, FromOffset: o.FromOffset,
		Output: RoutePos{Topic: o.Output.Topic, File: o.Output.File}, Quarantine: RoutePos{Topic: o.Quarantine.Topic, File: o.Quarantine.File},
		Audit: RoutePos{Topic: o.Audit.Topic, File: o.Audit.File}}
	if !o.FromTime.IsZero() {
		want.FromTime = o.FromTime.UTC().Format(time.RFC3339Nano)
	}
	if !o.ToTime.IsZero() {
		want.ToTime = o.ToTime.UTC().Format(time.RFC3339Nano)
	}
	for _, f := range o.Files {
		want.Files = append(want.Files, FilePos{Path: f})
	}
	if o.Checkpoint != "" {
		cp, err := ReadCheckpoint(o.Checkpoint)
		switch {
		case err == nil && !o.Resume:
			return nil, fmt.Errorf("replay: checkpoint %s exists: resume it (-resume) or remove it", o.Checkpoint)
		case err == nil:
			if err := cp.sameReplay(want); err != nil {
				return nil, fmt.Errorf("replay: cannot resume %s: %w", o.Checkpoint, err)
			}
			return cp, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	for i := range want.Files {
		st, err := os.Stat(want.Files[i].Path)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("replay: %s is not a regular file", want.Files[i].Path)
		}
		want.Files[i].Size = st.Size()
	}
	if o.Topic != "" {
		parts, err := planTopic(ctx, o.Clients, o.Topic, o.FromOffset, o.FromTime, o.ToTime)
		if err != nil {
			return nil, err
		}
		want.Partitions = parts
	}
	return want, nil
}

// run is one Run's state.
type run struct {
	o     *Options
	cp    *Checkpoint
	sum   *Summary
	sinks [3]*fileSink // output, quarantine, audit; nil when routed to a topic
	saved bool         // the checkpoint was written in this run
}

func (r *run) routes() [3]*RoutePos { return [3]*RoutePos{&r.cp.Output, &r.cp.Quarantine, &r.cp.Audit} }

func (r *run) openSinks() error {
	for i, rp := range r.routes() {
		if rp.File == "" {
			continue
		}
		s, err := openFileSink(rp.File, rp.Bytes, r.sum.Resumed)
		if err != nil {
			return err
		}
		r.sinks[i] = s
		r.sum.Files = append(r.sum.Files, rp.File)
	}
	return nil
}

func (r *run) closeSinks() {
	for _, s := range r.sinks {
		if s != nil {
			s.close()
		}
	}
}

func (r *run) newSource() (source, func()) {
	o := r.o
	if o.Topic != "" {
		s := &topicSource{clients: o.Clients, topic: o.Topic, parts: append([]PartitionPos(nil), r.cp.Partitions...),
			fromTime: o.FromTime, toTime: o.ToTime, batch: o.batchSize(), maxBytes: o.maxBytes(), log: o.Log}
		return s, s.close
	}
	s := &fileSource{files: append([]FilePos(nil), r.cp.Files...), batch: o.batchSize(), maxLine: o.maxLine()}
	return s, func() {
		if s.cur != nil {
			s.cur.close()
		}
	}
}

func (r *run) progress() *progress {
	if r.o.Progress == nil {
		return nil
	}
	var total, done int64
	for _, p := range r.cp.Partitions {
		total += p.End - p.Start
		done += p.Next - p.Start
	}
	for _, f := range r.cp.Files {
		total += f.Size
		if f.Done {
			done += f.Size
		}
	}
	return newProgress(r.o.Progress, total, done, r.o.Topic == "")
}

// pending is one batch between processing and acknowledgement: the
// processor's output (kept alive until produced), the bytes for each file
// sink, and the chunk it came from.
type pending struct {
	proc   *proxy.Processor
	b      proxy.Batch
	out    []kafka.Message
	files  [3][]byte
	c      *chunk
	counts Counts
	done   chan error // the worker's result
}

// loop runs a pipeline whose order is the source's: a goroutine reads
// chunks ahead; workers decide and redact them in parallel (each with its
// own proxy.Batch); a committer takes the batches in source order, writes
// each, waits for its acknowledgement (producer acks, fsync), and only
// then moves the checkpoint past it.
func (r *run) loop(ctx context.Context) error {
	src, closeSrc := r.newSource()
	sctx, stop := context.WithCancel(ctx)
	workers := r.o.workers()
	ahead, inFlight := 2, workers+2
	chunks, free := make(chan *chunk, ahead), make(chan *chunk, ahead+inFlight+2)
	for range ahead + inFlight + 2 {
		free <- &chunk{}
	}
	var srcErr error
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		defer close(chunks)
		defer closeSrc()
		for {
			var c *chunk
			select {
			case c = <-free:
			case <-sctx.Done():
				return
			}
			c.reset()
			if srcErr = src.next(sctx, c); srcErr != nil {
				return
			}
			select {
			case chunks <- c:
			case <-sctx.Done():
				return
			}
		}
	}()
	defer func() { stop(); <-srcDone }()

	bar := r.progress()
	defer bar.finish()
	idle := make(chan *pending, inFlight)
	for range inFlight {
		idle <- &pending{done: make(chan error, 1)}
	}
	work, commits := make(chan *pending, inFlight), make(chan *pending, inFlight)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				p.done <- r.process(p)
			}
		}()
	}
	var commitErr error
	failed, committed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(committed)
		n := 0
		for p := range commits {
			err := <-p.done
			if commitErr == nil {
				if err == nil {
					err = r.commit(ctx, p, n, bar)
				}
				if commitErr = err; err != nil {
					close(failed)
				}
				n++
			}
			free <- p.c
			idle <- p
		}
	}()
	err := r.dispatch(ctx, chunks, idle, work, commits, failed)
	close(work)
	close(commits)
	wg.Wait()
	<-committed
	switch {
	case commitErr != nil:
		return commitErr
	case err != nil:
		return err
	case srcErr != io.EOF:
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
		}
		return srcErr
	}
	r.cp.Done, r.sum.Done = true, true
	return r.save()
}

// dispatch hands each chunk, with its processor, to a worker and, in
// source order, to the committer. It returns nil when the chunks end or
// the committer failed.
func (r *run) dispatch(ctx context.Context, chunks <-chan *chunk, idle <-chan *pending, work, commits chan<- *pending, failed <-chan struct{}) error {
	var (
		proc  *proxy.Processor
		input string
	)
	for c := range chunks {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ErrInterrupted, ctx.Err())
		}
		if proc == nil || c.input != input {
			var err error
			if proc, err = r.o.Processor(c.input); err != nil {
				return fmt.Errorf("replay: processor for %s: %w", c.input, err)
			}
			input = c.input
		}
		if len(c.msgs) > 0 {
			if err := r.waitFresh(ctx); err != nil {
				return err
			}
		}
		var p *pending
		select {
		case p = <-idle:
		case <-failed:
			return nil
		}
		p.c, p.proc = c, proc
		work <- p // never blocks: it holds at most inFlight
		commits <- p
	}
	return nil
}

// process decides and redacts one batch (on a worker).
func (r *run) process(p *pending) error {
	c := p.c
	p.counts, p.out = c.counts, p.out[:0]
	for i := range p.files {
		p.files[i] = p.files[i][:0]
	}
	if len(c.msgs) == 0 {
		return nil
	}
	if err := p.proc.Process(&p.b, c.msgs); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	r.route(p)
	p.counts.In += int64(len(c.msgs))
	for _, oc := range p.b.Outcomes {
		switch oc {
		case proxy.Denied:
			p.counts.Denied++
		case proxy.Quarantined:
			p.counts.Quarantined++
		}
	}
	p.counts.Allow += int64(p.b.Forwarded[consent.LevelAllow])
	p.counts.Anonymized += int64(p.b.Forwarded[consent.LevelAnonymized])
	return nil
}

// commit acknowledges batch n and then checkpoints it.
func (r *run) commit(ctx context.Context, p *pending, n int, bar *progress) error {
	if len(p.out) > 0 {
		if err := produce(ctx, r.o.Producer, p.out, r.o.Log); err != nil {
			return err
		}
	}
	for i, s := range r.sinks {
		if s != nil {
			if err := s.write(p.files[i]); err != nil {
				return err
			}
		}
	}
	if testHookAcked != nil {
		if err := testHookAcked(n); err != nil {
			return err
		}
	}
	p.c.advance(r.cp)
	r.cp.Counts.add(p.counts)
	r.sum.ThisRun.add(p.counts)
	for i, rp := range r.routes() {
		if r.sinks[i] != nil {
			rp.Bytes = r.sinks[i].size
		}
	}
	if err := r.save(); err != nil {
		return err
	}
	bar.add(p.c.progress)
	return nil
}

// route sends each output record to its file sink's buffer, or to p.out
// (renamed to the route's topic) for the producer.
func (r *run) route(p *pending) {
	routes := [3]Route{r.o.Output, r.o.Quarantine, r.o.Audit}
	class := func(m *kafka.Message) int {
		switch m.Topic {
		case r.o.QuarantineTopic:
			return 1
		case r.o.AuditTopic:
			return 2
		}
		return 0
	}
	var need [3]int
	for i := range p.b.Out {
		need[class(&p.b.Out[i])] += len(p.b.Out[i].Value) + 1
	}
	for i, n := range need {
		if r.sinks[i] != nil {
			p.files[i] = slices.Grow(p.files[i], n)
		}
	}
	for _, m := range p.b.Out {
		class := class(&m)
		if r.sinks[class] != nil {
			p.files[class] = append(append(p.files[class], m.Value...), '\n')
			continue
		}
		if t := routes[class].Topic; t != "" {
			m.Topic = t
		}
		p.out = append(p.out, m)
	}
}

func (r *run) save() error {
	if r.o.Checkpoint == "" {
		return nil
	}
	first := !r.saved
	r.saved = true
	return r.cp.write(r.o.Checkpoint, first)
}

// waitFresh blocks while the consent feed is staler than the bound: no
// record is decided against a table that may miss a revocation.
func (r *run) waitFresh(ctx context.Context) error {
	f := r.o.Consent
	if f == nil {
		return nil
	}
	for f.Staleness() > r.o.maxStaleness() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w while waiting for the consent feed to catch up: %w", ErrInterrupted, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
