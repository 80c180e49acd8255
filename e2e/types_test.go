package e2e

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// typeCase is one declared type with a value written in its text form and
// the text PostgreSQL itself would show for it.
type typeCase struct {
	typ, in, want string
}

var typeCases = []typeCase{
	{"text", "MARKER-text-é", "MARKER-text-é"},
	{"varchar", "MARKER-varchar", "MARKER-varchar"},
	{"int2", "-1234", "-1234"},
	{"int4", "2000000001", "2000000001"},
	{"int8", "-9000000000000000001", "-9000000000000000001"},
	{"numeric", "12345.678900", "12345.6789"},
	{"float4", "1.5", "1.5"},
	{"float8", "-2.25e+100", "-2.25e+100"},
	{"bool", "true", "t"},
	{"date", "2024-02-29", "2024-02-29"},
	{"timestamp", "2024-02-29 13:14:15.123456", "2024-02-29 13:14:15.123456"},
	{"timestamptz", "2024-02-29 13:14:15.5+00", "2024-02-29 13:14:15.5+00"},
	{"uuid", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
	{"jsonb", `{"b": 1, "a": "MARKER-json"}`, `{"a": "MARKER-json", "b": 1}`},
	{"bytea", `\x4d41524b4552`, `\x4d41524b4552`},
}

// TestEveryTypeEveryModeEveryClient writes a value of every declared type
// in both modes with pgx (extended, binary where pgx chooses it), pgx simple
// protocol, lib/pq (extended, text) and psql (simple, literals), reads it
// back through each, and checks that the database holds only ciphertext.
func TestEveryTypeEveryModeEveryClient(t *testing.T) {
	var pol strings.Builder
	pol.WriteString("version: 1\ntables:\n  public.typed:\n")
	var cols []string
	for _, tc := range typeCases {
		for _, mode := range []string{"deterministic", "randomized"} {
			name := fmt.Sprintf("%s_%c", tc.typ, mode[0])
			fmt.Fprintf(&pol, "    %s: {type: %s, mode: %s, key: pii}\n", name, tc.typ, mode)
			cols = append(cols, name)
		}
	}
	ddl := "CREATE TABLE typed (id int PRIMARY KEY, writer text"
	for _, c := range cols {
		ddl += ", " + c + " bytea"
	}
	ddl += ")"
	env := startEncrypting(t, pol.String(), ddl)
	ctx := testCtx(t)
	// Writers.
	conn := env.connect(t)
	if _, err := conn.Exec(ctx, plainInsert(cols), argsTyped(1, "pgx")...); err != nil {
		t.Fatalf("pgx extended insert: %v", err)
	}
	if _, err := conn.Exec(ctx, plainInsert(cols), append([]any{pgx.QueryExecModeSimpleProtocol}, argsText(2, "pgx-simple")...)...); err != nil {
		t.Fatalf("pgx simple insert: %v", err)
	}
	db, err := sql.Open("postgres", env.superURL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, plainInsert(cols), argsLibPQ(3, "libpq-go")...); err != nil {
		t.Fatalf("lib/pq insert: %v", err)
	}
	lits := []string{"4", "'psql'"}
	for i := range cols {
		lits = append(lits, "'"+strings.ReplaceAll(typeCases[i/2].in, "'", "''")+"'")
	}
	psqlInsert := fmt.Sprintf("INSERT INTO typed (id, writer, %s) VALUES (%s)", strings.Join(cols, ", "), strings.Join(lits, ", "))
	if out, err := runPsql(t, env.superConnString(), "-c", psqlInsert); err != nil {
		t.Fatalf("psql insert: %v\n%s", err, out)
	}

	// Readers: every row must read back as PostgreSQL would show the value.
	sel := "SELECT id, " + strings.Join(cols, ", ") + " FROM typed ORDER BY id"
	check := func(t *testing.T, reader string, got [][]string) {
		t.Helper()
		if len(got) != 4 {
			t.Fatalf("%s: %d rows", reader, len(got))
		}
		for _, row := range got {
			for i, v := range row[1:] {
				if want := typeCases[i/2].want; v != want {
					t.Errorf("%s: row %s column %s = %q, want %q", reader, row[0], cols[i], v, want)
				}
			}
		}
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		rows, err := conn.Query(ctx, sel, mode)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]string
		for rows.Next() {
			vals := rows.RawValues()
			fds := rows.FieldDescriptions()
			row := make([]string, len(vals))
			for i, v := range vals {
				row[i] = textOf(conn, fds[i], v)
			}
			got = append(got, row)
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		check(t, "pgx "+mode.String(), got)
	}
	// Binary format for every column, explicitly.
	rr := conn.PgConn().ExecParams(ctx, sel, nil, nil, nil, []int16{1}).Read()
	if rr.Err != nil {
		t.Fatal(rr.Err)
	}
	var bin [][]string
	for _, r := range rr.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			row[i] = textOf(conn, rr.FieldDescriptions[i], v)
		}
		bin = append(bin, row)
	}
	check(t, "binary", bin)

	out, err := runPsql(t, env.superConnString(), "-A", "-t", "-F", "|", "-c", sel)
	if err != nil {
		t.Fatalf("psql select: %v\n%s", err, out)
	}
	var got [][]string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		got = append(got, strings.Split(line, "|"))
	}
	check(t, "psql", got)

	// Deterministic equality per type through a parameter and a literal.
	for i, tc := range typeCases {
		col := cols[2*i]
		var n int
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM typed WHERE %s = $1", col), typedArg(tc)).Scan(&n); err != nil || n != 4 {
			t.Errorf("%s = $1: %d rows, %v", col, n, err)
		}
		lit := "'" + strings.ReplaceAll(tc.want, "'", "''") + "'"
		if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM typed WHERE %s = %s", col, lit), pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 4 {
			t.Errorf("%s = literal (as PostgreSQL prints it): %d rows, %v", col, n, err)
		}
	}

	// At rest: no marker anywhere in the data directory, WAL or a dump.
	dc := direct(t)
	if _, err := dc.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := dc.QueryRow(ctx, "SELECT text_r FROM typed WHERE id = 1").Scan(&raw); err != nil || strings.Contains(string(raw), "MARKER") {
		t.Fatalf("raw value %q, %v", raw, err)
	}
	assertNoMarker(t, shared.DataDir(), "MARKER-text", "MARKER-varchar", "MARKER-json")
	dump := exec.Command(filepath.Join(shared.BinDir(), "pg_dump"), "-d", shared.ConnString("postgres"), "-t", "typed")
	dumpOut, err := dump.CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, dumpOut)
	}
	if strings.Contains(string(dumpOut), "MARKER") || !strings.Contains(string(dumpOut), "typed") {
		t.Fatal("pg_dump shows plaintext (or nothing)")
	}
}

// assertNoMarker searches every file under dir for each marker.
func assertNoMarker(t *testing.T, dir string, markers ...string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		n++
		for _, m := range markers {
			if strings.Contains(string(b), m) {
				t.Errorf("marker %q found in %s", m, p)
			}
		}
		return nil
	})
	if err != nil || n < 100 {
		t.Fatalf("searched %d files: %v", n, err)
	}
}

func plainInsert(cols []string) string {
	ph := make([]string, len(cols))
	for i := range cols {
		ph[i] = fmt.Sprintf("$%d", i+3)
	}
	return fmt.Sprintf("INSERT INTO typed (id, writer, %s) VALUES ($1, $2, %s)", strings.Join(cols, ", "), strings.Join(ph, ", "))
}

// argsTyped gives pgx Go values, which it encodes in binary where it can.
func argsTyped(id int, writer string) []any {
	a := []any{id, writer}
	for _, tc := range typeCases {
		v := typedArg(tc)
		a = append(a, v, v)
	}
	return a
}

// argsText gives every value as a string (text format).
func argsText(id int, writer string) []any {
	a := []any{id, writer}
	for _, tc := range typeCases {
		a = append(a, tc.in, tc.in)
	}
	return a
}

// argsLibPQ is argsText, except that lib/pq sends a parameter whose type is
// bytea in binary, so bytea values must be the bytes themselves.
func argsLibPQ(id int, writer string) []any {
	a := argsText(id, writer)
	for i, tc := range typeCases {
		if tc.typ == "bytea" {
			a[2+2*i], a[3+2*i] = []byte("MARKER"), []byte("MARKER")
		}
	}
	return a
}
