package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/segmentio/kafka-go"
)

// churner writes consent records: the initial seeding and the churn during
// the run. Each write is synchronous with RequireAll, so its Acked time is
// the moment the broker acknowledged it on all in-sync replicas.
type churner struct {
	w        *kafka.Writer
	log      *ConsentLog
	subjects []Subject
	tenants  []string
	rng      *rand.Rand
	seq      int
}

func newChurner(brokers []string, topic string, seed uint64, subjects []Subject, log *ConsentLog) *churner {
	c := &churner{
		w: &kafka.Writer{
			Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000,
			WriteTimeout: 10 * time.Second,
			// Ride out a broker restart (about a minute of retries): the
			// crash test restarts the broker mid-run.
			MaxAttempts: outageAttempts, WriteBackoffMax: time.Second,
		},
		log: log, subjects: subjects,
		rng: rand.New(rand.NewPCG(seed, 0xc0425e47)),
	}
	seen := map[string]bool{}
	for _, s := range subjects {
		if !seen[s.Tenant] {
			seen[s.Tenant] = true
			c.tenants = append(c.tenants, s.Tenant)
		}
	}
	return c
}

func (c *churner) close() error { return c.w.Close() }

var levelNames = []string{"deny", "anonymized", "allow"}

// value returns a random consent value: permissive levels dominate, so that
// most traffic is forwarded and revocations have something to revoke.
func (c *churner) value() []byte {
	r := c.rng
	lvl := func() string { return levelNames[[]int{0, 1, 1, 2, 2, 2}[r.IntN(6)]] }
	cats := ""
	for _, cat := range Categories {
		if r.IntN(3) == 0 {
			if cats != "" {
				cats += ","
			}
			cats += fmt.Sprintf("%q:%q", cat, lvl())
		}
	}
	c.seq++
	return fmt.Appendf(nil, `{"default":%q,"categories":{%s},"updated_at":%q,"updated_by":"loadtest"}`,
		lvl(), cats, time.Now().UTC().Format(time.RFC3339Nano))
}

// malformedValue is invalid JSON or names an unknown level: deny.
func (c *churner) malformedValue() []byte {
	if c.rng.IntN(2) == 0 {
		return []byte(`{"default":"allow","categories":{"chat":`)
	}
	return []byte(`{"default":"maybe","updated_by":"loadtest"}`)
}

// seed writes a tenant record for 7 of 8 tenants and a user record for
// about 60 % of users, in one batch; subjects left without either fall to
// the configured default.
func (c *churner) seed(ctx context.Context) error {
	var msgs []kafka.Message
	for i, t := range c.tenants {
		if i%8 != 7 {
			msgs = append(msgs, kafka.Message{Key: []byte(TenantKey(t)), Value: c.value()})
		}
	}
	for _, s := range c.subjects {
		if c.rng.IntN(10) < 6 {
			msgs = append(msgs, kafka.Message{Key: []byte(UserKey(s.Tenant, s.User)), Value: c.value()})
		}
	}
	sent := time.Now()
	if err := c.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("loadtest: seed consent: %w", err)
	}
	acked := time.Now()
	for _, m := range msgs {
		c.log.Add(ConsentWrite{Key: string(m.Key), Value: m.Value, Sent: sent, Acked: acked, seed: true})
	}
	return nil
}

// one writes one churn record: a tenant record (1 in 5) or a user record,
// with 1 in 10 a tombstone and 1 in 20 malformed.
func (c *churner) one(ctx context.Context) error {
	r := c.rng
	var key string
	if r.IntN(5) == 0 {
		key = TenantKey(c.tenants[r.IntN(len(c.tenants))])
	} else {
		s := c.subjects[r.IntN(len(c.subjects))]
		key = UserKey(s.Tenant, s.User)
	}
	var value []byte
	switch x := r.IntN(20); {
	case x < 2:
		value = nil
	case x < 3:
		value = c.malformedValue()
	default:
		value = c.value()
	}
	sent := time.Now()
	if err := c.w.WriteMessages(ctx, kafka.Message{Key: []byte(key), Value: value}); err != nil {
		// The outcome is unknown (a write cancelled at the end of the run may
		// still have reached the broker): the stage may apply it from Sent
		// on, and need never.
		c.log.Add(ConsentWrite{Key: key, Value: value, Sent: sent, Acked: neverAcked, Uncertain: true})
		return fmt.Errorf("loadtest: consent write: %w", err)
	}
	c.log.Add(ConsentWrite{Key: key, Value: value, Sent: sent, Acked: time.Now()})
	return nil
}

// run writes churn at rate per second until ctx is done.
func (c *churner) run(ctx context.Context, rate float64) error {
	if rate <= 0 {
		return nil
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := c.one(ctx); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}
