package pgcluster

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/internal/certs"
)

// ErrClosed is returned by methods called after (*Cluster).Close.
var ErrClosed = errors.New("pgcluster: cluster is closed")

// ErrNotRunning is returned by methods that need the server while it is
// stopped.
var ErrNotRunning = errors.New("pgcluster: server is not running")

const (
	// startTimeout bounds a start when the caller's context has no deadline.
	startTimeout = time.Minute
	// bindAttempts is how often Start picks a new port when the server exits
	// during its first start, which is what losing the race for a free port
	// looks like.
	bindAttempts = 3
	// maxSocketPath is the room for a Unix socket path on Linux
	// (sizeof(sun_path) - 1); the server's is <dir>/.s.PGSQL.<port>.
	maxSocketPath = 107
)

// Cluster is a running (or stopped) throwaway PostgreSQL cluster. Its
// methods are safe for concurrent use. Close it when done.
type Cluster struct {
	binDir    string
	dir       string // everything lives below here
	dataDir   string
	sockDir   string
	logFile   string
	host      string
	port      int
	superUser string
	password  string
	osUser    *osUser // nil: run as the calling user

	ca             *certs.CA
	caCertFile     string
	serverCertFile string
	serverKeyFile  string

	mu     sync.Mutex
	srv    *server // nil while stopped
	closed bool
	hba    []string // rules ahead of the defaults, in order
}

// Start creates a cluster in a new temporary directory and starts it. The
// context bounds the start only; the server runs until Stop or Close.
func Start(ctx context.Context, opts ...Option) (_ *Cluster, err error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.superUser == "" {
		return nil, fmt.Errorf("%w: empty superuser name", ErrBadOption)
	}
	if err := checkHBALines(cfg.hba); err != nil {
		return nil, err
	}
	// Check the caller's settings now rather than after a second of initdb.
	if _, err := renderSettings(cfg.settings); err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()

	binDir := cfg.binDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if err := checkBinDir(binDir); err != nil {
		return nil, err
	}
	osu, err := lookupOSUser()
	if err != nil {
		return nil, err
	}
	base := cfg.baseDir
	if base == "" {
		base = os.TempDir()
	}
	if err := osu.checkTraversable(base); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, "pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("failed to create cluster directory: %w", err)
	}
	c := &Cluster{
		binDir:    binDir,
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		sockDir:   filepath.Join(dir, "sock"),
		logFile:   filepath.Join(dir, "postgres.log"),
		host:      "127.0.0.1",
		superUser: cfg.superUser,
		osUser:    osu,
		hba:       append([]string(nil), cfg.hba...),
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if c.password, err = randomPassword(); err != nil {
		return nil, err
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	if err := c.writeTLS(); err != nil {
		return nil, err
	}
	if err := c.initdb(ctx); err != nil {
		return nil, err
	}
	if err := c.writeConfig(cfg.settings); err != nil {
		return nil, err
	}
	if err := c.writeHBA(c.hba); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		err = c.Start(ctx)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errExited) || attempt == bindAttempts || ctx.Err() != nil {
			return nil, err
		}
	}
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, startTimeout)
}

func (c *Cluster) prepareDir() error {
	// 0755: the CA certificate and the socket directory must be reachable by
	// the test process when the server runs as another user.
	if err := os.Chmod(c.dir, 0o755); err != nil {
		return fmt.Errorf("failed to set mode of cluster directory: %w", err)
	}
	if len(c.sockDir)+len("/.s.PGSQL.65535") > maxSocketPath {
		// A deep TMPDIR: rather than fail to start, listen on TCP only.
		c.sockDir = ""
		return c.osUser.chown(c.dir)
	}
	if err := os.Mkdir(c.sockDir, 0o755); err != nil {
		return fmt.Errorf("failed to create socket directory: %w", err)
	}
	return c.osUser.chown(c.dir, c.sockDir)
}

func (c *Cluster) writeTLS() error {
	ca, err := certs.NewCA("pgcluster throwaway CA")
	if err != nil {
		return err
	}
	leaf, err := ca.Issue(certs.LeafOptions{
		CommonName: "localhost",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		return err
	}
	tlsDir := filepath.Join(c.dir, "tls")
	if err := os.Mkdir(tlsDir, 0o755); err != nil {
		return fmt.Errorf("failed to create TLS directory: %w", err)
	}
	c.ca = ca
	c.caCertFile = filepath.Join(tlsDir, "ca.crt")
	if err := certs.WriteFileAtomic(c.caCertFile, ca.CertPEM(), 0o644); err != nil {
		return err
	}
	if c.serverCertFile, c.serverKeyFile, err = leaf.WriteFiles(tlsDir, "server"); err != nil {
		return err
	}
	// PostgreSQL refuses a key that is not owned by the server's user (or
	// root with mode 0640), so the key goes to that user.
	return c.osUser.chown(tlsDir, c.serverCertFile, c.serverKeyFile)
}

func (c *Cluster) initdb(ctx context.Context) error {
	pwFile := filepath.Join(c.dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("failed to write password file: %w", err)
	}
	defer os.Remove(pwFile)
	if err := c.osUser.chown(pwFile); err != nil {
		return err
	}
	cmd := c.command(ctx, "initdb",
		"--pgdata="+c.dataDir,
		"--username="+c.superUser,
		"--pwfile="+pwFile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
		// No fsync: nobody needs this cluster after a power cut.
		"--no-sync",
	)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to run initdb: %w\n%s", err, tail(out, 2048))
	}
	return nil
}

func (c *Cluster) writeConfig(extra []setting) error {
	conf, err := renderSettings(append(defaultSettings(c), extra...))
	if err != nil {
		return err
	}
	path := filepath.Join(c.dataDir, "postgresql.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("failed to open postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to write postgresql.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to write postgresql.conf: %w", err)
	}
	return nil
}

// Start starts a stopped cluster again, on the same port and with the same
// data. It returns nil if the server is already running.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.srv != nil {
		select {
		case <-c.srv.exited:
			c.srv = nil // it died on its own; start it again
		default:
			return nil
		}
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	srv, err := c.spawn()
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, srv); err != nil {
		srv.stop(context.Background())
		return fmt.Errorf("failed to start postgres on port %d: %w\n%s", c.port, err, c.logTail())
	}
	c.srv = srv
	return nil
}

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// the data is kept) and waits for it to exit. If ctx ends first, or the
// server takes longer than a few seconds, it is shut down immediately and
// then killed. Stop on a stopped cluster returns nil.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return nil
	}
	err := c.srv.stop(ctx)
	c.srv = nil
	return err
}

// Close stops the server and removes the cluster directory. It is safe to
// call more than once; later calls return nil.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	srv := c.srv
	c.srv = nil
	c.mu.Unlock()
	var errs []error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs = append(errs, srv.stop(ctx))
		cancel()
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("failed to remove cluster directory: %w", err))
	}
	return errors.Join(errs...)
}

// Host returns the address the server listens on, "127.0.0.1".
func (c *Cluster) Host() string { return c.host }

// Port returns the server's TCP port. It stays the same across Stop and
// Start.
func (c *Cluster) Port() int { return c.port }

// Addr returns host:port, for dialling the server directly.
func (c *Cluster) Addr() string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// SuperUser returns the name of the bootstrap superuser.
func (c *Cluster) SuperUser() string { return c.superUser }

// Password returns the superuser's password (random per cluster).
func (c *Cluster) Password() string { return c.password }

// CA returns the throwaway CA that signed the server certificate. It can
// issue further certificates, for example for a proxy under test.
func (c *Cluster) CA() *certs.CA { return c.ca }

// CACertFile returns the path of the CA certificate in PEM form, for
// sslrootcert.
func (c *Cluster) CACertFile() string { return c.caCertFile }

// CAPool returns a new pool holding the CA, for tls.Config.RootCAs.
func (c *Cluster) CAPool() *x509.CertPool { return c.ca.Pool() }

// Dir returns the cluster directory, which Close removes.
func (c *Cluster) Dir() string { return c.dir }

// DataDir returns the data directory (PGDATA).
func (c *Cluster) DataDir() string { return c.dataDir }

// BinDir returns the directory of the PostgreSQL programs in use.
func (c *Cluster) BinDir() string { return c.binDir }

// SocketDir returns the directory holding the server's Unix socket, or ""
// when the cluster directory's path is too long for a socket and the server
// listens on TCP only.
func (c *Cluster) SocketDir() string { return c.sockDir }

// LogFile returns the path of the server log.
func (c *Cluster) LogFile() string { return c.logFile }

// ConnString returns a keyword/value connection string for the superuser
// and database db, over TLS with sslmode=verify-full against CACertFile.
func (c *Cluster) ConnString(db string) string {
	return c.connString(db, "verify-full")
}

// ConnStringNoTLS is ConnString over plain TCP (sslmode=disable).
func (c *Cluster) ConnStringNoTLS(db string) string {
	return c.connString(db, "disable")
}

func (c *Cluster) connString(db, sslmode string) string {
	kv := []string{
		"host=" + quoteConnValue(c.host),
		"port=" + strconv.Itoa(c.port),
		"user=" + quoteConnValue(c.superUser),
		"password=" + quoteConnValue(c.password),
		"dbname=" + quoteConnValue(db),
		"sslmode=" + sslmode,
	}
	if sslmode != "disable" {
		kv = append(kv, "sslrootcert="+quoteConnValue(c.caCertFile))
	}
	return strings.Join(kv, " ")
}

// URL returns a postgres:// URL equivalent to ConnString(db).
func (c *Cluster) URL(db string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(c.superUser, c.password),
		Host:   c.Addr(),
		Path:   "/" + db,
		RawQuery: url.Values{
			"sslmode":     {"verify-full"},
			"sslrootcert": {c.caCertFile},
		}.Encode(),
	}
	return u.String()
}

// Connect opens a connection as the superuser to database db over TLS
// (verify-full). The caller must close it.
func (c *Cluster) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.ConnString(db))
	if err != nil {
		return nil, fmt.Errorf("failed to connect to %s as %s: %w", db, c.superUser, err)
	}
	return conn, nil
}

// CreateDatabase creates database name owned by owner (the superuser when
// owner is empty). An owner may create tables in its public schema.
func (c *Cluster) CreateDatabase(ctx context.Context, name, owner string) error {
	if owner == "" {
		owner = c.superUser
	}
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var stmt string
	if err := conn.QueryRow(ctx, "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)", name, owner).Scan(&stmt); err != nil {
		return fmt.Errorf("failed to build CREATE DATABASE: %w", err)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("failed to create database %q: %w", name, err)
	}
	return nil
}

// String describes the cluster without its password.
func (c *Cluster) String() string {
	return fmt.Sprintf("pgcluster.Cluster{%s, user=%s, dir=%s}", c.Addr(), c.superUser, c.dir)
}

func randomPassword() (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("failed to generate password: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process may
// take it before the server binds it; Start retries with a new one.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("failed to find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("failed to find a free port: %w", err)
	}
	return port, nil
}

// quoteConnValue quotes a libpq keyword/value when it needs it.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logFile)
	if err != nil {
		return ""
	}
	return "server log:\n" + string(tail(b, 2048))
}
