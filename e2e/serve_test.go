package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgseal/pgseal/internal/certs"
	"github.com/pgseal/pgseal/internal/cli"
	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/keystore"
)

// served is `pgseal serve` as an operator runs it (cli.Serve, in process):
// TLS on both hops, a policy, a keystore with the key sets "pii" and
// "finance", a master-key file, a metrics listener and an audit log, all in
// files under dir. It stops when the test ends.
type served struct {
	pg        *pgcluster.Cluster
	dir       string
	policy    string // policy file
	keystore  string // keystore file
	masterKey string // master-key spec (file:...)
	mk        keystore.MasterKeySource
	auditLog  string
	caFile    string // CA of pgseal's client-facing certificate
	addr      string // where clients connect
	metrics   string // host:port of /metrics, /healthz, /readyz
	logs      *logLines

	cancel context.CancelFunc
	done   chan error
}

type serveOptions struct {
	pg       *pgcluster.Cluster // default: the shared cluster
	policy   string             // policy YAML
	ddl      []string           // run directly before pgseal starts
	logLevel string             // default info
	args     []string           // more serve flags
}

func startServe(tb testing.TB, o serveOptions) *served {
	tb.Helper()
	if o.pg == nil {
		o.pg = shared
	}
	if o.logLevel == "" {
		o.logLevel = "info"
	}
	ctx := testCtx(tb)
	dir := tb.TempDir()
	s := &served{pg: o.pg, dir: dir, policy: filepath.Join(dir, "policy.yaml"), keystore: filepath.Join(dir, "keystore.json"),
		auditLog: filepath.Join(dir, "audit.jsonl"), logs: newLogLines(), done: make(chan error, 1)}
	ca, err := certs.NewCA("pgseal e2e serve CA")
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{CommonName: "pgseal", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		tb.Fatal(err)
	}
	if s.caFile, _, err = ca.WriteFiles(dir, "ca"); err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile, err := leaf.WriteFiles(dir, "pgseal")
	if err != nil {
		tb.Fatal(err)
	}
	mkFile := filepath.Join(dir, "master.key")
	if err := keystore.GenerateMasterKeyFile(mkFile); err != nil {
		tb.Fatal(err)
	}
	s.masterKey = "file:" + mkFile
	if s.mk, err = keystore.ParseMasterKeySource(s.masterKey); err != nil {
		tb.Fatal(err)
	}
	if _, err := keystore.Create(ctx, s.keystore, s.mk); err != nil {
		tb.Fatal(err)
	}
	s.editKeys(tb, func(ed *keystore.Editor) error {
		for _, name := range []string{"pii", "finance"} {
			if _, err := ed.AddKeySet(ctx, name); err != nil {
				return err
			}
		}
		return nil
	})
	s.writePolicy(tb, o.policy)
	if len(o.ddl) > 0 {
		dc, err := o.pg.Connect(ctx, "postgres")
		if err != nil {
			tb.Fatal(err)
		}
		for _, d := range o.ddl {
			if _, err := dc.Exec(ctx, d); err != nil {
				tb.Fatalf("%s: %v", d, err)
			}
		}
		dc.Close(ctx)
	}
	args := append([]string{
		"--listen", "127.0.0.1:0",
		"--upstream", fmt.Sprintf("host=127.0.0.1 port=%d sslmode=verify-full sslrootcert=%s", o.pg.Port(), o.pg.CACertFile()),
		"--tls-cert", certFile, "--tls-key", keyFile,
		"--policy", s.policy, "--keystore", s.keystore, "--master-key", s.masterKey,
		"--metrics-listen", "127.0.0.1:0",
		"--audit-log", s.auditLog,
		"--log-level", o.logLevel, "--log-format", "json",
		"--reload-interval", "20ms",
		"--shutdown-timeout", "2s",
	}, o.args...)
	sctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	// serve belongs to the test: Cleanup cancels its context and waits.
	go func() { s.done <- cli.Serve(sctx, args, s.logs) }()
	tb.Cleanup(s.stop)
	ready := s.logs.waitFor(tb, s.done, func(l logLine) bool { return l.str("message") == "pgseal is ready" })
	s.addr, s.metrics = ready.str("listen"), ready.str("metrics")
	return s
}

// stop shuts pgseal down and waits for it; safe to call twice.
func (s *served) stop() {
	s.cancel()
	if s.done != nil {
		<-s.done
		s.done = nil
	}
}

// writePolicy replaces the policy file atomically, as an operator should.
func (s *served) writePolicy(tb testing.TB, text string) {
	tb.Helper()
	tmp := s.policy + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, s.policy); err != nil {
		tb.Fatal(err)
	}
}

// editKeys changes the keystore file as `pgseal keys` does.
func (s *served) editKeys(tb testing.TB, change func(*keystore.Editor) error) {
	tb.Helper()
	ctx := testCtx(tb)
	ed, err := keystore.Edit(ctx, s.keystore, s.mk)
	if err != nil {
		tb.Fatal(err)
	}
	if err := change(ed); err != nil {
		tb.Fatal(err)
	}
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}

// connString is a libpq conninfo through pgseal, TLS verified.
func (s *served) connString(user, password string) string {
	host, port, _ := net.SplitHostPort(s.addr)
	return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=verify-full sslrootcert=%s",
		host, port, user, password, s.caFile)
}

func (s *served) connect(tb testing.TB) *pgx.Conn {
	tb.Helper()
	c, err := pgx.Connect(testCtx(tb), s.connString(s.pg.SuperUser(), s.pg.Password()))
	if err != nil {
		tb.Fatalf("connect through pgseal: %v", err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// get fetches path from the metrics listener.
func (s *served) get(tb testing.TB, path string) (int, string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(testCtx(tb), http.MethodGet, "http://"+s.metrics+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrape parses /metrics.
func (s *served) scrape(tb testing.TB) map[string]*dto.MetricFamily {
	tb.Helper()
	code, body := s.get(tb, "/metrics")
	if code != http.StatusOK {
		tb.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue returns name{labels}'s value (a histogram's count), or -1.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// logLine is one JSON log line of pgseal.
type logLine map[string]any

func (l logLine) str(key string) string { s, _ := l[key].(string); return s }

// logLines collects pgseal's log and lets a test wait for a line.
type logLines struct {
	mu      sync.Mutex
	raw     bytes.Buffer
	lines   []logLine
	partial []byte
	changed chan struct{} // signalled after each Write
}

func newLogLines() *logLines { return &logLines{changed: make(chan struct{}, 1)} }

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.raw.Write(p)
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		var line logLine
		if json.Unmarshal(l.partial[:i], &line) == nil {
			l.lines = append(l.lines, line)
		}
		l.partial = l.partial[i+1:]
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return len(p), nil
}

// all returns a copy of the raw log.
func (l *logLines) all() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.raw.Bytes())
}

// count returns how many lines match.
func (l *logLines) count(match func(logLine) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if match(line) {
			n++
		}
	}
	return n
}

// waitFor waits until a line matches and returns it; it fails the test if
// serve ends (done) or a minute passes first.
func (l *logLines) waitFor(tb testing.TB, done chan error, match func(logLine) bool) logLine {
	tb.Helper()
	return l.waitForNth(tb, done, 1, match)
}

// waitForNth waits until n lines match and returns the nth.
func (l *logLines) waitForNth(tb testing.TB, done chan error, n int, match func(logLine) bool) logLine {
	tb.Helper()
	timeout := time.After(time.Minute)
	for {
		l.mu.Lock()
		seen := 0
		for _, line := range l.lines {
			if match(line) {
				seen++
				if seen == n {
					l.mu.Unlock()
					return line
				}
			}
		}
		l.mu.Unlock()
		select {
		case <-l.changed:
		case err := <-done:
			done <- err
			tb.Fatalf("pgseal serve ended: %v\n%s", err, l.all())
		case <-timeout:
			tb.Fatalf("no such log line after a minute\n%s", l.all())
		}
	}
}

// reloadLine matches the log line of a load of source for cause; failed
// selects failures instead of successes.
func reloadLine(source, cause string, failed bool) func(logLine) bool {
	return func(l logLine) bool {
		if l.str("source") != source || l.str("cause") != cause {
			return false
		}
		return failed == (l.str("level") == "error")
	}
}
