package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/proxy"
)

// revokingDecider applies a revocation to the table the first time it is
// asked, as if the consent record arrived while the batch was being decided.
type revokingDecider struct {
	table *consent.Table
	done  bool
}

func (d *revokingDecider) Decide(tenant, user, category string) (consent.Decision, error) {
	dec, err := d.table.Decide(tenant, user, category)
	if !d.done {
		d.done = true
		d.table.Apply([]byte("u:T1:U1"), []byte(`{"default":"deny"}`), 0, 100)
	}
	return dec, err
}

type versionedFeed struct{ table *consent.Table }

func (f versionedFeed) Ready() bool                     { return true }
func (f versionedFeed) WaitReady(context.Context) error { return nil }
func (f versionedFeed) Staleness() time.Duration        { return 0 }
func (f versionedFeed) Version() uint64                 { return f.table.Version() }

// TestRevocationDuringDecisionRedecides: a revocation applied while a batch
// is being decided is honoured before the batch is produced.
func TestRevocationDuringDecisionRedecides(t *testing.T) {
	_, cfg := newProcessor(t, nil)
	table := consent.NewTable(cfg.Policy, "chat")
	table.Apply([]byte("u:T1:U1"), []byte(`{"default":"allow"}`), 0, 1)
	table.MarkReady()
	p, err := proxy.NewProcessor(&cfg.Stage, cfg.Streams, cfg.Redaction, testKeys(t), &revokingDecider{table: table})
	if err != nil {
		t.Fatal(err)
	}
	chat, _ := cfg.Stream("chat")
	msgs := []kafka.Message{{Topic: chat.Input, Value: []byte(`{"tenant_id":"T1","user_id":"U1","text":"hi"}`)}}
	var b proxy.Batch
	if err := proxy.DecideBatch(p, versionedFeed{table}, &b, msgs); err != nil {
		t.Fatal(err)
	}
	if b.Outcomes[0] != proxy.Denied {
		t.Fatalf("outcome %v after a revocation during the decision, want Denied", b.Outcomes[0])
	}
}
