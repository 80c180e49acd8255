package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
)

func TestPsqlScript(t *testing.T) {
	env := startProxy(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var sb strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&sb, "%d,name %d,\"quoted, %d\"\n", i, i, i)
	}
	if err := os.WriteFile(in, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	script := fmt.Sprintf(`
CREATE TABLE psql_t (id int PRIMARY KEY, a text, b text); INSERT INTO psql_t VALUES (-1, 'x', 'y'); DELETE FROM psql_t WHERE id = -1;
\copy psql_t FROM '%s' WITH (FORMAT csv)
SELECT count(*) AS n FROM psql_t; SELECT max(id) AS m FROM psql_t;
\copy (SELECT * FROM psql_t ORDER BY id) TO '%s' WITH (FORMAT csv)
BEGIN; UPDATE psql_t SET a = 'changed' WHERE id = 1; ROLLBACK;
SELECT a FROM psql_t WHERE id = 1;
`, in, out)
	sf := filepath.Join(dir, "script.sql")
	os.WriteFile(sf, []byte(script), 0o644)
	res, err := runPsql(t, env.superConnString(), "-f", sf)
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, res)
	}
	for _, want := range []string{"1000", "999", "name 1"} {
		if !strings.Contains(res, want) {
			t.Fatalf("psql output lacks %q:\n%s", want, res)
		}
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != sb.String() {
		t.Fatalf("\\copy out differs from \\copy in (%d vs %d bytes)", len(got), sb.Len())
	}
}

func TestLibPQThroughProxy(t *testing.T) {
	env := startProxy(t)
	ctx := testCtx(t)
	db, err := sql.Open("postgres", env.superURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE pq_t (id int, s text)`); err != nil {
		t.Fatal(err)
	}
	t.Run("prepared", func(t *testing.T) {
		st, err := db.PrepareContext(ctx, `INSERT INTO pq_t VALUES ($1, $2)`)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if _, err := st.ExecContext(ctx, i, fmt.Sprint("v", i)); err != nil {
				t.Fatal(err)
			}
		}
		st.Close()
		var s string
		if err := db.QueryRowContext(ctx, `SELECT s FROM pq_t WHERE id = $1`, 13).Scan(&s); err != nil || s != "v13" {
			t.Fatalf("%q %v", s, err)
		}
	})
	t.Run("copy in", func(t *testing.T) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := tx.Prepare(pq.CopyIn("pq_t", "id", "s"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 1000 {
			if _, err := st.Exec(1000+i, "c"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := st.Exec(); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		var n int
		db.QueryRowContext(ctx, `SELECT count(*) FROM pq_t WHERE s = 'c'`).Scan(&n)
		if n != 1000 {
			t.Fatalf("copied %d rows", n)
		}
	})
	t.Run("listen", func(t *testing.T) {
		l := pq.NewListener(env.superURL(), time.Second, time.Minute, nil)
		defer l.Close()
		if err := l.Listen("pq_chan"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `NOTIFY pq_chan, 'payload'`); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-l.Notify:
			if n == nil || n.Extra != "payload" {
				t.Fatalf("notification %+v", n)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("no notification")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := db.ExecContext(cctx, `SELECT pg_sleep(20)`)
		var pe *pq.Error
		if !errors.As(err, &pe) || pe.Code != "57014" {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("want query_canceled, got %v", err)
			}
		}
		var one int
		if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPgbench(t *testing.T) {
	env := startProxy(t)
	bin := filepath.Join(shared.BinDir(), "pgbench")
	if _, err := os.Stat(bin); err != nil {
		bin = "pgbench"
	}
	ctx := testCtx(t)
	if _, err := direct(t).Exec(ctx, `CREATE DATABASE bench`); err != nil {
		t.Fatal(err)
	}
	conn := env.connString(shared.SuperUser(), shared.Password(), "bench")
	run := func(args ...string) string {
		cmd := exec.CommandContext(ctx, bin, append(args, conn)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("-i", "-s", "1", "-q")
	for _, mode := range []string{"simple", "extended", "prepared"} {
		out := run("-S", "-M", mode, "-c", "4", "-j", "2", "-t", "200")
		if !strings.Contains(out, "number of failed transactions: 0") && !strings.Contains(out, "number of transactions actually processed: 800/800") {
			t.Fatalf("pgbench -M %s:\n%s", mode, out)
		}
	}
	out := run("-c", "4", "-j", "2", "-t", "100")
	if !strings.Contains(out, "actually processed: 400/400") {
		t.Fatalf("pgbench tpcb:\n%s", out)
	}
}
