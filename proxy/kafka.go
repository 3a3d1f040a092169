package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/redact"
)

// EnvBrokers overrides KafkaConfig.Brokers: a comma-separated host:port list.
const EnvBrokers = "ANONPROXY_BROKERS"

// KafkaConfig is how every component reaches the cluster. Secrets never sit
// in the YAML: the SASL password and TLS key are read from the environment
// or from files named here.
type KafkaConfig struct {
	// Brokers to bootstrap from. ANONPROXY_BROKERS, when set, replaces it.
	Brokers []string `yaml:"brokers"`
	// ClientID sent to the brokers. Default: anonproxy.
	ClientID string `yaml:"client_id"`
	// DialTimeout bounds connecting to a broker. Default: 10s.
	DialTimeout Duration   `yaml:"dial_timeout"`
	TLS         TLSConfig  `yaml:"tls"`
	SASL        SASLConfig `yaml:"sasl"`
}

// TLSConfig enables TLS to the brokers.
type TLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile: PEM bundle of CAs to trust. Default: the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile: client certificate for mutual TLS (both or neither).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the broker's certificate.
	ServerName string `yaml:"server_name"`
}

// SASLConfig enables SASL authentication.
type SASLConfig struct {
	// Mechanism: "" (none), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// PasswordEnv names the environment variable holding the password.
	// Default: ANONPROXY_SASL_PASSWORD. PasswordFile, if set, wins.
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
}

// Duration is a time.Duration written in YAML as a Go duration ("250ms",
// "1s"); the same type as the consent block's.
type Duration = consent.Duration

func orDur(d Duration, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// BrokerList returns the brokers after the ANONPROXY_BROKERS override.
func (c *KafkaConfig) BrokerList() []string {
	if env := strings.TrimSpace(os.Getenv(EnvBrokers)); env != "" {
		var out []string
		for _, b := range strings.Split(env, ",") {
			if b = strings.TrimSpace(b); b != "" {
				out = append(out, b)
			}
		}
		return out
	}
	return c.Brokers
}

func (c *KafkaConfig) clientID() string {
	if c.ClientID == "" {
		return "anonproxy"
	}
	return c.ClientID
}

// Validate reports each problem with its YAML path relative to the kafka block.
func (c *KafkaConfig) Validate() []FieldError {
	var errs []FieldError
	if len(c.BrokerList()) == 0 {
		errs = append(errs, fieldErr("brokers", errors.New("at least one broker is required (or set "+EnvBrokers+")")))
	}
	for i, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			errs = append(errs, fieldErr(fmt.Sprintf("brokers[%d]", i), fmt.Errorf("%q is not host:port", b)))
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, fieldErr("tls.cert_file", errors.New("cert_file and key_file go together")))
	}
	switch c.SASL.Mechanism {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASL.Username == "" {
			errs = append(errs, fieldErr("sasl.username", errors.New("required with a SASL mechanism")))
		}
	default:
		errs = append(errs, fieldErr("sasl.mechanism", fmt.Errorf("unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.SASL.Mechanism)))
	}
	return errs
}

func (c *KafkaConfig) tlsConfig() (*tls.Config, error) {
	if !c.TLS.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka tls: no certificate in %s", c.TLS.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka tls: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (c *KafkaConfig) mechanism() (sasl.Mechanism, error) {
	if c.SASL.Mechanism == "" {
		return nil, nil
	}
	var password string
	if c.SASL.PasswordFile != "" {
		b, err := os.ReadFile(c.SASL.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("kafka sasl: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	} else {
		env := c.SASL.PasswordEnv
		if env == "" {
			env = "ANONPROXY_SASL_PASSWORD"
		}
		password = os.Getenv(env)
		if password == "" {
			return nil, fmt.Errorf("kafka sasl: no password: set %s or sasl.password_file", env)
		}
	}
	switch c.SASL.Mechanism {
	case "PLAIN":
		return plain.Mechanism{Username: c.SASL.Username, Password: password}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, c.SASL.Username, password)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, c.SASL.Username, password)
	}
	return nil, fmt.Errorf("kafka sasl: unknown mechanism %q", c.SASL.Mechanism)
}

// Clients are the kafka-go connection objects built once from a KafkaConfig
// and shared by the consent loader, the stage's reader side and its writer.
type Clients struct {
	Brokers   []string
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
}

// Connect builds the dialer and transport (reading secrets); it does not dial.
func (c *KafkaConfig) Connect() (*Clients, error) {
	tlsCfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	mech, err := c.mechanism()
	if err != nil {
		return nil, err
	}
	timeout := orDur(c.DialTimeout, 10*time.Second)
	return &Clients{
		Brokers: c.BrokerList(),
		Dialer: &kafka.Dialer{
			ClientID: c.clientID(), Timeout: timeout, DualStack: true,
			TLS: tlsCfg, SASLMechanism: mech,
		},
		Transport: &kafka.Transport{
			ClientID: c.clientID(), DialTimeout: timeout, TLS: tlsCfg, SASL: mech,
			MetadataTTL: 10 * time.Second,
		},
	}, nil
}

// FieldError is one configuration problem at a YAML path relative to the
// block its Validate method was called on; the config loader prefixes it.
type FieldError = redact.FieldError

func fieldErr(path string, err error) FieldError { return FieldError{Path: path, Err: err} }
