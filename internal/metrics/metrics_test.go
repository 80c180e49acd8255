package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

// value returns the value of the series name{labels} (counter, gauge, or a
// histogram's sample count), or -1 when there is no such series.
func value(tb testing.TB, m *Metrics, name string, labels ...string) float64 {
	tb.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if !hasLabels(s, labels) {
				continue
			}
			switch {
			case s.Counter != nil:
				return s.Counter.GetValue()
			case s.Gauge != nil:
				return s.Gauge.GetValue()
			case s.Histogram != nil:
				return float64(s.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func hasLabels(s *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestObserverCounters(t *testing.T) {
	tests := []struct {
		name   string
		do     func(m *Metrics)
		metric string
		labels []string
		want   float64
	}{
		{"session opened", func(m *Metrics) { m.SessionOpened("TLS 1.3"); m.SessionOpened("TLS 1.3") }, "pgseal_sessions_total", []string{"tls_version", "TLS 1.3"}, 2},
		{"plaintext session", func(m *Metrics) { m.SessionOpened("") }, "pgseal_sessions_total", []string{"tls_version", "none"}, 1},
		{"open sessions", func(m *Metrics) { m.SessionOpened("TLS 1.2"); m.SessionOpened("TLS 1.2"); m.SessionClosed() }, "pgseal_sessions_open", nil, 1},
		{"auth failure", func(m *Metrics) { m.AuthFailed("u", "1.2.3.4:5", "x") }, "pgseal_auth_failures_total", nil, 1},
		{"tls refusal", func(m *Metrics) { m.TLSRefused("1.2.3.4:5", "x") }, "pgseal_tls_refusals_total", nil, 1},
		{"upstream error", func(m *Metrics) { m.UpstreamConnectFailed("x") }, "pgseal_upstream_connect_errors_total", nil, 1},
		{"statement", func(m *Metrics) { m.Statement("query", "rewritten") }, "pgseal_statements_total", []string{"kind", "query", "outcome", "rewritten"}, 1},
		{"statement series exist before use", func(m *Metrics) {}, "pgseal_statements_total", []string{"outcome", "refused"}, 0},
		{"encrypted", func(m *Metrics) { m.Encrypted(3); m.Encrypted(1) }, "pgseal_values_encrypted_total", nil, 4},
		{"decrypted", func(m *Metrics) { m.Decrypted(5) }, "pgseal_values_decrypted_total", nil, 5},
		{"decrypt error", func(m *Metrics) { m.DecryptFailed("public.t.c") }, "pgseal_decrypt_errors_total", []string{"column", "public.t.c"}, 1},
		{"reload ok", func(m *Metrics) { m.Reloaded("policy", true) }, "pgseal_reloads_total", []string{"source", "policy", "result", "success"}, 1},
		{"reload failed", func(m *Metrics) { m.Reloaded("keystore", false) }, "pgseal_reloads_total", []string{"source", "keystore", "result", "failure"}, 1},
		{"reload time", func(m *Metrics) { m.Reloaded("policy", true) }, "pgseal_reload_last_success_timestamp_seconds", []string{"source", "policy"}, 1e9},
		{"start time", func(m *Metrics) { m.Loaded("keystore") }, "pgseal_reload_last_success_timestamp_seconds", []string{"source", "keystore"}, 1e9},
		{"audit failure", func(m *Metrics) { m.AuditFailed() }, "pgseal_audit_errors_total", nil, 1},
		{"build info", func(m *Metrics) {}, "pgseal_build_info", []string{"version", "v9"}, 1},
		{"no keystore", func(m *Metrics) {}, "pgseal_keystore_loaded", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(WithoutRuntime(), WithVersion("v9"), WithClock(func() time.Time { return time.Unix(1e9, 0) }))
			tt.do(m)
			if got := value(t, m, tt.metric, tt.labels...); got != tt.want {
				t.Fatalf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
}

func TestRuntimeCollectors(t *testing.T) {
	if v := value(t, New(), "go_goroutines"); v <= 0 {
		t.Fatalf("go_goroutines = %v", v)
	}
}

func TestKeyMetrics(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return created }
	mk, err := keystore.NewStaticMasterKey(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ks.json")
	if _, err := keystore.Create(ctx, path, mk, keystore.WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	ed, err := keystore.Edit(ctx, path, mk, keystore.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	ed.AddKeySet(ctx, "pii")
	ed.AddKeySet(ctx, "finance")
	created = created.Add(24 * time.Hour)
	ed.Rotate(ctx, "pii")
	if err := ed.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(ctx, path, mk)
	if err != nil {
		t.Fatal(err)
	}
	now := created.Add(10 * 24 * time.Hour)
	m := New(WithoutRuntime(), WithClock(func() time.Time { return now }))
	m.SetKeystore(ks)
	for _, c := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"pgseal_keystore_loaded", nil, 1},
		{"pgseal_key_primary_age_seconds", []string{"key_set", "pii"}, 10 * 86400},
		{"pgseal_key_primary_age_seconds", []string{"key_set", "finance"}, 11 * 86400},
		{"pgseal_key_primary_version", []string{"key_set", "pii"}, 2},
		{"pgseal_key_versions", []string{"key_set", "pii", "state", "active"}, 1},
		{"pgseal_key_versions", []string{"key_set", "pii", "state", "primary"}, 1},
		{"pgseal_key_versions", []string{"key_set", "finance", "state", "disabled"}, 0},
	} {
		if got := value(t, m, c.metric, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
	m.SetKeystore(nil)
	if got := value(t, m, "pgseal_key_primary_version", "key_set", "pii"); got != -1 {
		t.Errorf("key metrics remain after SetKeystore(nil)")
	}
}

func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHandler(t *testing.T) {
	m := New(WithoutRuntime())
	m.Statement("query", "passed")
	var upstream error
	srv := httptest.NewServer(m.Handler(
		Check{Name: "snapshot", Func: func(context.Context) error { return nil }},
		Check{Name: "upstream", Func: func(context.Context) error { return upstream }},
	))
	defer srv.Close()
	tests := []struct {
		name     string
		path     string
		upstream error
		code     int
		contains string
	}{
		{"healthz", "/healthz", nil, 200, "ok"},
		{"metrics", "/metrics", nil, 200, `pgseal_statements_total{kind="query",outcome="passed"} 1`},
		{"ready", "/readyz", nil, 200, "upstream: ok"},
		{"unready", "/readyz", errors.New("failed to connect\nrefused"), 503, "upstream: failed to connect; refused"},
		{"unready keeps healthz", "/healthz", errors.New("down"), 200, "ok"},
		{"unknown path", "/nope", nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream = tt.upstream
			code, body := get(t, srv.URL+tt.path)
			if code != tt.code || !strings.Contains(body, tt.contains) {
				t.Fatalf("GET %s: %d %q", tt.path, code, body)
			}
		})
	}
}

func TestServeStopsWithContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	// Serve belongs to the test; cancel ends it.
	go func() { errc <- Serve(ctx, l, New(WithoutRuntime()).Handler()) }()
	if code, _ := get(t, "http://"+l.Addr().String()+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// fakeFilter swallows the ReadyForQuery of an injected query (the first
// one it sees) as the data path does, and passes the rest.
type fakeFilter struct{ swallowed bool }

func (f *fakeFilter) Client(_ byte, frame []byte, up proxy.Writer) error {
	_, err := up.Write(frame)
	return err
}

func (f *fakeFilter) Server(typ byte, frame []byte, down proxy.Writer) error {
	if typ == 'Z' && !f.swallowed {
		f.swallowed = true
		return nil
	}
	_, err := down.Write(frame)
	return err
}

func (f *fakeFilter) Close() {}

type fakeDataPath struct{}

func (fakeDataPath) NewSession(proxy.SessionInfo) proxy.SessionFilter { return &fakeFilter{} }

type discard struct{ n int }

func (d *discard) Write(b []byte) (int, error) { d.n++; return len(b), nil }

func TestRoundTripTiming(t *testing.T) {
	z := []byte{'Z', 0, 0, 0, 5, 'I'}
	q := []byte{'Q', 0, 0, 0, 5, 0}
	tests := []struct {
		name  string
		inner proxy.DataPath
		// client and server message types, in the order they happen
		script string
		want   float64
	}{
		{"no data path", nil, "cQsZ", 1},
		{"pipelined syncs", nil, "cScScSsZsZsZ", 3},
		{"injected query not counted", fakeDataPath{}, "cQsZsZ", 1},
		{"unsolicited ready", nil, "sZ", 0},
		{"parse and flush only", nil, "cPcH", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(WithoutRuntime())
			f := m.DataPath(tt.inner).NewSession(proxy.SessionInfo{})
			defer f.Close()
			var up, down discard
			for i := 0; i+1 < len(tt.script); i += 2 {
				typ := tt.script[i+1]
				frame := append([]byte{typ}, q[1:]...)
				if typ == 'Z' {
					frame = z
				}
				var err error
				if tt.script[i] == 'c' {
					err = f.Client(typ, frame, &up)
				} else {
					err = f.Server(typ, frame, &down)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if got := value(t, m, "pgseal_statement_duration_seconds"); got != tt.want {
				t.Fatalf("timed %v round trips, want %v", got, tt.want)
			}
		})
	}
}

// catalogAnalyzer counts WithCatalog calls.
type catalogAnalyzer struct{ datapath.Analyzer }

func (c catalogAnalyzer) WithCatalog(rewrite.Catalog) datapath.Analyzer { return c.Analyzer }

type nopAnalyzer struct{}

func (nopAnalyzer) Analyze(string, []string, func(string) (any, bool), datapath.Encrypter) datapath.Analysis {
	return datapath.Analysis{Passthrough: true}
}

func TestAnalyzerTiming(t *testing.T) {
	m := New(WithoutRuntime())
	a := m.Analyzer(catalogAnalyzer{nopAnalyzer{}})
	ca, ok := a.(datapath.CatalogAnalyzer)
	if !ok {
		t.Fatal("the wrapper hides WithCatalog")
	}
	a.Analyze("SELECT 1", nil, nil, nil)
	ca.WithCatalog(nil).Analyze("SELECT 2", nil, nil, nil)
	if got := value(t, m, "pgseal_statement_analysis_seconds"); got != 2 {
		t.Fatalf("timed %v analyses, want 2", got)
	}
	if _, ok := m.Analyzer(nopAnalyzer{}).(datapath.CatalogAnalyzer); ok {
		t.Fatal("the wrapper invented WithCatalog")
	}
}

// TestRoundTripPipelineBound: past maxPending open round trips, the extra
// ones are not timed, and timing resumes in step once they are answered.
func TestRoundTripPipelineBound(t *testing.T) {
	m := New(WithoutRuntime())
	f := m.DataPath(nil).NewSession(proxy.SessionInfo{})
	s := []byte{'S', 0, 0, 0, 4}
	z := []byte{'Z', 0, 0, 0, 5, 'I'}
	var up, down discard
	for range maxPending + 10 {
		f.Client('S', s, &up)
	}
	for range maxPending + 10 {
		f.Server('Z', z, &down)
	}
	if got := value(t, m, "pgseal_statement_duration_seconds"); got != maxPending {
		t.Fatalf("timed %v, want %d", got, maxPending)
	}
	f.Client('S', s, &up)
	f.Server('Z', z, &down)
	if got := value(t, m, "pgseal_statement_duration_seconds"); got != maxPending+1 {
		t.Fatalf("timed %v after the pipeline drained, want %d", got, maxPending+1)
	}
}
