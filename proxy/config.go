package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"
)

// DefaultMaxMessageSize bounds a single protocol message body from either
// peer. PostgreSQL itself accepts up to 1 GiB for a field; 256 MiB covers any
// sane row while keeping a hostile peer from making pgseal allocate without
// limit.
const DefaultMaxMessageSize = 256 << 20

// AuthMode says how the proxy carries a client's credentials to PostgreSQL.
type AuthMode int

const (
	// AuthAuto uses AuthPassword for clients on TLS and AuthRelay for the
	// others (which cannot have asked for channel binding).
	AuthAuto AuthMode = iota
	// AuthRelay relays the server's authentication exchange to the client
	// unchanged, except that SCRAM-SHA-256-PLUS is withdrawn from the offer.
	// A TLS client that announces channel-binding support ("y" in its SCRAM
	// header, libpq's default) cannot authenticate this way: PostgreSQL's
	// downgrade protection refuses it, and pgseal says so.
	AuthRelay
	// AuthPassword asks the client for its password over TLS and performs
	// the server's method (SCRAM-SHA-256, with channel binding on the
	// upstream hop when offered, MD5 or cleartext) itself. The password is
	// kept only for the duration of the exchange.
	AuthPassword
)

// ParseAuthMode maps "auto", "relay" and "password" to an AuthMode.
func ParseAuthMode(s string) (AuthMode, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return AuthAuto, nil
	case "relay":
		return AuthRelay, nil
	case "password":
		return AuthPassword, nil
	}
	return 0, fmt.Errorf("unknown auth mode %q (want auto, relay or password)", s)
}

// Upstream says where PostgreSQL is and how to reach it.
type Upstream struct {
	targets []upstreamTarget
	timeout time.Duration
	display string
}

type upstreamTarget struct {
	host   string
	port   uint16
	tls    *tls.Config // nil: no TLS
	direct bool        // sslnegotiation=direct
}

// ErrUpstreamCredentials is returned when the upstream conninfo names a user
// or password: clients authenticate themselves.
var ErrUpstreamCredentials = errors.New("upstream must not name user or password: clients authenticate themselves")

// ParseUpstream parses libpq keyword/value pairs or a postgres:// URL naming
// the database server. sslmode defaults to verify-full.
func ParseUpstream(conninfo string) (*Upstream, error) {
	s := strings.TrimSpace(conninfo)
	isURL := strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
	if !strings.Contains(s, "sslmode") {
		switch {
		case isURL && strings.Contains(s, "?"):
			s += "&sslmode=verify-full"
		case isURL:
			s += "?sslmode=verify-full"
		default:
			s += " sslmode=verify-full"
		}
	}
	cfg, err := pgconn.ParseConfig(s)
	if err != nil {
		return nil, fmt.Errorf("failed to parse upstream: %w", err)
	}
	if hasKey(s, "password") || hasKey(s, "user") {
		return nil, ErrUpstreamCredentials
	}
	u := &Upstream{timeout: cfg.ConnectTimeout}
	if u.timeout == 0 {
		u.timeout = 10 * time.Second
	}
	add := func(host string, port uint16, t *tls.Config) {
		u.targets = append(u.targets, upstreamTarget{host: host, port: port, tls: t, direct: cfg.SSLNegotiation == "direct"})
	}
	add(cfg.Host, cfg.Port, cfg.TLSConfig)
	for _, fb := range cfg.Fallbacks {
		add(fb.Host, fb.Port, fb.TLSConfig)
	}
	u.display = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	return u, nil
}

// String names the upstream for logs.
func (u *Upstream) String() string { return u.display }

func hasKey(s, key string) bool {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		rest := s[strings.Index(s, "//")+2:]
		if at := strings.Index(rest, "@"); at >= 0 && at < strings.IndexAny(rest+"/", "/?") {
			return true
		}
		return strings.Contains(s, "?"+key+"=") || strings.Contains(s, "&"+key+"=")
	}
	for _, f := range strings.Fields(s) {
		if k, _, ok := strings.Cut(f, "="); ok && strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}

// Option configures a Server.
type Option func(*Server)

// WithClientTLS sets the TLS configuration presented to clients. Without it
// the proxy answers SSLRequest with 'N'.
func WithClientTLS(c *tls.Config) Option { return func(s *Server) { s.clientTLS = c } }

// WithTLSRequired refuses clients that do not negotiate TLS (default true).
func WithTLSRequired(v bool) Option { return func(s *Server) { s.tlsRequired = v } }

// WithLogger sets the logger. The default discards everything.
func WithLogger(l zerolog.Logger) Option { return func(s *Server) { s.log = l } }

// WithMaxMessageSize bounds a protocol message body from either peer.
func WithMaxMessageSize(n int) Option { return func(s *Server) { s.maxMsg = n } }

// WithAuthMode sets how credentials reach PostgreSQL (default AuthAuto).
func WithAuthMode(m AuthMode) Option { return func(s *Server) { s.authMode = m } }

// WithDataPath installs the encryption data path. Without it the proxy
// forwards every message unchanged.
func WithDataPath(d DataPath) Option { return func(s *Server) { s.dataPath = d } }

// WithObserver installs a hook for metrics and audit events.
func WithObserver(o Observer) Option { return func(s *Server) { s.obs = o } }
