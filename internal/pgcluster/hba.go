package pgcluster

import (
	"context"
	"errors"
	"fmt"

	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/internal/certs"
)

// AuthMethod is a pg_hba.conf authentication method.
type AuthMethod string

// The methods CreateRole supports: the ones a client can answer through
// pgseal.
const (
	// AuthTrust logs in without a password.
	AuthTrust AuthMethod = "trust"
	// AuthPassword asks for the password in cleartext (over TLS, one hopes).
	AuthPassword AuthMethod = "password"
	// AuthMD5 asks for an MD5 digest; the role's password is stored as an
	// MD5 hash, so the server cannot fall back to SCRAM.
	AuthMD5 AuthMethod = "md5"
	// AuthSCRAM runs SCRAM-SHA-256.
	AuthSCRAM AuthMethod = "scram-sha-256"
)

// ErrBadRole is returned by CreateRole for a role name or method it cannot
// express safely in pg_hba.conf.
var ErrBadRole = errors.New("pgcluster: unsupported role name or auth method")

// ErrBadHBA is returned when pg_hba.conf lines are malformed or PostgreSQL
// rejects them.
var ErrBadHBA = errors.New("pgcluster: invalid pg_hba.conf line")

// hbaNet is the only network the server listens on.
const hbaNet = "127.0.0.1/32"

// renderHBA writes rules ahead of the defaults: the superuser and any other
// role without a rule of its own use SCRAM, over TLS or plain TCP ("host"
// matches both) and over the Unix socket.
func (c *Cluster) renderHBA(rules []string) string {
	var b strings.Builder
	b.WriteString("# Written by pgseal internal/pgcluster; first match wins.\n")
	for _, r := range rules {
		b.WriteString(r)
		b.WriteByte('\n')
	}
	b.WriteString("local all all scram-sha-256\n")
	b.WriteString("host all all " + hbaNet + " scram-sha-256\n")
	return b.String()
}

func (c *Cluster) hbaFile() string { return filepath.Join(c.dataDir, "pg_hba.conf") }

func (c *Cluster) writeHBA(rules []string) error {
	path := c.hbaFile()
	if err := certs.WriteFileAtomic(path, []byte(c.renderHBA(rules)), 0o600); err != nil {
		return err
	}
	return c.osUser.chown(path)
}

func checkHBALines(lines []string) error {
	for _, l := range lines {
		if strings.ContainsAny(l, "\n\r\x00") || strings.TrimSpace(l) == "" {
			return fmt.Errorf("%w: %q", ErrBadHBA, l)
		}
	}
	return nil
}

// CreateRole creates a login role that authenticates with method, and adds
// the pg_hba.conf rule `host all "name" 127.0.0.1/32 method` (TLS and plain
// TCP) ahead of the defaults. For AuthMD5 the password is stored as an MD5
// hash, otherwise as a SCRAM verifier; for AuthTrust an empty password
// creates the role without one. CreateRole returns once the server has
// reloaded pg_hba.conf, so the next connection sees the rule.
//
// The role may log in to every database; it owns none and, since
// PostgreSQL 15, may not create tables in another owner's public schema:
// see CreateDatabase.
func (c *Cluster) CreateRole(ctx context.Context, name, password string, method AuthMethod) error {
	switch method {
	case AuthTrust, AuthPassword, AuthMD5, AuthSCRAM:
	default:
		return fmt.Errorf("%w: method %q", ErrBadRole, method)
	}
	if name == "" || strings.ContainsAny(name, "\"\n\r\x00") {
		return fmt.Errorf("%w: name %q", ErrBadRole, name)
	}
	if password == "" && method != AuthTrust {
		return fmt.Errorf("%w: %s needs a password", ErrBadRole, method)
	}
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	encryption := "scram-sha-256"
	if method == AuthMD5 {
		encryption = "md5"
	}
	// set_config rather than SET: it takes a parameter.
	if _, err := conn.Exec(ctx, "SELECT set_config('password_encryption', $1, false)", encryption); err != nil {
		return fmt.Errorf("failed to set password_encryption: %w", err)
	}
	// CREATE ROLE takes no parameters; format() quotes on the server so no
	// quoting is done here.
	var stmt string
	if password == "" {
		err = conn.QueryRow(ctx, "SELECT format('CREATE ROLE %I LOGIN', $1::text)", name).Scan(&stmt)
	} else {
		err = conn.QueryRow(ctx, "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)", name, password).Scan(&stmt)
	}
	if err != nil {
		return fmt.Errorf("failed to build CREATE ROLE: %w", err)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		// The error names the role at most; PostgreSQL does not echo the
		// statement in an ErrorResponse.
		return fmt.Errorf("failed to create role %q: %w", name, err)
	}
	return c.AddHBA(ctx, fmt.Sprintf(`host all "%s" %s %s`, name, hbaNet, method))
}

// AddHBA adds lines to pg_hba.conf after the rules added so far and ahead
// of the defaults, and reloads the server. If PostgreSQL rejects a line, the
// file is restored and the error wraps ErrBadHBA.
func (c *Cluster) AddHBA(ctx context.Context, lines ...string) error {
	if err := checkHBALines(lines); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.srv == nil {
		return ErrNotRunning
	}
	rules := append(append([]string(nil), c.hba...), lines...)
	if err := c.writeHBA(rules); err != nil {
		return err
	}
	if err := c.reloadHBA(ctx); err != nil {
		if errors.Is(err, ErrBadHBA) {
			if restoreErr := c.writeHBA(c.hba); restoreErr != nil {
				return errors.Join(err, restoreErr)
			}
		}
		return err
	}
	c.hba = rules
	return nil
}

// reloadHBA checks the file as PostgreSQL parses it, signals a reload, and
// waits until a new session reports a configuration load time later than
// before: the postmaster reloads pg_hba.conf in the same step, before it
// forks another session, so from then on the new rules apply.
func (c *Cluster) reloadHBA(ctx context.Context) error {
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var bad []string
	rows, err := conn.Query(ctx, "SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
	if err != nil {
		return fmt.Errorf("failed to check pg_hba.conf: %w", err)
	}
	for rows.Next() {
		var line int
		var msg string
		if err := rows.Scan(&line, &msg); err != nil {
			return fmt.Errorf("failed to check pg_hba.conf: %w", err)
		}
		bad = append(bad, fmt.Sprintf("line %d: %s", line, msg))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("failed to check pg_hba.conf: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrBadHBA, strings.Join(bad, "; "))
	}
	var before string
	if err := conn.QueryRow(ctx, "SELECT pg_conf_load_time()::text").Scan(&before); err != nil {
		return fmt.Errorf("failed to read configuration load time: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("failed to reload configuration: %w", err)
	}
	return c.pollReload(ctx, before)
}

func (c *Cluster) pollReload(ctx context.Context, before string) error {
	cfg, err := pgx.ParseConfig(c.ConnString("postgres"))
	if err != nil {
		return fmt.Errorf("failed to parse connection string: %w", err)
	}
	delay := pollMin
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("failed to wait for configuration reload: %w", ctx.Err())
		case <-timer.C:
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("failed to connect after reload: %w", err)
		}
		var now string
		err = conn.QueryRow(ctx, "SELECT pg_conf_load_time()::text").Scan(&now)
		_ = conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return fmt.Errorf("failed to read configuration load time: %w", err)
		}
		if now != before {
			return nil
		}
		timer.Reset(delay)
		delay = min(2*delay, pollMax)
	}
}
