package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
)

func consentCommands() []command {
	return []command{
		{"set", "write the consent record of a tenant or a user", consentSet},
		{"delete", "delete the consent record of a tenant or a user (a tombstone)", consentDelete},
		{"get", "print the current record of a subject, or of a tenant and all its users", consentGet},
		{"explain", "the effective level of (tenant, user, category) and why, decided as the stage decides", consentExplain},
		{"import", "write consent records from a JSON lines file (migrations)", consentImport},
		{"export", "write the current consent state as JSON lines that import accepts", consentExport},
	}
}

func cmdConsent(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, "Usage: anonproxy consent <command> -config FILE [flags]   (anonproxy consent <command> -h for its flags)")
		fmt.Fprintln(stderr, "\nReads and writes the compacted consent topic named in the config (CONTRACT §3).\n\nCommands:")
		for _, c := range consentCommands() {
			fmt.Fprintf(stderr, "  %-8s %s\n", c.name, c.summary)
		}
		fmt.Fprintln(stderr, "\nSubjects: -tenant T for a tenant record; -tenant T -user U for a user record")
		fmt.Fprintln(stderr, `(-tenant "" -user U: a user of a tenantless product). Ids are given as they appear`)
		fmt.Fprintln(stderr, "in events; keys are percent-encoded for you. ANONPROXY_BROKERS overrides the brokers.")
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range consentCommands() {
		if c.name == args[0] {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "anonproxy consent: unknown command %q (want set, delete, get, explain, import or export)\n", args[0])
	return exitUsage
}

// consentFlags are the flags every consent command shares.
type consentFlags struct {
	config  *string
	timeout *time.Duration
}

func addConsentFlags(fs *flag.FlagSet) consentFlags {
	return consentFlags{
		config:  fs.String("config", "", "config file (YAML): brokers, TLS/SASL and the consent topic"),
		timeout: fs.Duration("timeout", time.Minute, "give up after this long (broker unreachable, topic missing)"),
	}
}

// open loads the config and returns an Admin for its consent topic.
func (f consentFlags) open(stderr io.Writer) (*config.File, *consent.Admin, int) {
	cfg, ok := loadConfig(*f.config, stderr)
	if !ok {
		return nil, nil, exitUsage
	}
	clients, err := cfg.Kafka.Connect()
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent: %v\n", err)
		return nil, nil, exitRuntime
	}
	return cfg, &consent.Admin{Brokers: clients.Brokers, Dialer: clients.Dialer, Transport: clients.Transport,
		Topic: cfg.Consent.Topic}, exitOK
}

// snapshot reads the consent topic to the end offsets at start, for the
// command name (get, export).
func (f consentFlags) snapshot(name string, stderr io.Writer) (*consent.Snapshot, int) {
	_, admin, code := f.open(stderr)
	if code != exitOK {
		return nil, code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *f.timeout)
	defer cancel()
	snap, err := admin.Snapshot(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent %s: %v\n", name, err)
		return nil, exitRuntime
	}
	return snap, exitOK
}

// subjectFlags name a tenant or a user. -tenant must be given explicitly
// for a user ("" for a tenantless product), so that forgetting it never
// writes the record of a different subject.
type subjectFlags struct {
	tenant, user *string
	fs           *flag.FlagSet
}

func addSubjectFlags(fs *flag.FlagSet) subjectFlags {
	return subjectFlags{
		tenant: fs.String("tenant", "", "tenant id, as in events (required; \"\" with -user for a tenantless product)"),
		user:   fs.String("user", "", "user id, as in events (omit for the tenant record)"),
		fs:     fs,
	}
}

func (s subjectFlags) given(name string) bool {
	found := false
	s.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func (s subjectFlags) subject() (consent.Subject, error) {
	switch {
	case s.given("user"):
		if !s.given("tenant") {
			return consent.Subject{}, errors.New(`-tenant is required with -user (-tenant "" for a tenantless product)`)
		}
		sub := consent.Subject{Kind: consent.SubjectUser, Tenant: *s.tenant, User: *s.user}
		return sub, sub.Validate()
	case !s.given("tenant"):
		return consent.Subject{}, errors.New("-tenant is required")
	}
	sub := consent.Subject{Kind: consent.SubjectTenant, Tenant: *s.tenant}
	return sub, sub.Validate()
}

// categoryFlag collects repeated -category NAME=LEVEL.
type categoryFlag map[string]consent.Level

func (c categoryFlag) String() string {
	names := make([]string, 0, len(c))
	for n, l := range c {
		names = append(names, n+"="+l.String())
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func (c categoryFlag) Set(s string) error {
	name, lvl, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q: want NAME=LEVEL, e.g. chat=anonymized", s)
	}
	l, err := consent.ParseLevel(lvl)
	if err != nil {
		return err
	}
	if _, dup := c[name]; dup {
		return fmt.Errorf("category %q given twice", name)
	}
	c[name] = l
	return nil
}

func defaultActor() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "anonproxy"
}

func consentSet(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("consent set", "-config FILE -tenant T [-user U] -default LEVEL [-category NAME=LEVEL]... [-by WHO]", stderr)
	cf := addConsentFlags(fs)
	sf := addSubjectFlags(fs)
	def := fs.String("default", "deny", "level of categories not given with -category: deny, anonymized or allow")
	cats := categoryFlag{}
	fs.Var(cats, "category", "level of one category, NAME=LEVEL (repeatable)")
	by := fs.String("by", defaultActor(), "updated_by: who makes the change ($USER, else anonproxy)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	sub, err := sf.subject()
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent set: %v\n", err)
		return exitUsage
	}
	lvl, err := consent.ParseLevel(*def)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent set: -default: %v\n", err)
		return exitUsage
	}
	rec := consent.Record{Default: lvl, UpdatedAt: time.Now().UTC().Format(time.RFC3339), UpdatedBy: *by}
	if len(cats) > 0 {
		rec.Categories = cats
	}
	value, err := consent.MarshalValue(rec)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent set: %v\n", err)
		return exitUsage
	}
	_, admin, code := cf.open(stderr)
	if code != exitOK {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	pos, err := admin.Set(ctx, sub, rec)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent set: %s: %v\n", sub.Key(), err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "set %s at %s partition %d offset %d: %s\n", sub.Key(), admin.Topic, pos.Partition, pos.Offset, value)
	return exitOK
}

func consentDelete(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("consent delete", "-config FILE -tenant T [-user U]", stderr)
	cf := addConsentFlags(fs)
	sf := addSubjectFlags(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	sub, err := sf.subject()
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent delete: %v\n", err)
		return exitUsage
	}
	_, admin, code := cf.open(stderr)
	if code != exitOK {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	pos, err := admin.Delete(ctx, sub)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent delete: %s: %v\n", sub.Key(), err)
		return exitRuntime
	}
	fmt.Fprintf(stdout, "deleted %s at %s partition %d offset %d (tombstone)\n", sub.Key(), admin.Topic, pos.Partition, pos.Offset)
	return exitOK
}

func consentGet(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("consent get", "-config FILE -tenant T [-user U] [-json]", stderr)
	cf := addConsentFlags(fs)
	sf := addSubjectFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per record")
	fs.Usage = withNote(fs, `Reads every partition of the consent topic up to its end offsets (no consumer group).
With -tenant T alone, prints the tenant record and the records of all users of T.
Exit status 1 when no current record was found (none, or deleted).`)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var sub consent.Subject
	var err error
	tenantOnly := !sf.given("user")
	if tenantOnly && !sf.given("tenant") {
		err = errors.New("-tenant is required")
	} else if !tenantOnly {
		sub, err = sf.subject()
	}
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent get: %v\n", err)
		return exitUsage
	}
	snap, code := cf.snapshot("get", stderr)
	if code != exitOK {
		return code
	}
	var entries []consent.Entry
	var missing []string
	if tenantOnly {
		if *sf.tenant != "" {
			tsub := consent.Subject{Kind: consent.SubjectTenant, Tenant: *sf.tenant}
			if e, ok := snap.Get(tsub); ok {
				entries = append(entries, e)
			} else {
				missing = append(missing, tsub.Key())
			}
		}
		entries = append(entries, snap.Users(*sf.tenant)...)
	} else if e, ok := snap.Get(sub); ok {
		entries = append(entries, e)
	} else {
		missing = append(missing, sub.Key())
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	found := false
	for i := range entries {
		found = found || !entries[i].Deleted()
		if *asJSON {
			writeEntryJSON(out, &entries[i])
		} else {
			writeEntry(out, &entries[i])
		}
	}
	if !*asJSON {
		for _, k := range missing {
			fmt.Fprintf(out, "%s: no record\n", k)
		}
		if tenantOnly && len(snap.Users(*sf.tenant)) == 0 {
			fmt.Fprintf(out, "no user records of tenant %q\n", *sf.tenant)
		}
	}
	if !found {
		return exitFailed
	}
	return exitOK
}

// withNote returns a usage function that prints note after the flags.
func withNote(fs *flag.FlagSet, note string) func() {
	usage := fs.Usage
	return func() {
		usage()
		fmt.Fprintf(fs.Output(), "\n%s\n", note)
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func describeSubject(s consent.Subject) string {
	if s.Kind == consent.SubjectTenant {
		return fmt.Sprintf("tenant %q", s.Tenant)
	}
	if s.Tenant == "" {
		return fmt.Sprintf("user %q (tenantless)", s.User)
	}
	return fmt.Sprintf("tenant %q, user %q", s.Tenant, s.User)
}

func describeRecord(r *consent.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "default %s", r.Default)
	names := make([]string, 0, len(r.Categories))
	for c := range r.Categories {
		names = append(names, c)
	}
	sort.Strings(names)
	for _, c := range names {
		fmt.Fprintf(&b, ", %s %s", c, r.Categories[c])
	}
	return b.String()
}

func writeEntry(w io.Writer, e *consent.Entry) {
	fmt.Fprintf(w, "%s  (%s)  partition %d offset %d time %s\n", e.Key, describeSubject(e.Subject), e.Partition, e.Offset, formatTime(e.Time))
	switch {
	case e.Deleted():
		fmt.Fprintln(w, "  deleted (tombstone): no record")
	case e.Err != nil:
		fmt.Fprintf(w, "  malformed value, counts as deny for every category: %v\n", e.Err)
	default:
		fmt.Fprintf(w, "  %s\n", describeRecord(&e.Record))
		if e.Record.UpdatedAt != "" || e.Record.UpdatedBy != "" {
			fmt.Fprintf(w, "  updated_at %s by %s\n", orDash(e.Record.UpdatedAt), orDash(e.Record.UpdatedBy))
		}
	}
	if e.RawKey != e.Key {
		fmt.Fprintf(w, "  written with the non-canonical key %q\n", e.RawKey)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// entryJSON is the -json form of one record of "consent get".
type entryJSON struct {
	Key       string          `json:"key"`
	Kind      string          `json:"kind"`
	Tenant    string          `json:"tenant"`
	User      string          `json:"user,omitempty"`
	Partition int             `json:"partition"`
	Offset    int64           `json:"offset"`
	Time      string          `json:"time"`
	Deleted   bool            `json:"deleted"`
	Value     json.RawMessage `json:"value"`
	RawValue  string          `json:"raw_value,omitempty"`
	Error     string          `json:"error,omitempty"`
}

func writeEntryJSON(w io.Writer, e *consent.Entry) {
	j := entryJSON{Key: e.Key, Kind: e.Subject.Kind.String(), Tenant: e.Subject.Tenant, User: e.Subject.User,
		Partition: e.Partition, Offset: e.Offset, Time: formatTime(e.Time), Deleted: e.Deleted(), Value: json.RawMessage("null")}
	if !e.Deleted() {
		if json.Valid(e.Value) {
			j.Value = e.Value
		} else {
			j.RawValue = string(e.Value)
		}
	}
	if e.Err != nil {
		j.Error = e.Err.Error()
	}
	b, _ := json.Marshal(j)
	fmt.Fprintf(w, "%s\n", b)
}

// toolLogger is the config's logger, but quiet below warn unless the config
// asks for debug: a command's output is its answer, not the loader's progress.
func toolLogger(cfg config.LogConfig, w io.Writer) *slog.Logger {
	if cfg.Level != "debug" && cfg.Level != "error" {
		cfg.Level = "warn"
	}
	return newLogger(cfg, w)
}

func consentExplain(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("consent explain", "-config FILE -tenant T -user U -category C [-json]", stderr)
	cf := addConsentFlags(fs)
	tenant := fs.String("tenant", "", `tenant id, as in events (required; "" for a tenantless product)`)
	user := fs.String("user", "", "user id, as in events (required)")
	category := fs.String("category", "", "category of the event, e.g. chat (required)")
	asJSON := fs.Bool("json", false, "print the explanation as one JSON object")
	fs.Usage = withNote(fs, `Loads the consent topic into a consent table with the stage's own loader and policy
(consent.NewTable(policy, stream categories), consent.Loader, Table.Decide): the
answer is what "anonproxy run" with this config decides for such an event now.`)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	tenantGiven := false
	fs.Visit(func(f *flag.Flag) { tenantGiven = tenantGiven || f.Name == "tenant" })
	if !tenantGiven || *user == "" || *category == "" {
		fmt.Fprintln(stderr, `anonproxy consent explain: -tenant (-tenant "" for a tenantless product), -user and -category are required`)
		return exitUsage
	}
	cfg, ok := loadConfig(*cf.config, stderr)
	if !ok {
		return exitUsage
	}
	clients, err := cfg.Kafka.Connect()
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent explain: %v\n", err)
		return exitRuntime
	}
	categories := cfg.Categories()
	known := false
	for _, c := range categories {
		known = known || c == *category
	}
	if !known {
		fmt.Fprintf(stderr, "anonproxy consent explain: note: no configured stream has category %q\n", *category)
	}
	table := consent.NewTable(cfg.Policy, categories...)
	loader, err := consent.NewLoader(clients.Brokers, clients.Dialer, cfg.Consent, table, consent.WithLogger(toolLogger(cfg.Log, stderr)))
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent explain: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	if err := loader.RunUntilReady(ctx); err != nil {
		fmt.Fprintf(stderr, "anonproxy consent explain: consent table of topic %s not ready: %v\n", cfg.Consent.Topic, err)
		return exitRuntime
	}
	x, err := table.Explain(*tenant, *user, *category)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent explain: %v\n", err)
		return exitRuntime
	}
	if *asJSON {
		b, _ := json.Marshal(explanationJSON(&x, &cfg.Policy))
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		writeExplanation(stdout, &x, &cfg.Policy)
	}
	return exitOK
}

func defaultSource(p *consent.PolicyConfig, category string) string {
	if _, ok := p.Defaults[category]; ok {
		return "policy.defaults." + category
	}
	return "policy.default"
}

var reasonWhy = map[consent.Reason]string{
	consent.ReasonDefault:   "neither the tenant nor the user has a record: the configured default applies",
	consent.ReasonTenant:    "only the tenant has a record",
	consent.ReasonUser:      "only the user has a record",
	consent.ReasonBoth:      "both have a record: the more restrictive applies (the user record on a tie)",
	consent.ReasonMalformed: "the deciding record's value is malformed: deny for every category (fail closed)",
}

func writeExplanation(w io.Writer, x *consent.Explanation, p *consent.PolicyConfig) {
	d := &x.Decision
	fmt.Fprintf(w, "%s  (tenant %q, user %q, category %q)\n", d.Level, x.Tenant, x.User, x.Category)
	fmt.Fprintf(w, "  why: %s\n", reasonWhy[d.Reason])
	if d.Reason == consent.ReasonDefault {
		fmt.Fprintf(w, "  decided by: %s = %s\n", defaultSource(p, x.Category), x.Default)
	} else {
		fmt.Fprintf(w, "  decided by: the %s record %s (partition %d, offset %d)\n", d.By, d.Key, d.Partition, d.Offset)
	}
	for _, r := range []struct {
		kind string
		c    consent.Current
		key  string
	}{{"tenant", x.TenantRecord, tenantKeyOrEmpty(x.Tenant)}, {"user", x.UserRecord, consent.UserKey(x.Tenant, x.User)}} {
		switch {
		case r.key == "":
			fmt.Fprintf(w, "  tenant record: none (tenantless)\n")
		case !r.c.Levels.Valid():
			fmt.Fprintf(w, "  %s record %s: none\n", r.kind, r.key)
		case r.c.Levels.Malformed():
			fmt.Fprintf(w, "  %s record %s (partition %d, offset %d): malformed, deny\n", r.kind, r.c.Key, r.c.Partition, r.c.Offset)
		default:
			fmt.Fprintf(w, "  %s record %s (partition %d, offset %d): %s %s (default %s)\n", r.kind, r.c.Key, r.c.Partition, r.c.Offset,
				x.Category, r.c.Levels.For(x.Category), r.c.Levels.Default())
		}
	}
	if d.Reason != consent.ReasonDefault {
		fmt.Fprintf(w, "  configured default (%s = %s) not used: a record exists\n", defaultSource(p, x.Category), x.Default)
	}
}

func tenantKeyOrEmpty(tenant string) string {
	if tenant == "" {
		return ""
	}
	return consent.TenantKey(tenant)
}

type recordJSON struct {
	Key       string `json:"key"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Level     string `json:"level"`
	Malformed bool   `json:"malformed,omitempty"`
}

type decidedByJSON struct {
	Kind      string `json:"kind"`
	Key       string `json:"key"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

type explainJSON struct {
	Tenant        string         `json:"tenant"`
	User          string         `json:"user"`
	Category      string         `json:"category"`
	Level         string         `json:"level"`
	Reason        string         `json:"reason"`
	DecidedBy     *decidedByJSON `json:"decided_by"`
	Default       string         `json:"default"`
	DefaultSource string         `json:"default_source"`
	TenantRecord  *recordJSON    `json:"tenant_record"`
	UserRecord    *recordJSON    `json:"user_record"`
}

func explanationJSON(x *consent.Explanation, p *consent.PolicyConfig) explainJSON {
	d := &x.Decision
	j := explainJSON{Tenant: x.Tenant, User: x.User, Category: x.Category, Level: d.Level.String(), Reason: d.Reason.String(),
		Default: x.Default.String(), DefaultSource: defaultSource(p, x.Category)}
	if d.Reason != consent.ReasonDefault {
		j.DecidedBy = &decidedByJSON{Kind: d.By.String(), Key: d.Key, Partition: d.Partition, Offset: d.Offset}
	}
	rec := func(c consent.Current) *recordJSON {
		if !c.Levels.Valid() {
			return nil
		}
		return &recordJSON{Key: c.Key, Partition: c.Partition, Offset: c.Offset, Level: c.Levels.For(x.Category).String(), Malformed: c.Levels.Malformed()}
	}
	j.TenantRecord, j.UserRecord = rec(x.TenantRecord), rec(x.UserRecord)
	return j
}

const exchangeFormat = `File format: JSON lines, one record per line (blank lines are skipped):
  {"tenant":"T","value":{"default":"deny","categories":{"chat":"anonymized"}}}   tenant record
  {"tenant":"T","user":"U","value":{...}}                                       user record
  {"tenant":"","user":"U","value":{...}}                                        tenantless user
  {"key":"u:T:U","value":{...}}                                                 by consent key (percent-encoded)
  {"tenant":"T","user":"U","value":null}                                        delete the record
Ids are as in events (any UTF-8); "key" takes the topic's encoded form. "value" is a
consent value (CONTRACT §3) and is required; unknown levels and unknown fields on the
line are errors. updated_at/updated_by missing from a value are set to now / -by.`

func consentImport(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("consent import", "-config FILE [-by WHO] [-dry-run] FILE|-", stderr)
	cf := addConsentFlags(fs)
	by := fs.String("by", defaultActor(), "updated_by for records without one ($USER, else anonproxy)")
	dryRun := fs.Bool("dry-run", false, "validate every line and report, write nothing")
	fs.Usage = withNote(fs, exchangeFormat+`

Every line is validated first; each bad line is reported on stderr as FILE:LINE: why, and
none of it is written. The good lines are then written in file order (the last line of a
subject wins), each acknowledged by all in-sync replicas. Exit status: 0 all written;
1 some lines failed validation (the others were written); 2 bad flags or config;
3 the broker could not be reached or a write failed.`)
	// The file may come before or after the flags.
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) > 0 {
		if err := fs.Parse(rest[1:]); err != nil {
			return exitUsage
		}
		rest = append(rest[:1:1], fs.Args()...)
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "anonproxy consent import: want exactly one FILE (or - for stdin)")
		fs.Usage()
		return exitUsage
	}
	name := rest[0]
	var in io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "anonproxy consent import: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	var ms []consent.Mutation
	var lines []int
	bad := 0
	r := bufio.NewReaderSize(in, 1<<20)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			m, perr := consent.ParseLine(line)
			if perr != nil {
				fmt.Fprintf(stderr, "%s:%d: %v\n", name, n, perr)
				bad++
			} else {
				ms = append(ms, m)
				lines = append(lines, n)
			}
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintf(stderr, "anonproxy consent import: %s: %v\n", name, err)
				return exitRuntime
			}
			break
		}
	}
	now := time.Now()
	for i := range ms {
		ms[i].Stamp(now, *by)
	}
	sets, dels := 0, 0
	for _, m := range ms {
		if m.Record == nil {
			dels++
		} else {
			sets++
		}
	}
	status := exitOK
	if bad > 0 {
		status = exitFailed
	}
	if *dryRun {
		fmt.Fprintf(stdout, "%s: %d valid lines (%d records, %d deletions), %d invalid; nothing written (-dry-run)\n", name, len(ms), sets, dels, bad)
		return status
	}
	if len(ms) == 0 {
		fmt.Fprintf(stdout, "%s: nothing to write (%d invalid lines)\n", name, bad)
		return status
	}
	_, admin, code := cf.open(stderr)
	if code != exitOK {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), *cf.timeout)
	defer cancel()
	pos, err := admin.Write(ctx, ms)
	if err != nil {
		fmt.Fprintf(stderr, "anonproxy consent import: %v\n", err)
		var unwritten []string
		for i, p := range pos {
			if p.Offset < 0 {
				unwritten = append(unwritten, fmt.Sprint(lines[i]))
			}
		}
		if len(unwritten) > 0 {
			fmt.Fprintf(stderr, "anonproxy consent import: %s: lines not written: %s\n", name, strings.Join(unwritten, ","))
		}
		return exitRuntime
	}
	fmt.Fprintf(stdout, "%s: wrote %d records (%d set, %d deleted) to %s; %d invalid lines not written\n", name, len(ms), sets, dels, admin.Topic, bad)
	return status
}

func consentExport(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlags("consent export", "-config FILE [-o FILE]", stderr)
	cf := addConsentFlags(fs)
	outPath := fs.String("o", "", "write to this file instead of stdout")
	fs.Usage = withNote(fs, exchangeFormat+`

Writes the current record of every subject (deleted subjects are left out), sorted by
key, read up to the end offsets at start. A record whose value is malformed counts as
deny for every category; it is exported as {"default":"deny"} and reported on stderr,
as are records with malformed keys (which the stage ignores; not exported). Either makes
the exit status 1.`)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	snap, code := cf.snapshot("export", stderr)
	if code != exitOK {
		return code
	}
	var w io.Writer = stdout
	var f *os.File
	if *outPath != "" {
		var err error
		if f, err = os.Create(*outPath); err != nil {
			fmt.Fprintf(stderr, "anonproxy consent export: %v\n", err)
			return exitRuntime
		}
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	status := exitOK
	for _, e := range snap.MalformedKeys {
		fmt.Fprintf(stderr, "anonproxy consent export: partition %d offset %d: not exported: %v\n", e.Partition, e.Offset, e.Err)
		status = exitFailed
	}
	var buf []byte
	n := 0
	for _, e := range snap.Current() {
		rec := e.Record
		if e.Err != nil {
			fmt.Fprintf(stderr, "anonproxy consent export: %s (partition %d offset %d): malformed value exported as deny: %v\n", e.Key, e.Partition, e.Offset, e.Err)
			rec = consent.Record{Default: consent.LevelDeny}
			status = exitFailed
		}
		var err error
		buf, err = consent.AppendLine(buf[:0], consent.Mutation{Subject: e.Subject, Record: &rec})
		if err != nil {
			fmt.Fprintf(stderr, "anonproxy consent export: %s: not exported: %v\n", e.Key, err)
			status = exitFailed
			continue
		}
		bw.Write(buf)
		n++
	}
	if err := bw.Flush(); err != nil {
		fmt.Fprintf(stderr, "anonproxy consent export: %v\n", err)
		return exitRuntime
	}
	if f != nil {
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "anonproxy consent export: %v\n", err)
			return exitRuntime
		}
	}
	fmt.Fprintf(stderr, "anonproxy consent export: %d records\n", n)
	return status
}
