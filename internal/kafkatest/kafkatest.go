package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// EnvBrokers names the environment variable that holds the test broker's
// address (host:port). scripts/test.sh sets it after starting the broker.
const EnvBrokers = "ANONPROXY_TEST_BROKERS"

// Brokers returns the test broker's address. Without one it skips the test,
// or fails it when CI=true: integration tests must never pass by skipping in CI.
func Brokers(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(EnvBrokers)
	if addr == "" {
		msg := EnvBrokers + " is not set: start a broker with scripts/kafka/broker.sh start and export " +
			EnvBrokers + "=$(scripts/kafka/broker.sh addr), or run scripts/test.sh"
		if os.Getenv("CI") == "true" {
			t.Fatalf("integration test needs a Kafka broker in CI: %s", msg)
		}
		t.Skip(msg)
	}
	return addr
}

// Environment variables for the test broker's SASL_SSL listener, printed by
// scripts/kafka/broker.sh secure-env (scripts/test.sh exports them).
const (
	EnvSecureBrokers = "ANONPROXY_TEST_SECURE_BROKERS"
	EnvCAFile        = "ANONPROXY_TEST_CA_FILE"
	EnvSASLUser      = "ANONPROXY_TEST_SASL_USER"
	EnvSASLPassword  = "ANONPROXY_TEST_SASL_PASSWORD"
)

// SecureBrokers returns the test broker's SASL_SSL listener (host:port),
// the PEM file of the CA that signed its certificate, and a SASL user and
// password valid for PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512. Without them
// it skips the test, or fails it when CI=true, like Brokers.
func SecureBrokers(t testing.TB) (addr, caFile, user, password string) {
	t.Helper()
	addr, caFile = os.Getenv(EnvSecureBrokers), os.Getenv(EnvCAFile)
	user, password = os.Getenv(EnvSASLUser), os.Getenv(EnvSASLPassword)
	if addr == "" || caFile == "" || user == "" || password == "" {
		msg := EnvSecureBrokers + ", " + EnvCAFile + ", " + EnvSASLUser + " and " + EnvSASLPassword +
			" are not all set: start a broker with scripts/kafka/broker.sh start and run " +
			`eval "$(scripts/kafka/broker.sh secure-env)", or run scripts/test.sh`
		if os.Getenv("CI") == "true" {
			t.Fatalf("integration test needs the broker's SASL_SSL listener in CI: %s", msg)
		}
		t.Skip(msg)
	}
	return addr, caFile, user, password
}

var topicSeq atomic.Int64

// Topic returns a topic name unique to this test run.
func Topic(t testing.TB, prefix string) string {
	name := strings.NewReplacer("/", ".", " ", "_").Replace(t.Name())
	if len(name) > 60 {
		name = name[:60]
	}
	return fmt.Sprintf("%s.%s.%d.%d", prefix, name, time.Now().UnixNano()%1e9, topicSeq.Add(1))
}

// CompactedConfig is the per-topic configuration that makes the log cleaner
// compact within about a second (notes/kafka.md): segments roll on the first
// append after segment.ms, and anything dirty is cleanable at once.
var CompactedConfig = map[string]string{
	"cleanup.policy":            "compact",
	"segment.ms":                "100",
	"min.cleanable.dirty.ratio": "0.01",
	"min.compaction.lag.ms":     "0",
	"delete.retention.ms":       "100",
}

// CreateTopic creates a topic with the given partitions and configs and waits
// until every partition has a leader.
func CreateTopic(t testing.TB, addr, topic string, partitions int, configs map[string]string) {
	t.Helper()
	if err := CreateTopicErr(addr, topic, partitions, configs); err != nil {
		t.Fatalf("kafkatest: create topic %s: %v", topic, err)
	}
}

// CreateTopicErr is CreateTopic for callers outside tests (the load test).
func CreateTopicErr(addr, topic string, partitions int, configs map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var entries []kafka.ConfigEntry
	for k, v := range configs {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 20 * time.Second}
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: entries,
	}}})
	if err != nil {
		return err
	}
	if err := res.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return err
	}
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 && md.Topics[0].Error == nil && len(md.Topics[0].Partitions) == partitions {
			ok := true
			for _, p := range md.Topics[0].Partitions {
				if p.Leader.ID < 0 {
					ok = false
				}
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no leader for all partitions: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CreateCompactedTopic creates a compacted topic with CompactedConfig.
func CreateCompactedTopic(t testing.TB, addr, topic string, partitions int) {
	t.Helper()
	CreateTopic(t, addr, topic, partitions, CompactedConfig)
}

// Offsets returns each partition's first and end (high watermark) offsets.
// A freshly created or just restarted broker briefly answers "not leader"
// and the like: it retries those until ctx ends.
func Offsets(ctx context.Context, addr, topic string) (first, end map[int]int64, err error) {
	for {
		first, end, err = offsetsOnce(ctx, addr, topic)
		if err == nil || ctx.Err() != nil || !retriable(err) {
			return first, end, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func retriable(err error) bool {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	return false
}

func offsetsOnce(ctx context.Context, addr, topic string) (first, end map[int]int64, err error) {
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, nil, err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return nil, nil, fmt.Errorf("metadata for %s: %v", topic, md.Topics)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, err
	}
	first, end = map[int]int64{}, map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, nil, po.Error
		}
		first[po.Partition] = po.FirstOffset
		end[po.Partition] = po.LastOffset
	}
	return first, end, nil
}

// ReadAll reads every partition of topic from its first offset to the end
// offset read at the start, and returns the records in partition order. It
// fails the test if that takes longer than timeout (a client hang).
func ReadAll(t testing.TB, addr, topic string, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, end, err := Offsets(ctx, addr, topic)
	if err != nil {
		t.Fatalf("kafkatest: offsets of %s: %v", topic, err)
	}
	var out []kafka.Message
	for p := 0; p < len(end); p++ {
		msgs, err := ReadPartition(ctx, addr, topic, p, end[p])
		if err != nil {
			t.Fatalf("kafkatest: read %s/%d to offset %d: %v (a kafka-go hang on compacted data times out here)", topic, p, end[p], err)
		}
		out = append(out, msgs...)
	}
	return out
}

// ReadPartition reads one partition from its first offset until the read
// position reaches end. Compaction leaves offset gaps, so the loop is driven
// by the position, never by counting records.
func ReadPartition(ctx context.Context, addr, topic string, partition int, end int64) ([]kafka.Message, error) {
	if end <= 0 {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{addr}, Topic: topic, Partition: partition,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(kafka.FirstOffset); err != nil {
		return nil, err
	}
	var out []kafka.Message
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, m)
		if m.Offset+1 >= end {
			return out, nil
		}
	}
}

// Produce writes messages synchronously with acks from all in-sync replicas.
func Produce(t testing.TB, addr, topic string, compression kafka.Compression, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, Compression: compression,
		BatchSize: 1000, BatchBytes: 16 << 20, BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafkatest: produce %d records to %s: %v", len(msgs), topic, err)
	}
}

// Compact makes the broker compact topic: it waits past segment.ms, appends
// roll (a record that rolls the active segment, chosen by the caller so that
// it does not change the topic's meaning, e.g. a rewrite of a key's latest
// value), and then waits until the number of records in the topic drops below
// written, which proves that the cleaner ran.
func Compact(t testing.TB, addr, topic string, written int, roll kafka.Message) []kafka.Message {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	Produce(t, addr, topic, kafka.Zstd, roll)
	written++
	deadline := time.Now().Add(60 * time.Second)
	for {
		msgs := ReadAll(t, addr, topic, 30*time.Second)
		if len(msgs) < written {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafkatest: %s was not compacted within 60 s (%d records remain of %d)", topic, len(msgs), written)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// RestartBroker stops the test broker and starts it again on the same port
// and data directory (scripts/kafka/broker.sh restart).
func RestartBroker(t testing.TB) {
	t.Helper()
	out, err := exec.Command("bash", brokerScript(), "restart").CombinedOutput()
	if err != nil {
		t.Fatalf("kafkatest: broker restart: %v\n%s", err, out)
	}
}

// StopBroker and StartStoppedBroker split a restart so a test can act while
// the broker is down.
func StopBroker(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("bash", brokerScript(), "stop").CombinedOutput(); err != nil {
		t.Fatalf("kafkatest: broker stop: %v\n%s", err, out)
	}
}

// StartStoppedBroker starts a broker stopped by StopBroker on its old port and data.
func StartStoppedBroker(t testing.TB) {
	t.Helper()
	if out, err := exec.Command("bash", brokerScript(), "relaunch").CombinedOutput(); err != nil {
		t.Fatalf("kafkatest: broker relaunch: %v\n%s", err, out)
	}
}

func brokerScript() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "scripts", "kafka", "broker.sh")
}

// Kcat runs the kcat binary (Debian's package) with args against addr and
// returns its standard output. It fails the test if kcat is missing in CI,
// and skips otherwise.
func Kcat(t testing.TB, addr string, timeout time.Duration, args ...string) []byte {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kcat is not installed (scripts/test.sh installs Debian's kcat)")
		}
		t.Skip("kcat is not installed: apt-get install kcat")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-b", addr}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}
