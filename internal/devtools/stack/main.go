package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgseal/pgseal/internal/certs"
	"github.com/pgseal/pgseal/internal/pgcluster"
)

// listFlag collects a repeated string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	pgseal    string
	settings  listFlag
	hba       listFlag
	dbs       listFlag
	serveArgs []string
}

func main() {
	var o options
	fs := flag.NewFlagSet("stack", flag.ContinueOnError)
	fs.StringVar(&o.pgseal, "pgseal", "", "pgseal binary to run as `pgseal serve` in front of the cluster")
	fs.Var(&o.settings, "setting", "server setting name=value (repeatable)")
	fs.Var(&o.hba, "hba", "pg_hba.conf line ahead of the defaults (repeatable)")
	fs.Var(&o.dbs, "db", "database to create, owned by the superuser (repeatable)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	o.serveArgs = fs.Args()
	if err := checkServeArgs(o.serveArgs); err != nil {
		fmt.Fprintf(os.Stderr, "stack: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "stack: %v\n", err)
		os.Exit(1)
	}
}

// run starts everything, prints the assignments to out and blocks until ctx
// ends or pgseal exits.
func run(ctx context.Context, o options, out io.Writer) (err error) {
	var copts []pgcluster.Option
	for _, s := range o.settings {
		name, value, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("-setting %q: want name=value", s)
		}
		copts = append(copts, pgcluster.WithSetting(name, value))
	}
	if len(o.hba) > 0 {
		copts = append(copts, pgcluster.WithHBA(o.hba...))
	}
	dir, err := os.MkdirTemp("", "pgseal-stack-")
	if err != nil {
		return fmt.Errorf("failed to create stack directory: %w", err)
	}
	defer os.RemoveAll(dir)

	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	pg, err := pgcluster.Start(startCtx, copts...)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := pg.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, db := range o.dbs {
		if err := pg.CreateDatabase(startCtx, db, ""); err != nil {
			return err
		}
	}
	front, err := writeFrontCerts(dir)
	if err != nil {
		return err
	}
	env := []assignment{
		{"STACK_DIR", dir},
		{"STACK_PG_HOST", pg.Host()},
		{"STACK_PG_PORT", strconv.Itoa(pg.Port())},
		{"STACK_PG_USER", pg.SuperUser()},
		{"STACK_PG_PASSWORD", pg.Password()},
		{"STACK_PG_CA_FILE", pg.CACertFile()},
		{"STACK_PG_BIN_DIR", pg.BinDir()},
		{"STACK_PG_SOCKET_DIR", pg.SocketDir()},
		{"STACK_PG_DATA_DIR", pg.DataDir()},
		{"STACK_PG_CONNINFO", pg.ConnString("postgres")},
		{"STACK_FRONT_CA_FILE", front.caFile},
		{"STACK_FRONT_CERT_FILE", front.certFile},
		{"STACK_FRONT_KEY_FILE", front.keyFile},
	}

	var proxy *child
	if o.pgseal != "" {
		upstream := fmt.Sprintf("host=%s port=%d sslmode=verify-full sslrootcert=%s",
			pg.Host(), pg.Port(), quoteConnValue(pg.CACertFile()))
		args := append([]string{"serve",
			"--listen", net.JoinHostPort(pg.Host(), "0"),
			"--upstream", upstream,
			"--tls-cert", front.certFile,
			"--tls-key", front.keyFile,
			"--log-format", "json",
		}, o.serveArgs...)
		proxy, err = startChild(startCtx, o.pgseal, args, os.Stderr)
		if err != nil {
			return err
		}
		defer func() {
			if serr := proxy.stop(30 * time.Second); serr != nil && err == nil {
				err = serr
			}
		}()
		host, port, _ := net.SplitHostPort(proxy.addr)
		env = append(env,
			assignment{"STACK_PROXY_HOST", host},
			assignment{"STACK_PROXY_PORT", port},
			assignment{"STACK_PROXY_CONNINFO", fmt.Sprintf(
				"host=%s port=%s user=%s password=%s dbname=postgres sslmode=verify-full sslrootcert=%s",
				host, port, quoteConnValue(pg.SuperUser()), quoteConnValue(pg.Password()), quoteConnValue(front.caFile))},
		)
	}
	if err := writeEnv(out, env); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "stack: ready (cluster %s", pg.Addr())
	if proxy != nil {
		fmt.Fprintf(os.Stderr, ", pgseal %s", proxy.addr)
	}
	fmt.Fprintln(os.Stderr, "); stop with SIGTERM")

	var exited <-chan struct{}
	if proxy != nil {
		exited = proxy.exited
	}
	select {
	case <-ctx.Done():
		return nil
	case <-exited:
		return fmt.Errorf("pgseal exited unexpectedly: %w", proxy.waitErr)
	}
}

type frontFiles struct{ caFile, certFile, keyFile string }

// writeFrontCerts issues the certificate front ends present to clients.
func writeFrontCerts(dir string) (frontFiles, error) {
	ca, err := certs.NewCA("pgseal stack client-facing CA")
	if err != nil {
		return frontFiles{}, err
	}
	leaf, err := ca.Issue(certs.LeafOptions{
		CommonName: "localhost",
		DNSNames:   []string{"localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	if err != nil {
		return frontFiles{}, err
	}
	var f frontFiles
	if f.caFile, _, err = ca.WriteFiles(dir, "front-ca"); err != nil {
		return frontFiles{}, err
	}
	if f.certFile, f.keyFile, err = leaf.WriteFiles(dir, "front"); err != nil {
		return frontFiles{}, err
	}
	return f, nil
}

type assignment struct{ name, value string }

// writeEnv prints the assignments and the ready marker in one write.
func writeEnv(w io.Writer, env []assignment) error {
	var b strings.Builder
	for _, a := range env {
		b.WriteString(a.name)
		b.WriteByte('=')
		b.WriteString(shellQuote(a.value))
		b.WriteByte('\n')
	}
	b.WriteString("# ready\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("failed to write assignments: %w", err)
	}
	return nil
}

// shellQuote quotes v for a POSIX shell.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// quoteConnValue quotes a libpq keyword/value when it needs it.
func quoteConnValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// checkServeArgs refuses serve flags that would hide the log line stack
// waits for.
func checkServeArgs(args []string) error {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		switch {
		case name == "log-level" && value != "info" && value != "debug":
			return fmt.Errorf("serve flag --log-level %s would hide pgseal's ready line: use info or debug", value)
		case name == "log-format" && value != "json":
			return fmt.Errorf("serve flag --log-format %s: stack reads pgseal's JSON log", value)
		case name == "listen":
			return errors.New("serve flag --listen: stack chooses the address")
		}
	}
	return nil
}

// errNotReady is returned when pgseal exits before saying it is ready.
var errNotReady = errors.New("pgseal exited before it was ready")

// scanReady reads pgseal's JSON log from r until the "pgseal is ready" line
// and returns its listen address; it copies every line to w, and keeps
// copying after it returns.
func scanReady(r io.Reader, w io.Writer) (addr string, rest *bufio.Scanner, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		fmt.Fprintf(w, "%s\n", line)
		if a, ok := readyAddr(line); ok {
			return a, sc, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", nil, fmt.Errorf("failed to read pgseal's log: %w", err)
	}
	return "", nil, errNotReady
}
