package pgcluster

import (
	"errors"
	"fmt"
)

// ErrBadOption is returned by Start for a setting or superuser name it
// cannot write into the configuration safely.
var ErrBadOption = errors.New("pgcluster: invalid option")

// Option configures Start.
type Option func(*config)

type config struct {
	binDir    string
	baseDir   string
	superUser string
	settings  []setting
	hba       []string
}

type setting struct{ name, value string }

func defaultConfig() config {
	return config{superUser: "postgres"}
}

// WithSetting sets a server configuration parameter in postgresql.conf,
// overriding pgcluster's defaults. value is written as a quoted string, which
// PostgreSQL accepts for every parameter type.
func WithSetting(name, value string) Option {
	return func(c *config) { c.settings = append(c.settings, setting{name, value}) }
}

// WithSuperUser names the bootstrap superuser ("postgres" by default).
func WithSuperUser(name string) Option {
	return func(c *config) { c.superUser = name }
}

// WithBinDir uses the PostgreSQL programs in dir instead of the highest
// version under /usr/lib/postgresql.
func WithBinDir(dir string) Option {
	return func(c *config) { c.binDir = dir }
}

// WithBaseDir creates the cluster directory under dir instead of
// os.TempDir(). When running as root, the postgres OS user must be able to
// traverse dir.
func WithBaseDir(dir string) Option {
	return func(c *config) { c.baseDir = dir }
}

// WithHBA adds lines to pg_hba.conf ahead of the default rules, so they take
// precedence over them. Lines added by (*Cluster).CreateRole go after these.
func WithHBA(lines ...string) Option {
	return func(c *config) { c.hba = append(c.hba, lines...) }
}

// defaultSettings favour start-up time and throughput over durability and
// keep the server from touching anything outside its directory.
func defaultSettings(c *Cluster) []setting {
	return []setting{
		{"listen_addresses", c.host},
		{"unix_socket_directories", c.sockDir},
		{"ssl", "on"},
		{"ssl_cert_file", c.serverCertFile},
		{"ssl_key_file", c.serverKeyFile},
		{"password_encryption", "scram-sha-256"},
		{"fsync", "off"},
		{"synchronous_commit", "off"},
		{"full_page_writes", "off"},
		{"wal_level", "minimal"},
		{"max_wal_senders", "0"},
		{"autovacuum", "off"},
		{"jit", "off"},
		{"shared_buffers", "32MB"},
		{"logging_collector", "off"},
	}
}

// quoteSetting renders a postgresql.conf value as a single-quoted string.
func quoteSetting(v string) string {
	out := []byte{'\''}
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			out = append(out, v[i])
		}
		out = append(out, v[i])
	}
	return string(append(out, '\''))
}

func renderSettings(settings []setting) (string, error) {
	var b []byte
	b = append(b, "\n# Added by pgseal internal/pgcluster.\n"...)
	for _, s := range settings {
		if !validSettingName(s.name) {
			return "", fmt.Errorf("%w: setting name %q", ErrBadOption, s.name)
		}
		for i := 0; i < len(s.value); i++ {
			if s.value[i] == '\n' || s.value[i] == '\r' || s.value[i] == 0 {
				return "", fmt.Errorf("%w: value of %s contains a line break or NUL", ErrBadOption, s.name)
			}
		}
		b = fmt.Appendf(b, "%s = %s\n", s.name, quoteSetting(s.value))
	}
	return string(b), nil
}

func validSettingName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
