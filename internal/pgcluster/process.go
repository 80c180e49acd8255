package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// errExited means the postmaster exited while it was starting.
var errExited = errors.New("pgcluster: postgres exited during start-up")

const (
	// unprivilegedUser is who runs the server when the caller is root.
	unprivilegedUser = "postgres"
	// fastShutdownGrace is how long a fast shutdown may take before it is
	// turned into an immediate one, and that one before a kill.
	fastShutdownGrace = 10 * time.Second
	// pollMin and pollMax bound the back-off between readiness probes.
	pollMin = 5 * time.Millisecond
	pollMax = 100 * time.Millisecond
)

// osUser is the OS account the server runs as when the caller is root.
type osUser struct {
	uid, gid uint32
}

func lookupOSUser() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(unprivilegedUser)
	if err != nil {
		return nil, fmt.Errorf("failed to look up OS user %q to run postgres as (PostgreSQL refuses to run as root): %w", unprivilegedUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("failed to parse uid of %q: %w", unprivilegedUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("failed to parse gid of %q: %w", unprivilegedUser, err)
	}
	return &osUser{uid: uint32(uid), gid: uint32(gid)}, nil
}

// chown hands paths to the server's user; it does nothing when the server
// runs as the caller.
func (u *osUser) chown(paths ...string) error {
	if u == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(u.uid), int(u.gid)); err != nil {
			return fmt.Errorf("failed to hand %s to the postgres user: %w", p, err)
		}
	}
	return nil
}

// checkTraversable reports whether the server's user can reach dir: it
// needs search permission on every ancestor. The error says which one
// blocks it, which beats initdb's "permission denied" on the cluster
// directory.
func (u *osUser) checkTraversable(dir string) error {
	if u == nil {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("failed to resolve %s: %w", dir, err)
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("failed to inspect %s: %w", p, err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		switch {
		case !ok, perm&0o001 != 0:
		case st.Uid == u.uid && perm&0o100 != 0:
		case st.Gid == u.gid && perm&0o010 != 0:
		default:
			return fmt.Errorf("%w: the %s OS user cannot traverse %s (mode %o); choose another base directory", ErrBadOption, unprivilegedUser, p, perm)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// command prepares one of the PostgreSQL programs: as the server's user, in
// its own process group (so a Ctrl-C meant for the caller does not reach the
// server before the caller can shut it down in order), with the caller's
// PG* variables removed so that they cannot redirect it.
func (c *Cluster) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = cleanEnv()
	attr := &syscall.SysProcAttr{Setpgid: true}
	if c.osUser != nil {
		attr.Credential = &syscall.Credential{Uid: c.osUser.uid, Gid: c.osUser.gid}
	}
	cmd.SysProcAttr = attr
	return cmd
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// server is one run of the postmaster.
type server struct {
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has been reaped
	waitErr error         // set before exited is closed
}

// spawn starts the postmaster. The context of command is not used: the
// server must outlive the call that started it.
func (c *Cluster) spawn() (*server, error) {
	logf, err := os.OpenFile(c.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open server log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := c.command(context.Background(), "postgres", "-D", c.dataDir, "-p", strconv.Itoa(c.port))
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Should the caller die without stopping the server, SIGQUIT makes it
	// shut down immediately. Go sets this after switching credentials, which
	// would otherwise clear it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start postgres: %w", err)
	}
	s := &server{cmd: cmd, exited: make(chan struct{})}
	// The server owns this goroutine; it ends when the postmaster exits,
	// which stop guarantees.
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// stop asks for a fast shutdown (SIGINT); if ctx ends or the grace period
// passes, an immediate one (SIGQUIT); if that hangs too, it kills. It
// returns once the process has exited, with an error only if it was killed.
func (s *server) stop(ctx context.Context) error {
	if err := s.signal(syscall.SIGINT); err != nil {
		return err
	}
	grace := time.NewTimer(fastShutdownGrace)
	defer grace.Stop()
	select {
	case <-s.exited:
		return nil
	case <-ctx.Done():
	case <-grace.C:
	}
	if err := s.signal(syscall.SIGQUIT); err != nil {
		return err
	}
	grace.Reset(fastShutdownGrace)
	select {
	case <-s.exited:
		return nil
	case <-grace.C:
	}
	if err := s.signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-s.exited
	return errors.New("pgcluster: postgres did not shut down and was killed")
}

func (s *server) signal(sig syscall.Signal) error {
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to send %v to postgres: %w", sig, err)
	}
	return nil
}

// waitReady polls until the server accepts a connection from the superuser
// over TLS, the server exits, or ctx ends.
func (c *Cluster) waitReady(ctx context.Context, s *server) error {
	cfg, err := pgconn.ParseConfig(c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("failed to parse connection string: %w", err)
	}
	delay := pollMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%w (%v)", errExited, s.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("failed to wait for postgres: %w", ctx.Err())
		case <-timer.C:
		}
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		if !startingUp(err) {
			return fmt.Errorf("failed to connect to postgres: %w", err)
		}
		timer.Reset(delay)
		delay = min(2*delay, pollMax)
	}
}

// startingUp reports whether a connection error means "not yet": nothing
// listening, or the server still starting (SQLSTATE 57P03).
func startingUp(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "57P03"
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}
