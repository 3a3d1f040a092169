package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anonproxy/anonproxy/config"
	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/internal/kafkatest"
	"github.com/anonproxy/anonproxy/internal/wire"
	"github.com/anonproxy/anonproxy/proxy"
)

// The tests in this file run the stage against the test broker's SASL_SSL
// listener (scripts/kafka/broker.sh: a certificate for 127.0.0.1 from a CA
// generated at start; SCRAM credentials written at storage format time).
// Topics are created, and records produced and read back, through the
// PLAINTEXT listener by the kafkatest helpers; the stage itself, its
// consent loader, consumer group and producer, reaches the broker only
// through the secure listener.

// failFast bounds how long a misconfigured stage may take to give up. A
// rejected password or certificate is known after one round trip; the
// bound is generous for a loaded CI machine, and far below "forever".
const failFast = 20 * time.Second

// newSecureEnv is newEnv with the stage pointed at the SASL_SSL listener.
// tweak, if set, changes the secure settings (a wrong CA, a wrong name).
func newSecureEnv(t *testing.T, mechanism, password string, tweak func(*proxy.KafkaConfig)) *env {
	t.Helper()
	addr, caFile, user, pw := kafkatest.SecureBrokers(t)
	if password == "" {
		password = pw
	}
	t.Setenv("ANONPROXY_SASL_PASSWORD", password)
	return newEnv(t, func(c *config.File) {
		c.Kafka.Brokers = []string{addr}
		c.Kafka.TLS = proxy.TLSConfig{Enabled: true, CAFile: caFile}
		c.Kafka.SASL = proxy.SASLConfig{Mechanism: mechanism, Username: user}
		if tweak != nil {
			tweak(&c.Kafka)
		}
	})
}

// TestSecureStage: the real stage over TLS with each SASL mechanism loads
// consent and forwards an allowed event, denies one without consent, and
// applies a revocation it reads while running.
func TestSecureStage(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			e := newSecureEnv(t, mech, "", nil)
			// Written before the stage starts: the initial load over the secure listener reads it.
			e.setConsent(consent.UserKey("T1", "U1"), level("allow"))
			e.start()
			if n := e.app.Table.Len(); n < 1 {
				t.Fatalf("consent table has %d subjects after the secure load, want 1", n)
			}
			e.produce("chat", chatEvent("sec-allow", "T1", "U1", "write to alice@example.com"),
				chatEvent("sec-none", "T1", "U2", "no consent record"))
			r := e.collect(2, 60*time.Second)
			checkOutcome(t, r, "sec-allow", consent.LevelAllow)
			checkOutcome(t, r, "sec-none", consent.LevelDeny)

			// A revocation read by the running loader over the secure listener.
			e.setConsent(consent.UserKey("T1", "U1"), level("deny"))
			faultWait(t, 30*time.Second, "revocation applied", func() bool {
				d, err := e.app.Table.Decide("T1", "U1", "chat")
				return err == nil && d.Level == consent.LevelDeny
			})
			e.produce("chat", chatEvent("sec-revoked", "T1", "U1", "after the revocation"))
			r = e.collect(3, 60*time.Second)
			checkOutcome(t, r, "sec-revoked", consent.LevelDeny)
		})
	}
}

// runMisconfigured builds and runs the wired stage (consent loader and
// stage, as `anonproxy run` does) and returns its error and how long it
// took to give up. It fails the test if it does not give up within failFast.
func runMisconfigured(t *testing.T, e *env) (error, time.Duration) {
	t.Helper()
	app, err := wire.Build(e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*failFast)
	defer cancel()
	t0 := time.Now()
	err = app.Run(ctx, 5*time.Second)
	took := time.Since(t0)
	if err == nil || ctx.Err() != nil || took > failFast {
		t.Fatalf("stage with a bad configuration: Run returned %v after %s; want an error within %s", err, took.Round(time.Millisecond), failFast)
	}
	// The stage's own wait for consent reports the same failure.
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer wcancel()
	if werr := app.Loader.WaitReady(wctx); werr == nil || !strings.Contains(werr.Error(), "(check kafka.") {
		t.Errorf("Loader.WaitReady after the failed Run: %v, want the loader's error (Run returned %v)", werr, err)
	}
	return err, took
}

// readyFeed is a consent feed that is always ready and fresh: it lets the
// stage reach its own consumer group without a consent loader.
type readyFeed struct{}

func (readyFeed) Ready() bool                         { return true }
func (readyFeed) WaitReady(ctx context.Context) error { return nil }
func (readyFeed) Staleness() time.Duration            { return 0 }

// runStageAlone runs only the stage (no loader: the consent feed is
// ready), so that its own consumer group and connections meet the bad
// configuration, and returns its error within failFast.
func runStageAlone(t *testing.T, e *env) error {
	t.Helper()
	app, err := wire.Build(e.cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatalf("wire: %v", err)
	}
	stage, err := proxy.NewStage(proxy.StageOptions{Config: &e.cfg.Stage, Clients: app.Clients,
		Processor: app.Processor, Consent: readyFeed{}, MaxStaleness: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*failFast)
	defer cancel()
	t0 := time.Now()
	err = stage.Run(ctx)
	took := time.Since(t0)
	if err == nil || took > failFast {
		t.Fatalf("stage alone with a bad configuration: Run returned %v after %s; want an error within %s", err, took.Round(time.Millisecond), failFast)
	}
	t.Logf("stage alone failed after %s: %v", took.Round(time.Millisecond), err)
	return err
}

// TestSecureWrongPassword: a wrong SASL password ends Run with an
// authentication error at once instead of retrying forever, for the
// consent loader (what `anonproxy run` meets first) and for the stage's
// consumer group on its own.
func TestSecureWrongPassword(t *testing.T) {
	for _, mech := range []string{"SCRAM-SHA-512", "PLAIN"} {
		t.Run(mech, func(t *testing.T) {
			e := newSecureEnv(t, mech, "not-the-password", nil)
			err, took := runMisconfigured(t, e)
			if !strings.Contains(err.Error(), "authentication failed (check kafka.sasl)") {
				t.Errorf("Run: %v, want an error naming the authentication failure", err)
			}
			t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
			err = runStageAlone(t, e)
			if !strings.Contains(err.Error(), "authentication failed (check kafka.sasl)") {
				t.Errorf("Stage.Run: %v, want an error naming the authentication failure", err)
			}
		})
	}
}

// TestSecureWrongCA: a broker certificate that does not verify (signed by
// a CA the client does not trust, or not naming the host) ends Run with a
// certificate error at once.
func TestSecureWrongCA(t *testing.T) {
	t.Run("untrusted CA", func(t *testing.T) {
		other := writeThrowawayCA(t)
		e := newSecureEnv(t, "SCRAM-SHA-512", "", func(k *proxy.KafkaConfig) { k.TLS.CAFile = other })
		err, took := runMisconfigured(t, e)
		if !strings.Contains(err.Error(), "TLS certificate verification failed (check kafka.tls)") ||
			!strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("Run: %v, want a certificate verification error", err)
		}
		t.Logf("failed after %s: %v", took.Round(time.Millisecond), err)
		if err := runStageAlone(t, e); !strings.Contains(err.Error(), "TLS certificate verification failed") {
			t.Errorf("Stage.Run: %v, want a certificate verification error", err)
		}
	})
	t.Run("wrong server name", func(t *testing.T) {
		e := newSecureEnv(t, "SCRAM-SHA-512", "", func(k *proxy.KafkaConfig) { k.TLS.ServerName = "kafka.invalid" })
		err, _ := runMisconfigured(t, e)
		if !strings.Contains(err.Error(), "TLS certificate verification failed (check kafka.tls)") ||
			!strings.Contains(err.Error(), "kafka.invalid") {
			t.Errorf("Run: %v, want a certificate name mismatch", err)
		}
	})
}

// writeThrowawayCA writes the PEM of a fresh self-signed CA, unrelated to
// the broker's, and returns its path.
func writeThrowawayCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "throwaway test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
