package deployfiles

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pgseal/pgseal/internal/cli"
	"github.com/pgseal/pgseal/internal/metrics"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
)

// root is the repository root, relative to this package.
const root = "../.."

func readYAML(tb testing.TB, path string, v any) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		tb.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

// compose is the part of the Compose specification the file uses; unknown
// keys fail the decode, so a typo does not pass silently.
type compose struct {
	Services map[string]service `yaml:"services"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image       string               `yaml:"image"`
	Build       *build               `yaml:"build"`
	DependsOn   yaml.Node            `yaml:"depends_on"`
	Environment map[string]string    `yaml:"environment"`
	Command     []string             `yaml:"command"`
	Volumes     []string             `yaml:"volumes"`
	Ports       []string             `yaml:"ports"`
	Healthcheck map[string]any       `yaml:"healthcheck"`
	Restart     string               `yaml:"restart"`
	Extra       map[string]yaml.Node `yaml:",inline"`
}

type build struct {
	Context string `yaml:"context"`
	Target  string `yaml:"target"`
}

// dependsOn returns the services a service waits for and the condition.
func (s service) dependsOn(tb testing.TB) map[string]string {
	tb.Helper()
	out := map[string]string{}
	switch s.DependsOn.Kind {
	case 0:
	case yaml.SequenceNode:
		for _, n := range s.DependsOn.Content {
			out[n.Value] = "service_started"
		}
	case yaml.MappingNode:
		var m map[string]struct {
			Condition string `yaml:"condition"`
		}
		if err := s.DependsOn.Decode(&m); err != nil {
			tb.Fatal(err)
		}
		for k, v := range m {
			out[k] = v.Condition
		}
	default:
		tb.Fatalf("depends_on: unexpected YAML kind %v", s.DependsOn.Kind)
	}
	return out
}

// flag returns the value of --name=value in args.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// serveFlags lists the flags `pgseal serve --help` documents.
func serveFlags(tb testing.TB) []string {
	tb.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main([]string{"serve", "--help"}, strings.NewReader(""), &out, &errb); code != 0 {
		tb.Fatalf("serve --help: exit %d: %s", code, errb.String())
	}
	var flags []string
	for _, m := range regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`).FindAllStringSubmatch(out.String(), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 15 {
		tb.Fatalf("found only %v in serve --help", flags)
	}
	return flags
}

func port(hostport string) string {
	_, p, _ := net.SplitHostPort(hostport)
	return p
}

func TestCompose(t *testing.T) {
	var c compose
	readYAML(t, "docker-compose.yml", &c)
	for _, name := range []string{"init", "postgres", "pgseal", "prometheus"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	for name, s := range c.Services {
		if len(s.Extra) > 0 {
			t.Errorf("service %s: keys this test does not know: %v", name, slices.Collect(mapKeys(s.Extra)))
		}
		for dep := range s.dependsOn(t) {
			if _, ok := c.Services[dep]; !ok {
				t.Errorf("service %s depends on unknown %s", name, dep)
			}
		}
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("service %s mounts undeclared volume %s", name, src)
			}
		}
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("service %s publishes %s beyond localhost", name, p)
			}
		}
	}

	ps := c.Services["pgseal"]
	if ps.Build == nil || ps.Build.Target != "runtime" || c.Services["init"].Build == nil || c.Services["init"].Build.Target != "init" {
		t.Errorf("pgseal must build the runtime stage and init the init stage")
	}
	deps := ps.dependsOn(t)
	if deps["init"] != "service_completed_successfully" || deps["postgres"] != "service_healthy" {
		t.Errorf("pgseal depends_on %v", deps)
	}
	if len(ps.Command) == 0 || ps.Command[0] != "serve" {
		t.Fatalf("pgseal command %v", ps.Command)
	}
	known := serveFlags(t)
	for _, a := range ps.Command[1:] {
		name, _, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !ok || !slices.Contains(known, name) {
			t.Errorf("pgseal: %q is not a --flag=value serve knows", a)
		}
	}
	up, _ := flag(ps.Command, "upstream")
	if !strings.Contains(up, "host=postgres") || !strings.Contains(up, "sslmode=verify-full") || strings.Contains(up, "password") {
		t.Errorf("upstream %q: want host=postgres with sslmode=verify-full and no password", up)
	}
	for _, f := range []string{"tls-cert", "tls-key", "keystore", "audit-log"} {
		if v, _ := flag(ps.Command, f); !strings.HasPrefix(v, "/state/") {
			t.Errorf("--%s=%s is not on the state volume", f, v)
		}
	}
	metricsAddr, ok := flag(ps.Command, "metrics-listen")
	if !ok {
		t.Fatal("pgseal runs without --metrics-listen")
	}
	mport := port(metricsAddr)
	if !slices.Contains(ps.Ports, "127.0.0.1:"+mport+":"+mport) || !slices.Contains(ps.Ports, "127.0.0.1:6432:6432") {
		t.Errorf("pgseal ports %v, want 6432 and %s", ps.Ports, mport)
	}
	var prom promConfig
	readYAML(t, "examples/prometheus.yml", &prom)
	if len(prom.ScrapeConfigs) != 1 || !slices.Contains(prom.ScrapeConfigs[0].StaticConfigs[0].Targets, "pgseal:"+mport) {
		t.Errorf("prometheus does not scrape pgseal:%s: %+v", mport, prom.ScrapeConfigs)
	}
	if !slices.Contains(prom.RuleFiles, "alerts.yml") {
		t.Errorf("prometheus rule_files %v", prom.RuleFiles)
	}
	pgCmd := strings.Join(c.Services["postgres"].Command, " ")
	for _, want := range []string{"ssl=on", "ssl_cert_file=/state/certs/postgres.crt", "ssl_key_file=/state/certs/postgres.key"} {
		if !strings.Contains(pgCmd, want) {
			t.Errorf("postgres command lacks %s", want)
		}
	}

	// The policy pgseal loads names only key sets init.sh creates.
	pol, err := policy.Load(filepath.Join(root, "examples/policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sets := initKeySets(t)
	for _, s := range pol.KeySets() {
		if !slices.Contains(sets, s) {
			t.Errorf("policy key set %s is not created by init.sh (%v)", s, sets)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// initKeySets reads the key sets init.sh adds.
func initKeySets(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open(filepath.Join(root, "examples/compose/init.sh"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "for set in "); ok {
			rest, _, _ = strings.Cut(rest, ";")
			return strings.Fields(rest)
		}
	}
	tb.Fatal("init.sh adds no key sets")
	return nil
}

type promConfig struct {
	Global        map[string]string `yaml:"global"`
	RuleFiles     []string          `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var stages []string // "image AS name"
	var lastUser, lastEntrypoint string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			stages = append(stages, strings.Join(f[1:], " "))
			lastUser, lastEntrypoint = "", ""
		case "USER":
			lastUser = f[1]
		case "ENTRYPOINT":
			lastEntrypoint = strings.Join(f[1:], " ")
		case "COPY":
			if src := f[len(f)-2]; !strings.HasPrefix(f[1], "--from") && src != "." && !strings.Contains(src, "*") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("COPY %s: %v", src, err)
				}
			}
		}
	}
	want := []string{"golang:1.26-bookworm AS build", "debian:bookworm-slim AS init", "gcr.io/distroless/cc-debian12:nonroot AS runtime"}
	if !slices.Equal(stages, want) {
		t.Errorf("stages %q, want %q (Debian 12 throughout, so glibc matches; runtime last, the default target)", stages, want)
	}
	if lastUser == "" || strings.HasPrefix(lastUser, "0") || strings.HasPrefix(lastUser, "root") {
		t.Errorf("runtime user %q: want non-root", lastUser)
	}
	if !strings.Contains(lastEntrypoint, "/usr/local/bin/pgseal") {
		t.Errorf("runtime entrypoint %q", lastEntrypoint)
	}
	if !strings.Contains(string(data), "CGO_ENABLED=1") {
		t.Error("the build must enable cgo (pg_query_go)")
	}
}

// TestAlertsUseRealMetrics: every pgseal_* series an alert reads is one
// that pgseal exports.
func TestAlertsUseRealMetrics(t *testing.T) {
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, "examples/alerts.yml", &rules)
	m := metrics.New()
	// Every collector reports once, so that every family is gathered.
	m.SessionOpened("TLS 1.3")
	m.AuthFailed("", "", "")
	m.TLSRefused("", "")
	m.UpstreamConnectFailed("")
	m.Statement("query", "refused")
	m.Encrypted(1)
	m.Decrypted(1)
	m.DecryptFailed("c")
	m.Reloaded("policy", true)
	m.AuditFailed()
	m.SetKeystore(testKeystore(t))
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range fams {
		exported[f.GetName()] = true
	}
	name := regexp.MustCompile(`pgseal_[a-z_]+`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
			}
			for _, s := range name.FindAllString(r.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "_bucket"), "_count"), "_sum")
				if !exported[base] {
					t.Errorf("alert %s uses %s, which pgseal does not export", r.Alert, s)
				}
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d rules", n)
	}
}

func testKeystore(tb testing.TB) *keystore.Keystore {
	tb.Helper()
	ctx := tb.Context()
	mk, _ := keystore.NewStaticMasterKey(make([]byte, 32))
	path := filepath.Join(tb.TempDir(), "ks.json")
	if _, err := keystore.Create(ctx, path, mk); err != nil {
		tb.Fatal(err)
	}
	ed, err := keystore.Edit(ctx, path, mk)
	if err != nil {
		tb.Fatal(err)
	}
	ed.AddKeySet(ctx, "pii")
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	ks, err := keystore.Open(ctx, path, mk)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

// TestInitScriptCertificates runs examples/compose/init.sh (without the
// keystore part) and checks that the certificates verify for the names the
// services use, and that the keys are private.
func TestInitScriptCertificates(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	state := t.TempDir()
	uid := strconv.Itoa(os.Getuid())
	for range 2 { // idempotent
		cmd := exec.Command("sh", filepath.Join(root, "examples/compose/init.sh"))
		cmd.Env = append(os.Environ(), "STATE="+state, "PGSEAL=true", "PG_UID="+uid, "PGSEAL_UID="+uid)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("init.sh: %v\n%s", err, out)
		}
	}
	dir := filepath.Join(state, "certs")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(must(os.ReadFile(filepath.Join(dir, "ca.crt")))) {
		t.Fatal("ca.crt holds no certificate")
	}
	for _, c := range []struct{ file, name string }{
		{"postgres.crt", "postgres"}, {"pgseal.crt", "pgseal"}, {"pgseal.crt", "localhost"}, {"pgseal.crt", "127.0.0.1"},
	} {
		block, _ := pem.Decode(must(os.ReadFile(filepath.Join(dir, c.file))))
		if block == nil {
			t.Fatalf("%s: no PEM", c.file)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s for %s: %v", c.file, c.name, err)
		}
	}
	for _, k := range []string{"ca.key", "postgres.key", "pgseal.key"} {
		fi, err := os.Stat(filepath.Join(dir, k))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", k, fi.Mode().Perm(), err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
