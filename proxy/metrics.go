package proxy

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anonproxy/anonproxy/consent"
	"github.com/anonproxy/anonproxy/redact"
)

// Metrics are the stage's Prometheus metrics. Labels carry only stream,
// topic, partition, decision, reason and detector names from the config and
// the code, never payload bytes or ids. Counters are added once per batch.
type Metrics struct {
	Registry     *prometheus.Registry
	EventsIn     *prometheus.CounterVec
	Forwarded    *prometheus.CounterVec
	Denied       *prometheus.CounterVec
	Quarantined  *prometheus.CounterVec
	Redactions   *prometheus.CounterVec
	BatchLatency *prometheus.HistogramVec
	CommitLag    *prometheus.GaugeVec
	Paused       prometheus.Gauge
	Rebalances   prometheus.Counter
	WriteRetries prometheus.Counter
	Redecided    prometheus.Counter

	mu      sync.Mutex
	streams map[string]*streamMetrics
}

// NewMetrics registers the stage's metrics on reg (a new registry if nil).
func NewMetrics(reg *prometheus.Registry) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{
		Registry: reg,
		EventsIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anonproxy_events_in_total",
			Help: "Input events processed, by stream."}, []string{"stream"}),
		Forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anonproxy_events_forwarded_total",
			Help: "Events produced to the output topic, by stream and decision (allow, anonymized)."}, []string{"stream", "decision"}),
		Denied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anonproxy_events_denied_total",
			Help: "Events not produced because consent is deny, by stream."}, []string{"stream"}),
		Quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anonproxy_events_quarantined_total",
			Help: "Events sent to the quarantine topic, by stream and reason."}, []string{"stream", "reason"}),
		Redactions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anonproxy_redactions_total",
			Help: "Spans replaced by the redaction engine, by kind (detector, action) and name."}, []string{"kind", "name"}),
		BatchLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "anonproxy_batch_duration_seconds",
			Help:    "Time from fetching a batch to committing it (decide, redact, produce, acknowledge, commit), by stream.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"stream"}),
		CommitLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "anonproxy_commit_lag_records",
			Help: "Records between the partition's high watermark and the last committed offset."}, []string{"topic", "partition"}),
		Paused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "anonproxy_paused",
			Help: "1 while processing is paused because consent is staler than consent.max_staleness."}),
		Rebalances: prometheus.NewCounter(prometheus.CounterOpts{Name: "anonproxy_generations_total",
			Help: "Consumer-group generations joined (rebalances)."}),
		WriteRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "anonproxy_write_retries_total",
			Help: "Produce calls retried because not every record was acknowledged."}),
		Redecided: prometheus.NewCounter(prometheus.CounterOpts{Name: "anonproxy_batches_redecided_total",
			Help: "Batches decided again because consent changed while they were being decided."}),
		streams: map[string]*streamMetrics{},
	}
	for _, c := range []prometheus.Collector{m.EventsIn, m.Forwarded, m.Denied, m.Quarantined, m.Redactions,
		m.BatchLatency, m.CommitLag, m.Paused, m.Rebalances, m.WriteRetries, m.Redecided} {
		f(c)
	}
	return m
}

// ConsentGauges exports the consent table's size and staleness, read at scrape time.
func (m *Metrics) ConsentGauges(size func() int, staleness func() time.Duration, malformed func() uint64) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "anonproxy_consent_subjects",
			Help: "Subjects (tenant and user records) in the consent table."}, func() float64 { return float64(size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "anonproxy_consent_staleness_seconds",
			Help: "Time since the consent table was last known to be at the consent topic's end offsets."},
			func() float64 { return staleness().Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "anonproxy_consent_malformed_total",
			Help: "Consent records that did not parse or named an unknown level (treated as deny)."},
			func() float64 { return float64(malformed()) }),
	)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

type streamMetrics struct {
	in, denied, fwdAllow, fwdAnon prometheus.Counter
	latency                       prometheus.Observer
	quarantined                   *prometheus.CounterVec
	name                          string
}

func (m *Metrics) stream(name string) *streamMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.streams[name]; s != nil {
		return s
	}
	s := &streamMetrics{
		in: m.EventsIn.WithLabelValues(name), denied: m.Denied.WithLabelValues(name),
		fwdAllow: m.Forwarded.WithLabelValues(name, "allow"), fwdAnon: m.Forwarded.WithLabelValues(name, "anonymized"),
		latency: m.BatchLatency.WithLabelValues(name), quarantined: m.Quarantined, name: name,
	}
	m.streams[name] = s
	return s
}

func (s *streamMetrics) observe(b *Batch, in int, d time.Duration) {
	s.in.Add(float64(in))
	s.fwdAllow.Add(float64(b.Forwarded[consent.LevelAllow]))
	s.fwdAnon.Add(float64(b.Forwarded[consent.LevelAnonymized]))
	denied := 0
	for i, o := range b.Outcomes {
		switch o {
		case Denied:
			denied++
		case Quarantined:
			s.quarantined.WithLabelValues(s.name, b.Reasons[i]).Inc()
		}
	}
	s.denied.Add(float64(denied))
	s.latency.Observe(d.Seconds())
}

func (m *Metrics) redactions(st *redact.Stats) {
	st.Each(func(kind, name string, n uint64) {
		if n > 0 {
			m.Redactions.WithLabelValues(kind, name).Add(float64(n))
		}
	})
}
