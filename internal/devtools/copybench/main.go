// Command copybench measures COPY through pgseal against COPY straight into
// PostgreSQL, in one run: it loads and exports N rows with two policy
// columns (one deterministic, one randomized) into an encrypted table
// through pgseal and into a plaintext table directly, in text and binary
// format, and prints the times and the ratios.
//
// Usage: go run ./internal/devtools/copybench [-rows 1000000]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/internal/certs"
	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

func main() {
	rows := flag.Int("rows", 1_000_000, "rows to load and export")
	prof := flag.String("cpuprofile", "", "write a CPU profile of the whole run (client and pgseal) to this file")
	flag.Parse()
	if *prof != "" {
		f, err := os.Create(*prof)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*rows); err != nil {
		fmt.Fprintln(os.Stderr, "copybench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(rows int) error {
	ctx := context.Background()
	pg, err := pgcluster.Start(ctx)
	if err != nil {
		return err
	}
	defer pg.Close()
	dir, err := os.MkdirTemp("", "copybench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	proxyConn, err := startProxy(ctx, pg, dir)
	if err != nil {
		return err
	}
	dc, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer dc.Close(ctx)
	for _, q := range []string{
		`CREATE TABLE plain_t (id int, email text, ssn text)`,
		`CREATE TABLE enc_t (id int, email bytea, ssn bytea)`,
	} {
		if _, err := dc.Exec(ctx, q); err != nil {
			return err
		}
	}
	pc, err := pgx.Connect(ctx, proxyConn)
	if err != nil {
		return err
	}
	defer pc.Close(ctx)

	text := func(w io.Writer) {
		for i := range rows {
			fmt.Fprintf(w, "%d\tuser%d@example.com\t%03d-%02d-%04d\n", i, i, i%1000, i%100, i%10000)
		}
	}
	type result struct{ load, export time.Duration }
	measure := func(c *pgx.Conn, table string, binary bool) (result, error) {
		var r result
		if _, err := c.Exec(ctx, "TRUNCATE "+table); err != nil {
			return r, err
		}
		start := time.Now()
		if binary {
			src := make([][]any, 0, 1)
			i := 0
			n, err := c.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "email", "ssn"}, pgx.CopyFromFunc(func() ([]any, error) {
				if i >= rows {
					return nil, nil
				}
				src = append(src[:0], []any{i, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("%03d-%02d-%04d", i%1000, i%100, i%10000)})
				i++
				return src[0], nil
			}))
			if err != nil || int(n) != rows {
				return r, fmt.Errorf("binary load into %s: %d rows, %v", table, n, err)
			}
		} else {
			pr, pw := io.Pipe()
			go func() { text(pw); pw.Close() }()
			if _, err := c.PgConn().CopyFrom(ctx, pr, "COPY "+table+" FROM STDIN"); err != nil {
				return r, fmt.Errorf("text load into %s: %w", table, err)
			}
		}
		r.load = time.Since(start)
		start = time.Now()
		format := ""
		if binary {
			format = " (FORMAT binary)"
		}
		if _, err := c.PgConn().CopyTo(ctx, io.Discard, "COPY "+table+" TO STDOUT"+format); err != nil {
			return r, fmt.Errorf("export %s: %w", table, err)
		}
		r.export = time.Since(start)
		return r, nil
	}
	fmt.Printf("COPY of %d rows with two policy columns (one deterministic, one randomized)\n\n", rows)
	fmt.Printf("%-8s %-7s %12s %12s %8s\n", "format", "phase", "direct", "pgseal", "ratio")
	for _, binary := range []bool{false, true} {
		d, err := measure(dc, "plain_t", binary)
		if err != nil {
			return err
		}
		p, err := measure(pc, "enc_t", binary)
		if err != nil {
			return err
		}
		name := "text"
		if binary {
			name = "binary"
		}
		fmt.Printf("%-8s %-7s %12v %12v %7.2fx\n", name, "load", d.load.Round(time.Millisecond), p.load.Round(time.Millisecond), p.load.Seconds()/d.load.Seconds())
		fmt.Printf("%-8s %-7s %12v %12v %7.2fx\n", name, "export", d.export.Round(time.Millisecond), p.export.Round(time.Millisecond), p.export.Seconds()/d.export.Seconds())
	}
	// The same plaintext table through pgseal: what forwarding alone costs.
	for _, binary := range []bool{false, true} {
		p, err := measure(pc, "plain_t", binary)
		if err != nil {
			return err
		}
		fmt.Printf("pass-through (plaintext table via pgseal, binary=%v): load %v, export %v\n", binary, p.load.Round(time.Millisecond), p.export.Round(time.Millisecond))
	}
	fmt.Println("\nratio = pgseal time / direct time (goal: 2x or less)")
	return nil
}

// startProxy runs pgseal in this process, with TLS on both hops, a fresh
// keystore and a policy for enc_t, and returns a conninfo through it.
func startProxy(ctx context.Context, pg *pgcluster.Cluster, dir string) (string, error) {
	mk := make([]byte, 32)
	for i := range mk {
		mk[i] = byte(i)
	}
	src, err := keystore.NewStaticMasterKey(mk)
	if err != nil {
		return "", err
	}
	ksPath := filepath.Join(dir, "ks.json")
	if _, err := keystore.Create(ctx, ksPath, src); err != nil {
		return "", err
	}
	ed, err := keystore.Edit(ctx, ksPath, src)
	if err != nil {
		return "", err
	}
	if _, err := ed.AddKeySet(ctx, "pii"); err != nil {
		return "", err
	}
	if err := ed.Commit(ctx); err != nil {
		return "", err
	}
	ks, err := keystore.Open(ctx, ksPath, src)
	if err != nil {
		return "", err
	}
	pol, err := policy.Parse([]byte("version: 1\ntables:\n  public.enc_t:\n    email: {type: text, mode: deterministic, key: pii}\n    ssn: {type: text, mode: randomized, key: pii}\n"), "bench.yaml")
	if err != nil {
		return "", err
	}
	ca, err := certs.NewCA("copybench")
	if err != nil {
		return "", err
	}
	leaf, err := ca.Issue(certs.LeafOptions{CommonName: "pgseal", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		return "", err
	}
	caFile, _, err := ca.WriteFiles(dir, "ca")
	if err != nil {
		return "", err
	}
	up, err := proxy.ParseUpstream(fmt.Sprintf("host=127.0.0.1 port=%d sslrootcert=%s", pg.Port(), pg.CACertFile()))
	if err != nil {
		return "", err
	}
	dp := datapath.New(&datapath.Snapshot{Policy: pol, Analyzer: datapath.RewriteAnalyzer{A: rewrite.New(pol)}, Ciphers: datapath.NewKeystoreCiphers(ks)})
	srv := proxy.New(up, proxy.WithClientTLS(tlsConfig(leaf)), proxy.WithDataPath(dp))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	// The accept loop lives until the process exits.
	go srv.Serve(l)
	host, port, _ := net.SplitHostPort(l.Addr().String())
	return strings.Join([]string{"host=" + host, "port=" + port, "user=" + pg.SuperUser(), "password=" + pg.Password(),
		"dbname=postgres", "sslmode=verify-full", "sslrootcert=" + caFile}, " "), nil
}
