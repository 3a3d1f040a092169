package proxy_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

// Fault tests: the stage under consent outages and an unavailable output
// (CONTRACT §6). The crash test (SIGKILLs and a broker restart under the
// load-test oracle) is loadtest.TestCrashRecoveryBrokerRestart.

// TestConsentTopicMissingFailsClosed: a stage started before the consent
// topic exists is not ready and consumes nothing — no commit, no output,
// no audit or quarantine record — however long that lasts; once the topic
// exists it becomes ready and processes everything, with the consent that
// was written.
func TestConsentTopicMissingFailsClosed(t *testing.T) {
	e := newEnv(t, nil)
	e.cfg.Consent.Topic += ".late" // not created by newEnv
	early := faultEvents("early", 20)
	e.produce("chat", early...)
	e.startUnready()

	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if e.app.Stage.Ready() || e.app.Loader.Ready() {
			t.Fatalf("stage ready without a consent topic (loader %s)", e.app.Loader.State())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := e.app.Loader.State(); st != consent.StateConnecting {
		t.Errorf("loader state %s without a consent topic, want %s", st, consent.StateConnecting)
	}
	if c := e.committedOffsets("chat"); c.any() {
		t.Fatalf("offsets committed while consent was missing: %v", c)
	}
	for _, topic := range e.allOutputTopics() {
		if n := e.recordCount(topic); n != 0 {
			t.Fatalf("%d records in %s while consent was missing", n, topic)
		}
	}

	kafkatest.CreateCompactedTopic(t, e.addr, e.cfg.Consent.Topic, 3)
	e.setConsent(consent.TenantKey("T1"), level("allow"))
	e.waitStageReady(60 * time.Second)
	// Events decided after the grant is acknowledged and max_staleness has
	// passed must see it; the early ones may have been decided against the
	// empty table (deny: fail closed) and only need an outcome.
	time.Sleep(time.Duration(e.cfg.Consent.MaxStalenessOrDefault()) + 200*time.Millisecond)
	late := faultEvents("late", 20)
	e.produce("chat", late...)
	r := e.collect(len(early)+len(late), 60*time.Second)
	for _, id := range ids(early) {
		if len(r.forwarded[id])+len(r.denied[id]) == 0 {
			t.Errorf("%s: no outcome after the consent topic appeared", id)
		}
	}
	for _, id := range ids(late) {
		checkOutcome(t, r, id, consent.LevelAllow)
	}
}

// TestStaleConsentPausesAndResumes: while the consent feed is staler than
// max_staleness the stage is not ready, forwards nothing and commits
// nothing; when it is fresh again the stage resumes by itself and the
// events held back are processed. A Feed whose staleness the test drives
// stands in for a stalled loader (the broker-level variant is
// TestConsentOutageBrokerRestart).
func TestStaleConsentPausesAndResumes(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.TenantKey("T1"), level("allow"))
	app, err := wire.Build(e.cfg, faultLogger(), nil)
	if err != nil {
		t.Fatal(err)
	}
	feed := &stallFeed{Feed: app.Loader}
	stage, err := proxy.NewStage(proxy.StageOptions{Config: &e.cfg.Stage, Clients: app.Clients,
		Processor: app.Processor, Consent: feed, MaxStaleness: e.cfg.Consent.MaxStalenessOrDefault(),
		Metrics: app.Metrics, Logger: faultLogger()})
	if err != nil {
		t.Fatal(err)
	}
	lctx, stopLoader := context.WithCancel(context.Background())
	defer stopLoader()
	go app.Loader.Run(lctx)
	sctx, stopStage := context.WithCancel(context.Background())
	stageDone := make(chan error, 1)
	go func() { stageDone <- stage.Run(sctx) }()
	defer func() {
		stopStage()
		select {
		case err := <-stageDone:
			if err != nil {
				t.Errorf("stage exit: %v", err)
			}
		case <-time.After(45 * time.Second):
			t.Errorf("stage did not stop within 45 s")
		}
	}()
	faultWait(t, 60*time.Second, "stage ready", stage.Ready)

	before := faultEvents("before", 10)
	e.produce("chat", before...)
	if r := e.collect(len(before), 60*time.Second); r.accounted() != len(before) {
		t.Fatalf("before the stall: %d of %d accounted", r.accounted(), len(before))
	}

	feed.stale.Store(true)
	if stage.Ready() {
		t.Errorf("stage ready while consent is stale")
	}
	time.Sleep(300 * time.Millisecond) // a fetch in progress (20 ms max wait) completes
	committed := e.waitAllCommitted("chat", 10*time.Second)
	held := faultEvents("held", 20)
	e.produce("chat", held...)
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if r := e.read(); r.accounted() != len(before) {
			t.Fatalf("forwarded while consent was stale: %d outcomes, want %d", r.accounted(), len(before))
		}
		if c := e.committedOffsets("chat"); !c.equal(committed) {
			t.Fatalf("committed while consent was stale: %v, was %v", c, committed)
		}
		if stage.Ready() {
			t.Fatalf("stage ready while consent is stale")
		}
	}

	feed.stale.Store(false)
	faultWait(t, 10*time.Second, "stage ready after consent is fresh again", stage.Ready)
	r := e.collect(len(before)+len(held), 60*time.Second)
	for _, id := range ids(held) {
		checkOutcome(t, r, id, consent.LevelAllow)
	}
}

// TestConsentOutageBrokerRestart: with the broker stopped, the consent
// feed's staleness passes max_staleness and the stage pauses (not ready)
// within max_staleness plus a poll; when the broker is back it resumes by
// itself, and nothing is lost — neither the events in flight when the
// broker stopped nor those produced after it came back.
func TestConsentOutageBrokerRestart(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.TenantKey("T1"), level("allow"))
	e.start()
	faultWait(t, 60*time.Second, "stage ready", e.app.Stage.Ready)
	first := faultEvents("first", 20)
	e.produce("chat", first...)
	e.collect(len(first), 60*time.Second)

	inflight := faultEvents("inflight", 50)
	e.produce("chat", inflight...)
	// Watch, from before the stop, when the stage stops being ready and
	// when the consent feed's staleness passes max_staleness.
	maxStale := time.Duration(e.cfg.Consent.MaxStalenessOrDefault())
	var notReady, stale atomic.Int64
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go func() {
		for watchCtx.Err() == nil {
			now := time.Now().UnixNano()
			if !e.app.Stage.Ready() {
				notReady.CompareAndSwap(0, now)
			}
			if e.app.Loader.Staleness() > maxStale {
				stale.CompareAndSwap(0, now)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	stopping := time.Now()
	kafkatest.StopBroker(t)
	stopped := time.Now()
	bound := maxStale + time.Duration(e.cfg.Consent.PollIntervalOrDefault())
	faultWait(t, bound+5*time.Second, "consent stale after the broker stopped", func() bool { return stale.Load() != 0 })
	since := func(at int64) time.Duration { return time.Unix(0, at).Sub(stopping).Round(time.Millisecond) }
	t.Logf("broker stop took %s; stage not ready %s and consent stale %s after the stop began (bound: stop + max_staleness + poll interval = %s)",
		stopped.Sub(stopping).Round(time.Millisecond), since(notReady.Load()), since(stale.Load()), stopped.Sub(stopping)+bound)
	if d := since(stale.Load()); d > stopped.Sub(stopping)+bound+time.Second {
		t.Errorf("consent stale only %s after the broker stop began, want within %s", d, stopped.Sub(stopping)+bound)
	}
	if notReady.Load() == 0 || notReady.Load() > stale.Load() {
		t.Errorf("stage still ready once consent was stale")
	}
	time.Sleep(3 * time.Second)
	if e.app.Stage.Ready() {
		t.Errorf("stage ready while the broker is down")
	}
	kafkatest.StartStoppedBroker(t)
	faultWait(t, 90*time.Second, "stage ready after the broker restarted", e.app.Stage.Ready)
	after := faultEvents("after", 20)
	e.produce("chat", after...)
	r := e.collect(len(first)+len(inflight)+len(after), 90*time.Second)
	for _, group := range [][]string{first, inflight, after} {
		for _, id := range ids(group) {
			if len(r.forwarded[id]) == 0 {
				t.Errorf("%s: lost across the broker restart", id)
			}
		}
	}
}

// TestOutputTopicUnavailable: with a stream's output topic deleted (and
// auto-creation off, as on the test broker) the stage retries the writes
// with backoff and commits nothing for that stream's input — nothing is
// committed that was not written — while other streams keep flowing; once
// the topic exists again everything held back is written and committed.
func TestOutputTopicUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	e.setConsent(consent.TenantKey("T1"), level("allow"))
	e.start()
	faultWait(t, 60*time.Second, "stage ready", e.app.Stage.Ready)
	warm := faultEvents("warm", 10)
	e.produce("chat", warm...)
	e.collect(len(warm), 60*time.Second)
	committed := e.waitAllCommitted("chat", 10*time.Second)

	out := e.stream("chat").Output
	faultDeleteTopic(t, e.addr, out)
	retries := e.metricValue("anonproxy_write_retries_total")
	held := faultEvents("held", 30)
	e.produce("chat", held...)
	files := []string{faultFileEvent("file-during", "T1", "U1")}
	e.produce("files", files...)
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if c := e.committedOffsets("chat"); !c.equal(committed) {
			t.Fatalf("input committed while its output topic is missing: %v, was %v", c, committed)
		}
	}
	if n := e.metricValue("anonproxy_write_retries_total"); n <= retries {
		t.Errorf("write retries %v → %v while the output is missing, want them counted", retries, n)
	}
	if c := e.committedOffsets("files"); c.sum() == 0 {
		t.Errorf("the files stream stopped while only the chat output was missing")
	}

	kafkatest.CreateTopic(t, e.addr, out, 2, nil)
	r := e.collect(len(held)+len(files), 90*time.Second)
	for _, id := range ids(held) {
		if len(r.forwarded[id]) == 0 {
			t.Errorf("%s: lost while the output topic was missing", id)
		}
	}
	if len(r.forwarded["file-during"]) == 0 {
		t.Errorf("files event not forwarded")
	}
	_, end, err := kafkatest.Offsets(context.Background(), e.addr, e.stream("chat").Input)
	if err != nil {
		t.Fatal(err)
	}
	faultWait(t, 10*time.Second, "chat input committed to its end", func() bool {
		c := e.committedOffsets("chat")
		for p, o := range end {
			if c[p] != o {
				return false
			}
		}
		return true
	})
}

// stallFeed is a proxy.Feed whose staleness the test can push past any
// bound, as a stalled consent loader would.
type stallFeed struct {
	proxy.Feed
	stale atomic.Bool
}

func (f *stallFeed) Staleness() time.Duration {
	if f.stale.Load() {
		return time.Hour
	}
	return f.Feed.Staleness()
}

// startUnready starts the stage like start, without waiting for the consent
// table.
func (e *env) startUnready() {
	e.t.Helper()
	app, err := wire.Build(e.cfg, faultLogger(), nil)
	if err != nil {
		e.t.Fatalf("wire: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.app, e.cancel, e.done = app, cancel, make(chan error, 1)
	go func() { e.done <- app.Run(ctx, 30*time.Second) }()
	e.t.Cleanup(e.stop)
}

func (e *env) waitStageReady(timeout time.Duration) {
	e.t.Helper()
	faultWait(e.t, timeout, "stage ready", e.app.Stage.Ready)
}

func (e *env) allOutputTopics() []string {
	out := []string{e.cfg.Stage.AuditTopic, e.cfg.Stage.QuarantineTopic}
	for _, s := range e.cfg.Streams {
		out = append(out, s.Output)
	}
	return out
}

// recordCount counts the records in topic (end − first offsets).
func (e *env) recordCount(topic string) int64 {
	e.t.Helper()
	first, end, err := kafkatest.Offsets(context.Background(), e.addr, topic)
	if err != nil {
		e.t.Fatalf("offsets of %s: %v", topic, err)
	}
	var n int64
	for p := range end {
		n += end[p] - first[p]
	}
	return n
}

// faultOffsets are committed offsets by partition; -1: none.
type faultOffsets map[int]int64

func (o faultOffsets) any() bool {
	for _, v := range o {
		if v >= 0 {
			return true
		}
	}
	return false
}

func (o faultOffsets) sum() int64 {
	var n int64
	for _, v := range o {
		n += max(v, 0)
	}
	return n
}

func (o faultOffsets) equal(p faultOffsets) bool {
	if len(o) != len(p) {
		return false
	}
	for k, v := range o {
		if p[k] != v {
			return false
		}
	}
	return true
}

// committedOffsets returns the group's committed offsets of a stream's input.
func (e *env) committedOffsets(stream string) faultOffsets {
	e.t.Helper()
	in := e.stream(stream).Input
	c := &kafka.Client{Addr: kafka.TCP(e.addr), Timeout: 10 * time.Second}
	res, err := c.OffsetFetch(context.Background(), &kafka.OffsetFetchRequest{
		GroupID: e.cfg.Stage.GroupID, Topics: map[string][]int{in: {0, 1}}})
	if err != nil || res.Error != nil {
		e.t.Fatalf("offset fetch: %v %v", err, res)
	}
	out := faultOffsets{}
	for _, p := range res.Topics[in] {
		if p.Error != nil {
			e.t.Fatalf("offset fetch %s/%d: %v", in, p.Partition, p.Error)
		}
		out[p.Partition] = p.CommittedOffset
	}
	return out
}

// waitAllCommitted waits until a stream's input is committed up to its end
// offsets and returns the committed offsets.
func (e *env) waitAllCommitted(stream string, timeout time.Duration) faultOffsets {
	e.t.Helper()
	_, end, err := kafkatest.Offsets(context.Background(), e.addr, e.stream(stream).Input)
	if err != nil {
		e.t.Fatal(err)
	}
	var c faultOffsets
	faultWait(e.t, timeout, stream+" input committed to its end", func() bool {
		c = e.committedOffsets(stream)
		for p, o := range end {
			if o > 0 && c[p] != o {
				return false
			}
		}
		return true
	})
	return c
}

// metricValue reads one unlabelled metric from the stage's /metrics handler.
func (e *env) metricValue(name string) float64 {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.app.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	e.t.Fatalf("metric %s not exported", name)
	return 0
}

func faultDeleteTopic(t *testing.T, addr, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 20 * time.Second}
	res, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = res.Errors[topic]
	}
	if err != nil {
		t.Fatalf("delete topic %s: %v", topic, err)
	}
	faultWait(t, 30*time.Second, "topic "+topic+" gone", func() bool {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		return err == nil && len(md.Topics) == 1 && md.Topics[0].Error != nil
	})
}

func faultWait(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events returns n chat events of tenant T1 with ids prefix-0 … prefix-n-1.
func faultEvents(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = chatEvent(fmt.Sprintf("%s-%d", prefix, i), "T1", fmt.Sprintf("U%d", i%5), "hello")
	}
	return out
}

func faultFileEvent(id, tenant, user string) string {
	return fmt.Sprintf(`{"event_id":%q,"type":"file.shared","tenant_id":%q,"user_id":%q,"file":{"name":"a.txt","mime":"text/plain","content_b64":"aGVsbG8="}}`, id, tenant, user)
}

func faultLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
