package consent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// State is a Loader's state. It only moves forward:
// idle → connecting → catching up → ready → stopped.
type State int32

const (
	StateIdle State = iota
	// StateConnecting: reading the topic's partitions and end offsets.
	StateConnecting
	// StateCatchingUp: reading every partition up to the end offsets read
	// at start. Lookups are refused with ErrNotReady.
	StateCatchingUp
	// StateReady: caught up; tailing the topic and applying updates.
	StateReady
	// StateStopped: Run has returned.
	StateStopped
)

var stateNames = [...]string{"idle", "connecting", "catching up", "ready", "stopped"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Decider is what the stage and the explain command need from the consent
// package: *Table implements it.
type Decider interface {
	Decide(tenant, user, category string) (Decision, error)
}

var _ Decider = (*Table)(nil)

// Option configures a Loader beyond Config (things that are not YAML).
type Option func(*Loader)

// WithOnChange reports every applied record to fn, from the loader's single
// writer goroutine, in order per partition, after the table shows it. fn
// must return quickly: the table is not updated while it runs. Malformed
// keys are reported too (they change nothing).
func WithOnChange(fn func(Change)) Option { return func(l *Loader) { l.onChange = fn } }

// WithLogger sets the logger (default slog.Default()). Consent keys are
// logged; values never are.
func WithLogger(log *slog.Logger) Option { return func(l *Loader) { l.log = log } }

// LoaderStats are cumulative counters of a Loader.
type LoaderStats struct {
	Records         int64 // records applied (sets, deletes, malformed values)
	Tombstones      int64
	MalformedKeys   int64 // records ignored because their key did not parse
	MalformedValues int64 // records applied as deny because their value did not parse
	ControlRecords  int64 // transaction markers, ignored
	Reconnects      int64 // partition connections re-established after an error
	WatchdogTrips   int64 // connections dropped by the no-progress watchdog
	PollErrors      int64 // failed end-offset polls
}

// Loader reads the consent topic into a Table: every partition, without a
// consumer group, from the earliest offset, then tails it for updates.
//
// Run does the work; the other methods may be called from any goroutine at
// any time, also before Run and after it returned.
type Loader struct {
	brokers  []string
	dialer   *kafka.Dialer
	cfg      Config
	table    *Table
	onChange func(Change)
	log      *slog.Logger
	client   *kafka.Client

	state     atomic.Int32
	readyCh   chan struct{}
	doneCh    chan struct{}
	runErr    error
	running   atomic.Bool
	startedAt atomic.Int64 // unix nanos, set by Run
	caughtUp  atomic.Int64 // unix nanos of the end offsets the table last reached

	records, tombstones, badKeys, badValues, control atomic.Int64
	reconnects, watchdogTrips, pollErrors            atomic.Int64

	conns []atomic.Pointer[kafka.Conn] // current connection per partition, for the watchdog
	fatal chan error                   // a fetcher's unretriable error (Fatal), ends run
}

// NewLoader returns a loader that fills table from the consent topic of cfg,
// reached through brokers with dialer (TLS, SASL, timeouts; nil means
// kafka.DefaultDialer). It returns an error wrapping every Validate problem.
func NewLoader(brokers []string, dialer *kafka.Dialer, cfg Config, table *Table, opts ...Option) (*Loader, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("consent: invalid config: %w", errors.Join(fieldErrors(errs)...))
	}
	if len(brokers) == 0 {
		return nil, errors.New("consent: no brokers")
	}
	if table == nil {
		return nil, errors.New("consent: nil table")
	}
	if dialer == nil {
		dialer = kafka.DefaultDialer
	}
	l := &Loader{
		brokers: append([]string(nil), brokers...), dialer: dialer, cfg: cfg, table: table,
		log: slog.Default(), readyCh: make(chan struct{}), doneCh: make(chan struct{}),
	}
	for _, o := range opts {
		o(l)
	}
	l.client = &kafka.Client{
		Addr:    kafka.TCP(l.brokers...),
		Timeout: 10 * time.Second,
		Transport: &kafka.Transport{
			Dial: dialer.DialFunc, DialTimeout: orDefault(Duration(dialer.Timeout), 10*time.Second),
			ClientID: dialer.ClientID, TLS: dialer.TLS, SASL: dialer.SASLMechanism,
			MetadataTTL: 2 * time.Second, IdleTimeout: 30 * time.Second,
		},
	}
	return l, nil
}

func fieldErrors(fe []FieldError) []error {
	out := make([]error, len(fe))
	for i, e := range fe {
		out[i] = e
	}
	return out
}

// State returns the loader's current state.
func (l *Loader) State() State { return State(l.state.Load()) }

// Ready reports whether the table has caught up (see Table.Ready).
func (l *Loader) Ready() bool { return l.table.Ready() }

// WaitReady blocks until the table is ready, ctx is done, or Run returns
// before reaching ready (its error is returned then).
func (l *Loader) WaitReady(ctx context.Context) error {
	select {
	case <-l.readyCh:
		return nil
	default:
	}
	select {
	case <-l.readyCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.doneCh:
		if l.runErr != nil {
			return fmt.Errorf("consent: loader stopped before ready: %w", l.runErr)
		}
		return errors.New("consent: loader stopped before ready")
	}
}

// Version is the table's change counter (Table.Version).
func (l *Loader) Version() uint64 { return l.table.Version() }

// Staleness returns how long ago the table was last known to be at the
// consent topic's end offsets: end offsets are read every poll_interval, and
// once every partition's position reaches the end offsets of a poll, the
// table is known current as of that poll's start. It keeps growing while the
// broker is unreachable. Before the first catch-up it is the time since Run
// started (and 0 before Run).
func (l *Loader) Staleness() time.Duration {
	at := l.caughtUp.Load()
	if at == 0 {
		at = l.startedAt.Load()
		if at == 0 {
			return 0
		}
	}
	return max(0, time.Since(time.Unix(0, at)))
}

// Stale reports whether Staleness exceeds max_staleness, or the table is not
// ready: the stage must not consume while Stale is true.
func (l *Loader) Stale() bool {
	return !l.table.Ready() || l.Staleness() > l.cfg.MaxStalenessOrDefault()
}

// Stats returns the loader's counters.
func (l *Loader) Stats() LoaderStats {
	return LoaderStats{
		Records: l.records.Load(), Tombstones: l.tombstones.Load(), MalformedKeys: l.badKeys.Load(),
		MalformedValues: l.badValues.Load(), ControlRecords: l.control.Load(), Reconnects: l.reconnects.Load(),
		WatchdogTrips: l.watchdogTrips.Load(), PollErrors: l.pollErrors.Load(),
	}
}

// fetched is what a partition's fetcher hands the writer: records in offset
// order and the position after them.
type fetched struct {
	partition int
	updates   []update
	next      int64
}

type endOffsets struct {
	at   time.Time // when the request was sent
	ends []int64
}

// Run loads the topic and keeps the table up to date until ctx is done,
// then returns ctx's error. Broker errors are retried with backoff; only
// those that retrying cannot fix (see Fatal: rejected credentials, a broker
// certificate that does not verify, denied access) end Run with an error,
// which WaitReady then returns too. Run may be called once.
func (l *Loader) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("consent: Loader.Run called twice")
	}
	l.startedAt.Store(time.Now().UnixNano())
	err := l.run(ctx)
	l.runErr = err
	l.state.Store(int32(StateStopped))
	close(l.doneCh)
	return err
}

func (l *Loader) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.state.Store(int32(StateConnecting))

	var first []int64
	var start endOffsets
	for backoff := l.backoff(); ; {
		var err error
		first, start, err = l.readOffsets(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ferr := Fatal(err); ferr != nil {
			return fmt.Errorf("consent: %w", ferr)
		}
		l.log.Warn("consent: reading the consent topic's offsets", "topic", l.cfg.Topic, "err", err)
		if !backoff.wait(ctx) {
			return ctx.Err()
		}
	}
	n := len(first)
	l.log.Info("consent: loading", "topic", l.cfg.Topic, "partitions", n)
	l.state.Store(int32(StateCatchingUp))

	applied := append([]int64(nil), first...) // next offset to apply, per partition
	l.table.setPositions(applied)
	l.conns = make([]atomic.Pointer[kafka.Conn], n)

	updates := make(chan fetched, 2*n)
	polls := make(chan endOffsets, 16)
	l.fatal = make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for p := 0; p < n; p++ {
		wg.Add(1)
		go func() { defer wg.Done(); l.fetch(ctx, p, first[p], updates) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.poll(ctx, n, polls) }()

	latest := append([]int64(nil), start.ends...) // latest known end offsets
	progress := make([]time.Time, n)              // last time each partition advanced
	now := time.Now()
	for p := range progress {
		progress[p] = now
	}
	pending := []endOffsets{start} // polls not yet reached, oldest first
	ready := false
	reached := func() {
		i := 0
		for ; i < len(pending); i++ {
			if !atOrBeyond(applied, pending[i].ends) {
				break
			}
		}
		if i == 0 {
			return
		}
		l.caughtUp.Store(pending[i-1].at.UnixNano())
		pending = append(pending[:0], pending[i:]...)
		if !ready {
			ready = true
			l.table.MarkReady()
			l.state.Store(int32(StateReady))
			close(l.readyCh)
			l.log.Info("consent: table ready", "topic", l.cfg.Topic, "subjects", l.table.Len(),
				"malformed_keys", l.badKeys.Load(), "malformed_values", l.badValues.Load(),
				"load_time", time.Since(time.Unix(0, l.startedAt.Load())).Round(time.Millisecond))
		}
	}
	reached()
	watchdog := time.NewTicker(l.cfg.PollIntervalOrDefault())
	defer watchdog.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-l.fatal:
			return fmt.Errorf("consent: %w", err)
		case f := <-updates:
			l.applyFetched(&f, ready)
			if f.next > applied[f.partition] {
				applied[f.partition] = f.next
				progress[f.partition] = time.Now()
				l.table.setPosition(f.partition, f.next)
			}
			if len(pending) > 0 {
				reached()
			}
		case e := <-polls:
			for p := range latest {
				if p < len(e.ends) && e.ends[p] > latest[p] {
					latest[p] = e.ends[p]
				}
			}
			if ready {
				if len(pending) >= 64 {
					// Far behind: forget the oldest target. Staleness is then
					// measured from an older poll, which overstates it (safe).
					pending = pending[1:]
				}
				pending = append(pending, e)
				reached()
			}
		case now := <-watchdog.C:
			limit := l.cfg.WatchdogTimeoutOrDefault()
			for p := range applied {
				if applied[p] >= latest[p] {
					progress[p] = now
					continue
				}
				if now.Sub(progress[p]) > limit {
					l.watchdogTrips.Add(1)
					l.log.Warn("consent: no progress, reconnecting partition", "topic", l.cfg.Topic, "partition", p,
						"position", applied[p], "end", latest[p], "for", now.Sub(progress[p]).Round(time.Millisecond))
					if c := l.conns[p].Load(); c != nil {
						c.Close()
					}
					progress[p] = now
				}
			}
		}
	}
}

func atOrBeyond(pos, ends []int64) bool {
	for p, e := range ends {
		if p >= len(pos) || pos[p] < e {
			return false
		}
	}
	return true
}

func (l *Loader) applyFetched(f *fetched, ready bool) {
	part := int32(f.partition)
	var now time.Time
	if l.onChange != nil {
		now = time.Now()
	}
	for i := range f.updates {
		u := &f.updates[i]
		// During the initial load malformed records are logged at debug
		// level (a summary follows at ready), afterwards each one at warn.
		lvl := slog.LevelWarn
		if !ready {
			lvl = slog.LevelDebug
		}
		switch u.kind {
		case ChangeMalformedKey:
			l.badKeys.Add(1)
			l.log.Log(context.Background(), lvl, "consent: ignoring record with malformed key", "topic", l.cfg.Topic, "partition", part, "offset", u.offset, "err", u.err())
		case ChangeMalformedValue:
			l.badValues.Add(1)
			l.log.Log(context.Background(), lvl, "consent: malformed value counts as deny", "topic", l.cfg.Topic, "partition", part, "offset", u.offset, "key", string(u.key), "err", u.err())
		case ChangeDelete:
			l.tombstones.Add(1)
		}
		if u.kind != ChangeMalformedKey {
			l.records.Add(1)
		}
		if l.onChange == nil {
			if u.kind != ChangeMalformedKey {
				l.table.apply(u.key, u.vec, u.kind == ChangeDelete, part, u.offset)
			}
			continue
		}
		c := l.table.applyUpdate(u, part)
		c.Applied, c.CatchingUp = now, !ready
		l.onChange(c)
	}
}

// readOffsets reads the partitions' first offsets and end offsets.
func (l *Loader) readOffsets(ctx context.Context) ([]int64, endOffsets, error) {
	md, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{l.cfg.Topic}})
	if err != nil {
		return nil, endOffsets{}, fmt.Errorf("metadata: %w", err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		if len(md.Topics) == 1 {
			return nil, endOffsets{}, fmt.Errorf("metadata of %s: %w", l.cfg.Topic, md.Topics[0].Error)
		}
		return nil, endOffsets{}, fmt.Errorf("metadata of %s: topic not found", l.cfg.Topic)
	}
	n := len(md.Topics[0].Partitions)
	if n == 0 {
		return nil, endOffsets{}, fmt.Errorf("topic %s has no partitions", l.cfg.Topic)
	}
	at := time.Now()
	first, err := l.listOffsets(ctx, n, kafka.FirstOffset)
	if err != nil {
		return nil, endOffsets{}, err
	}
	ends, err := l.listOffsets(ctx, n, kafka.LastOffset)
	if err != nil {
		return nil, endOffsets{}, err
	}
	return first, endOffsets{at: at, ends: ends}, nil
}

func (l *Loader) listOffsets(ctx context.Context, n int, which int64) ([]int64, error) {
	return listOffsets(ctx, l.client, l.cfg.Topic, n, which)
}

// listOffsets returns the first or end (which: kafka.FirstOffset or
// kafka.LastOffset) offset of each of the topic's n partitions, failing
// unless every partition answered.
func listOffsets(ctx context.Context, c *kafka.Client, topic string, n int, which int64) ([]int64, error) {
	reqs := make([]kafka.OffsetRequest, n)
	for p := range reqs {
		reqs[p] = kafka.OffsetRequest{Partition: p, Timestamp: which}
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	out := make([]int64, n)
	got := 0
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		if po.Partition < 0 || po.Partition >= n {
			continue
		}
		if which == kafka.FirstOffset {
			out[po.Partition] = po.FirstOffset
		} else {
			out[po.Partition] = po.LastOffset
		}
		got++
	}
	if got != n {
		return nil, fmt.Errorf("list offsets of %s: %d of %d partitions answered", topic, got, n)
	}
	return out, nil
}

// poll reads the end offsets every poll_interval for the staleness measure.
func (l *Loader) poll(ctx context.Context, n int, out chan<- endOffsets) {
	t := time.NewTicker(l.cfg.PollIntervalOrDefault())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, max(l.cfg.MaxStalenessOrDefault(), time.Second))
		at := time.Now()
		ends, err := l.listOffsets(pctx, n, kafka.LastOffset)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				l.pollErrors.Add(1)
				l.log.Debug("consent: polling end offsets", "topic", l.cfg.Topic, "err", err)
			}
			continue
		}
		select {
		case out <- endOffsets{at: at, ends: ends}:
		case <-ctx.Done():
			return
		}
	}
}

type backoff struct {
	cur, max time.Duration
}

func (l *Loader) backoff() backoff {
	return backoff{cur: l.cfg.RetryBackoffOrDefault(), max: l.cfg.MaxRetryBackoffOrDefault()}
}

func (b *backoff) reset(l *Loader) { b.cur = l.cfg.RetryBackoffOrDefault() }

func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.cur)
	defer t.Stop()
	b.cur = min(2*b.cur, b.max)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fetch reads one partition from pos, forever, handing parsed records to
// the writer. It reconnects from its current position after any error
// (broker restart, leader change, watchdog).
func (l *Loader) fetch(ctx context.Context, p int, pos int64, out chan<- fetched) {
	var parser valueParser
	meta := l.onChange != nil
	bo := l.backoff()
	maxWait := l.cfg.FetchMaxWaitOrDefault()
	maxBytes := l.cfg.FetchMaxBytesOrDefault()
	// Capacities for the next fetch: the last fetch's, plus some.
	lastN, lastVec := 1024, 32<<10
	for attempt := 0; ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			l.reconnects.Add(1)
			if !bo.wait(ctx) {
				return
			}
		}
		conn, err := l.dialLeader(ctx, p, attempt)
		if ferr := Fatal(err); ferr != nil && ctx.Err() == nil {
			select {
			case l.fatal <- ferr:
			default:
			}
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				lvl := slog.LevelWarn
				if attempt > 1 {
					lvl = slog.LevelDebug // the first failure was logged; the watchdog and staleness tell the rest
				}
				l.log.Log(ctx, lvl, "consent: connecting to partition leader", "topic", l.cfg.Topic, "partition", p, "attempt", attempt, "err", err)
			}
			continue
		}
		l.conns[p].Store(conn)
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		for ctx.Err() == nil {
			if _, err = conn.Seek(pos, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
				break
			}
			conn.SetReadDeadline(time.Now().Add(maxWait + 10*time.Second))
			batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: maxBytes, MaxWait: maxWait})
			ups := make([]update, 0, lastN)
			vecBuf := make([]byte, 0, lastVec)
			for {
				m, merr := batch.ReadMessage()
				if merr != nil {
					break
				}
				if m.Offset < pos {
					continue // batches may start before the requested offset
				}
				if isControlKey(m.Key) {
					l.control.Add(1)
					continue
				}
				u := parser.update(m.Key, m.Value, m.Offset, meta)
				if u.vec != nil && &u.vec[0] != &malformedVec[0] {
					start := len(vecBuf)
					vecBuf = append(vecBuf, u.vec...)
					u.vec = vecBuf[start:len(vecBuf):len(vecBuf)]
				}
				ups = append(ups, u)
			}
			err = batch.Close()
			lastN = max(len(ups)+len(ups)/8, 16)
			lastVec = max(len(vecBuf)+len(vecBuf)/8, 256)
			next := batch.Offset()
			if next > pos || len(ups) > 0 {
				select {
				case out <- fetched{partition: p, updates: ups, next: max(next, pos)}:
				case <-ctx.Done():
					stop()
					conn.Close()
					return
				}
				pos = max(next, pos)
				bo.reset(l)
			}
			if err != nil && !errors.Is(err, kafka.RequestTimedOut) {
				break
			}
			if err == nil && next <= pos && len(ups) == 0 && pos < batch.HighWaterMark() {
				// A fetch below the high watermark that yields nothing: the
				// kafka-go compacted-topic hang. Do not spin; the watchdog
				// reconnects if it persists.
				select {
				case <-ctx.Done():
				case <-time.After(maxWait / 5):
				}
			}
		}
		stop()
		conn.Close()
		l.conns[p].Store(nil)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, kafka.OffsetOutOfRange) {
			pos = l.reclamp(ctx, p, pos)
		}
		l.log.Info("consent: partition connection lost, reconnecting", "topic", l.cfg.Topic, "partition", p, "position", pos, "err", err)
	}
}

// reclamp handles an offset that the broker no longer has: below the log
// start it moves to the log start (compaction or retention removed those
// offsets); otherwise it keeps pos and lets the retry try again.
func (l *Loader) reclamp(ctx context.Context, p int, pos int64) int64 {
	first, err := l.listOffsets(ctx, len(l.conns), kafka.FirstOffset)
	if err != nil || p >= len(first) {
		return pos
	}
	if pos < first[p] {
		return first[p]
	}
	return pos
}

func (l *Loader) dialLeader(ctx context.Context, p, attempt int) (*kafka.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var errs []error
	for i := range l.brokers {
		b := l.brokers[(attempt+i)%len(l.brokers)]
		conn, err := l.dialer.DialLeader(dctx, "tcp", b, l.cfg.Topic, p)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Fatal returns a descriptive error wrapping err when err is one that
// retrying cannot fix, and nil otherwise: the broker rejected the client's
// credentials or SASL mechanism, the client rejected the broker's
// certificate (or the broker the client's), or an ACL denies access.
// Outages, leader changes and timeouts are not fatal. The loader and the
// stage retry everything else, and stop with this error instead of hanging.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		alert   tls.AlertError
	)
	switch {
	case errors.Is(err, kafka.SASLAuthenticationFailed), errors.Is(err, kafka.UnsupportedSASLMechanism),
		errors.Is(err, kafka.IllegalSASLState):
		return fmt.Errorf("authentication failed (check kafka.sasl): %w", err)
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid):
		return fmt.Errorf("TLS certificate verification failed (check kafka.tls): %w", err)
	case errors.As(err, &alert) && certAlert(alert):
		return fmt.Errorf("TLS handshake rejected by the broker (check kafka.tls): %w", err)
	case errors.Is(err, kafka.TopicAuthorizationFailed), errors.Is(err, kafka.GroupAuthorizationFailed),
		errors.Is(err, kafka.ClusterAuthorizationFailed):
		return fmt.Errorf("not authorized (check the ACLs of kafka.sasl.username): %w", err)
	}
	return nil
}

// certAlert reports whether a TLS alert from the broker says the handshake
// cannot succeed with this configuration (RFC 8446 §6.2): handshake_failure,
// the certificate alerts, unknown_ca, access_denied, protocol_version,
// certificate_required.
func certAlert(a tls.AlertError) bool {
	switch a {
	case 40, 42, 43, 44, 45, 46, 48, 49, 70, 116:
		return true
	}
	return false
}
