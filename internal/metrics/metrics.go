package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/proxy"
)

// Histogram buckets, in seconds. Analysis of a cached statement takes
// microseconds and a parse tens of microseconds to milliseconds; a round
// trip includes the database's own work.
var (
	analysisBuckets = prometheus.ExponentialBuckets(10e-6, 4, 9)     // 10µs .. 0.66s
	durationBuckets = prometheus.ExponentialBuckets(500e-6, 2.5, 12) // 0.5ms .. 12s
)

// Metrics holds pgseal's collectors in a registry of its own. It is safe
// for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	sessionsOpen   prometheus.Gauge
	sessions       *prometheus.CounterVec
	authFailures   prometheus.Counter
	tlsRefusals    prometheus.Counter
	upstreamErrors prometheus.Counter
	statements     *prometheus.CounterVec
	encrypted      prometheus.Counter
	decrypted      prometheus.Counter
	decryptErrors  *prometheus.CounterVec
	analysis       prometheus.Histogram
	duration       prometheus.Histogram
	reloads        *prometheus.CounterVec
	lastReload     *prometheus.GaugeVec
	auditErrors    prometheus.Counter
	keys           *keyCollector
}

// Option configures New.
type Option func(*config)

type config struct {
	now     func() time.Time
	version string
	runtime bool
}

// WithClock replaces time.Now (key ages, reload times).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithVersion sets the version reported by pgseal_build_info.
func WithVersion(v string) Option { return func(c *config) { c.version = v } }

// WithoutRuntime leaves out the Go runtime and process collectors (go_*,
// process_*), which are on by default.
func WithoutRuntime() Option { return func(c *config) { c.runtime = false } }

// New returns a Metrics with every collector registered.
func New(opts ...Option) *Metrics {
	c := config{now: time.Now, version: "unknown", runtime: true}
	for _, o := range opts {
		o(&c)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), now: c.now}
	f := factory{m.reg}
	m.sessionsOpen = f.gauge("pgseal_sessions_open", "Client sessions open now (past authentication).")
	m.sessions = f.counterVec("pgseal_sessions_total", "Client sessions opened, by the TLS version the client used (none: plaintext).", "tls_version")
	m.authFailures = f.counter("pgseal_auth_failures_total", "Client authentications refused.")
	m.tlsRefusals = f.counter("pgseal_tls_refusals_total", "Clients refused for TLS reasons (no TLS while required, failed handshake).")
	m.upstreamErrors = f.counter("pgseal_upstream_connect_errors_total", "Failed connections to the upstream PostgreSQL.")
	m.statements = f.counterVec("pgseal_statements_total", "Statements analysed, by kind and outcome (passed, rewritten, refused).", "kind", "outcome")
	m.encrypted = f.counter("pgseal_values_encrypted_total", "Values encrypted on their way to the database.")
	m.decrypted = f.counter("pgseal_values_decrypted_total", "Values decrypted on their way to clients.")
	m.decryptErrors = f.counterVec("pgseal_decrypt_errors_total", "Stored values that did not decrypt, by policy column.", "column")
	m.analysis = f.histogram("pgseal_statement_analysis_seconds", "Time to analyse a statement text (plan cache, parse, literal encryption).", analysisBuckets)
	m.duration = f.histogram("pgseal_statement_duration_seconds", "Time from a client's Query or Sync to the ReadyForQuery that answers it, as pgseal sees it.", durationBuckets)
	m.reloads = f.counterVec("pgseal_reloads_total", "Policy and keystore load attempts after start, by source and result (success, failure).", "source", "result")
	m.lastReload = f.gaugeVec("pgseal_reload_last_success_timestamp_seconds", "When each source was last loaded successfully (Unix time).", "source")
	m.auditErrors = f.counter("pgseal_audit_errors_total", "Security events that could not be written to the audit log.")
	info := f.gaugeVec("pgseal_build_info", "pgseal's version; the value is always 1.", "version")
	info.WithLabelValues(c.version).Set(1)
	m.keys = newKeyCollector(c.now)
	m.reg.MustRegister(m.keys)
	if c.runtime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	// Label values known in advance appear at zero from the start, so that
	// rate() and alerts see a series before its first event.
	for _, o := range []string{"passed", "rewritten", "refused"} {
		m.statements.WithLabelValues("query", o)
	}
	for _, s := range []string{"policy", "keystore"} {
		for _, r := range []string{"success", "failure"} {
			m.reloads.WithLabelValues(s, r)
		}
	}
	return m
}

// Registry returns the registry holding every pgseal collector.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// factory registers each collector it makes.
type factory struct{ reg *prometheus.Registry }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

// SessionOpened implements proxy.Observer.
func (m *Metrics) SessionOpened(tlsVersion string) {
	if tlsVersion == "" {
		tlsVersion = "none"
	}
	m.sessionsOpen.Inc()
	m.sessions.WithLabelValues(tlsVersion).Inc()
}

// SessionClosed implements proxy.Observer.
func (m *Metrics) SessionClosed() { m.sessionsOpen.Dec() }

// AuthFailed implements proxy.Observer.
func (m *Metrics) AuthFailed(_, _, _ string) { m.authFailures.Inc() }

// TLSRefused implements proxy.Observer.
func (m *Metrics) TLSRefused(_, _ string) { m.tlsRefusals.Inc() }

// UpstreamConnectFailed implements proxy.Observer.
func (m *Metrics) UpstreamConnectFailed(string) { m.upstreamErrors.Inc() }

// Statement implements datapath.Observer.
func (m *Metrics) Statement(kind, outcome string) { m.statements.WithLabelValues(kind, outcome).Inc() }

// Refused implements datapath.Observer. Refusals are counted by Statement;
// this one is for the audit log.
func (m *Metrics) Refused(_, _, _ string) {}

// Encrypted implements datapath.Observer.
func (m *Metrics) Encrypted(n int) { m.encrypted.Add(float64(n)) }

// Decrypted implements datapath.Observer.
func (m *Metrics) Decrypted(n int) { m.decrypted.Add(float64(n)) }

// DecryptFailed implements datapath.Observer.
func (m *Metrics) DecryptFailed(column string) { m.decryptErrors.WithLabelValues(column).Inc() }

// Reloaded counts one load attempt of source ("policy" or "keystore")
// after start.
func (m *Metrics) Reloaded(source string, ok bool) {
	if !ok {
		m.reloads.WithLabelValues(source, "failure").Inc()
		return
	}
	m.reloads.WithLabelValues(source, "success").Inc()
	m.lastReload.WithLabelValues(source).Set(float64(m.now().UnixNano()) / 1e9)
}

// Loaded records a successful load of source at start: it sets the
// last-success time without counting a reload.
func (m *Metrics) Loaded(source string) {
	m.lastReload.WithLabelValues(source).Set(float64(m.now().UnixNano()) / 1e9)
}

// SetKeystore makes the key metrics describe ks (nil: none).
func (m *Metrics) SetKeystore(ks *keystore.Keystore) { m.keys.set(ks) }

// AuditFailed counts a security event that was not written.
func (m *Metrics) AuditFailed() { m.auditErrors.Inc() }

var (
	_ proxy.Observer    = (*Metrics)(nil)
	_ datapath.Observer = (*Metrics)(nil)
)
