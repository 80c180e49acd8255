package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/pgseal/pgseal/proxy"
)

// serveConfig is everything `pgseal serve` reads from flags, environment and
// the config file.
type serveConfig struct {
	Listen          string
	Upstream        string
	TLSCert         string
	TLSKey          string
	TLSClientCA     string
	TLSRequire      bool
	TLSMinVersion   string
	LogLevel        string
	LogFormat       string
	AuthMode        string
	MaxMessageSize  int
	ShutdownTimeout time.Duration
	Policy          string
	KeystorePath    string
	MasterKey       string
	MetricsListen   string
	AuditLog        string
	ReloadInterval  time.Duration
}

// serveKeys maps configuration keys to flag names; the environment variable
// is PGSEAL_ + the key upper-cased with dots as underscores.
var serveKeys = map[string]string{
	"listen":              "listen",
	"upstream":            "upstream",
	"tls.cert":            "tls-cert",
	"tls.key":             "tls-key",
	"tls.client_ca":       "tls-client-ca",
	"tls.require":         "tls-require",
	"tls.min_version":     "tls-min-version",
	"log.level":           "log-level",
	"log.format":          "log-format",
	"auth.mode":           "auth-mode",
	"max_message_size":    "max-message-size",
	"shutdown_timeout":    "shutdown-timeout",
	"policy":              "policy",
	"keystore.path":       "keystore",
	"keystore.master_key": "master-key",
	"metrics.listen":      "metrics-listen",
	"audit.path":          "audit-log",
	"reload.interval":     "reload-interval",
}

func addServeFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("config", "", "YAML configuration file")
	f.String("listen", "127.0.0.1:6432", "address to accept clients on")
	f.String("upstream", "", "PostgreSQL to connect to, as libpq key=value pairs without user or password (sslmode defaults to verify-full)")
	f.String("tls-cert", "", "certificate presented to clients (PEM)")
	f.String("tls-key", "", "private key of --tls-cert (PEM, mode 0600)")
	f.String("tls-client-ca", "", "when set, clients must present a certificate signed by this CA")
	f.Bool("tls-require", true, "refuse clients that do not use TLS")
	f.String("tls-min-version", "1.2", "lowest TLS version accepted from clients (1.2 or 1.3)")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("log-format", "json", "json or console")
	f.String("auth-mode", "auto", "how client credentials reach PostgreSQL: auto, relay or password")
	f.Int("max-message-size", proxy.DefaultMaxMessageSize, "largest protocol message accepted from either peer, in bytes")
	f.Duration("shutdown-timeout", 30*time.Second, "on SIGTERM, how long sessions may run before they are closed")
	f.String("policy", "", "policy YAML naming the encrypted columns (without it pgseal only proxies)")
	f.String("keystore", "", "keystore file")
	f.String("master-key", "", "master-key source: file:PATH, env:VAR or passphrase")
	f.String("metrics-listen", "", "address of the HTTP listener for /metrics, /healthz and /readyz (off when empty)")
	f.String("audit-log", "", "security audit log (JSON lines, HMAC-chained with the keystore's audit key; off when empty)")
	f.Duration("reload-interval", 2*time.Second, "how often the policy and keystore files are checked for changes (0: only on SIGHUP)")
}

// loadServeConfig reads the configuration with one viper instance.
func loadServeConfig(cmd *cobra.Command) (*serveConfig, error) {
	v, err := commandViper(cmd, serveKeys)
	if err != nil {
		return nil, err
	}
	c := &serveConfig{
		Listen:          v.GetString("listen"),
		Upstream:        v.GetString("upstream"),
		TLSCert:         v.GetString("tls.cert"),
		TLSKey:          v.GetString("tls.key"),
		TLSClientCA:     v.GetString("tls.client_ca"),
		TLSRequire:      v.GetBool("tls.require"),
		TLSMinVersion:   v.GetString("tls.min_version"),
		LogLevel:        v.GetString("log.level"),
		LogFormat:       v.GetString("log.format"),
		AuthMode:        v.GetString("auth.mode"),
		MaxMessageSize:  v.GetInt("max_message_size"),
		ShutdownTimeout: v.GetDuration("shutdown_timeout"),
		Policy:          v.GetString("policy"),
		KeystorePath:    v.GetString("keystore.path"),
		MasterKey:       v.GetString("keystore.master_key"),
		MetricsListen:   v.GetString("metrics.listen"),
		AuditLog:        v.GetString("audit.path"),
		ReloadInterval:  v.GetDuration("reload.interval"),
	}
	if c.Upstream == "" {
		return nil, withCode(ExitConfig, errors.New("upstream is required (--upstream or PGSEAL_UPSTREAM)"))
	}
	return c, nil
}

// commandViper returns a viper for one command: defaults from the flags, a
// --config YAML file, PGSEAL_* environment variables, then explicit flags.
func commandViper(cmd *cobra.Command, keys map[string]string) (*viper.Viper, error) {
	v := viper.New()
	v.SetEnvPrefix("PGSEAL")
	v.SetEnvKeyReplacer(envReplacer)
	v.AutomaticEnv()
	for key, flag := range keys {
		if f := cmd.Flags().Lookup(flag); f != nil {
			if err := v.BindPFlag(key, f); err != nil {
				return nil, err
			}
		}
	}
	if f := cmd.Flags().Lookup("config"); f != nil && f.Value.String() != "" {
		v.SetConfigFile(f.Value.String())
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, withCode(ExitConfig, fmt.Errorf("failed to read config: %w", err))
		}
	}
	return v, nil
}

func newServeCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the proxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadServeConfig(cmd)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, s, cfg, nil)
		},
	}
	addServeFlags(cmd)
	return cmd
}

// Serve runs `pgseal serve` with args (flags as on the command line) until
// ctx ends, then shuts down as on SIGTERM. The log goes to logw. It is for
// tests and programs that embed pgseal; like the command, it reloads on
// SIGHUP while it runs.
func Serve(ctx context.Context, args []string, logw io.Writer) error {
	cmd := newServeCmd(streams{in: strings.NewReader(""), out: io.Discard, err: logw})
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(logw)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	return cmd.ExecuteContext(ctx)
}

// runServe starts the proxy and blocks until ctx is done, then shuts down.
// ready, when not nil, receives the listening address once clients can
// connect.
func runServe(ctx context.Context, s streams, cfg *serveConfig, ready func(addr net.Addr)) error {
	log, err := newLogger(s.err, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	up, err := proxy.ParseUpstream(cfg.Upstream)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	mode, err := proxy.ParseAuthMode(cfg.AuthMode)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	opts := []proxy.Option{
		proxy.WithLogger(log),
		proxy.WithTLSRequired(cfg.TLSRequire),
		proxy.WithAuthMode(mode),
		proxy.WithMaxMessageSize(cfg.MaxMessageSize),
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		tc, err := clientTLSConfig(cfg)
		if err != nil {
			return withCode(ExitConfig, err)
		}
		opts = append(opts, proxy.WithClientTLS(tc))
	} else if cfg.TLSRequire {
		return withCode(ExitConfig, errors.New("tls.cert and tls.key are required while tls.require is on"))
	}
	ops, err := startOps(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer ops.close()
	opts = append(opts, ops.proxyOptions()...)
	if ops.reloader == nil {
		log.Warn().Msg("no policy configured: pgseal forwards everything unencrypted")
	}
	srv := proxy.New(up, opts...)
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", cfg.Listen, err)
	}
	mAddr, err := ops.serveMetrics(ctx, up)
	if err != nil {
		l.Close()
		return err
	}
	ev := log.Info().Str("listen", l.Addr().String()).Str("upstream", up.String())
	if mAddr != "" {
		ev = ev.Str("metrics", mAddr)
	}
	ev.Msg("pgseal is ready")
	ops.started(l.Addr().String(), up.String())
	if ready != nil {
		ready(l.Addr())
	}
	errc := make(chan error, 1)
	// The accept loop is owned by runServe; Shutdown below ends it.
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	ops.draining.Store(true)
	log.Info().Dur("timeout", cfg.ShutdownTimeout).Msg("shutting down: no new sessions")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn().Msg("shutdown deadline passed: remaining sessions closed")
	}
	<-errc
	return nil
}

// clientTLSConfig builds the TLS configuration presented to clients.
func clientTLSConfig(cfg *serveConfig) (*tls.Config, error) {
	if err := checkKeyFileMode(cfg.TLSKey); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("failed to load TLS certificate: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}}
	switch cfg.TLSMinVersion {
	case "", "1.2":
		tc.MinVersion = tls.VersionTLS12
	case "1.3":
		tc.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("invalid tls.min_version %q (want 1.2 or 1.3)", cfg.TLSMinVersion)
	}
	if cfg.TLSClientCA != "" {
		pem, err := os.ReadFile(cfg.TLSClientCA)
		if err != nil {
			return nil, fmt.Errorf("failed to read tls.client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca %s holds no PEM certificate", cfg.TLSClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// checkKeyFileMode refuses a private-key file that group or others can read.
func checkKeyFileMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("failed to read key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("key file %s is accessible by group or others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}
