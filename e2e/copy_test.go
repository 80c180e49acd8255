package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const copyPolicy = `version: 1
tables:
  public.cp_people:
    email: {type: text, mode: deterministic, key: pii}
    born:  {type: date, mode: randomized, key: pii}
    score: {type: numeric, mode: randomized, key: finance}
    seen:  {type: timestamptz, mode: randomized, key: pii}
    n:     {type: int8, mode: deterministic, key: pii}
`

const copyDDL = `CREATE TABLE cp_people (id int PRIMARY KEY, note text, email bytea, born bytea, score bytea, seen bytea, n bytea)`

// copyRows is the number of rows the COPY tests move (the issue asks for
// 100k; PGSEAL_COPY_ROWS overrides).
func copyRows() int {
	if v := os.Getenv("PGSEAL_COPY_ROWS"); v != "" {
		var n int
		fmt.Sscan(v, &n)
		return n
	}
	return 100_000
}

func TestCopyTextAndCSVWithPsql(t *testing.T) {
	env := startEncrypting(t, copyPolicy, copyDDL)
	dir := t.TempDir()
	rows := copyRows()
	var text, csv strings.Builder
	for i := range rows {
		email := fmt.Sprintf("CPMARK%d@example.com", i)
		born := fmt.Sprintf("19%02d-%02d-%02d", i%100, i%12+1, i%28+1)
		// numeric reads back in normal form (no trailing zeros, see
		// codec): write it so for a byte-for-byte comparison.
		score := fmt.Sprintf("%d.%d", i, i%9+1)
		if i%100 == 0 {
			score = `\N`
		}
		seen := fmt.Sprintf("2024-01-%02d 10:%02d:%02d+00", i%28+1, i%60, i%60)
		note := fmt.Sprintf("note\t%d", i)
		fmt.Fprintf(&text, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", i, strings.ReplaceAll(note, "\t", `\t`), email, born, score, seen, -i)
		csvScore := score
		if csvScore == `\N` {
			csvScore = "NULLISH"
		}
		fmt.Fprintf(&csv, "%d,\"%s, quoted\",%s,%s,%s,%s,%d\n", i, note, email, born, csvScore, seen, -i)
	}
	inText := filepath.Join(dir, "in.txt")
	inCSV := filepath.Join(dir, "in.csv")
	os.WriteFile(inText, []byte(text.String()), 0o644)
	os.WriteFile(inCSV, []byte("id,note,email,born,score,seen,n\n"+csv.String()), 0o644)
	outText := filepath.Join(dir, "out.txt")
	outCSV := filepath.Join(dir, "out.csv")
	cols := "(id, note, email, born, score, seen, n)"
	start := time.Now()
	script := fmt.Sprintf(`\copy cp_people FROM '%s'
\copy cp_people TO '%s'
TRUNCATE cp_people;
\copy cp_people %s FROM '%s' WITH (FORMAT csv, HEADER true, NULL 'NULLISH')
\copy cp_people %s TO '%s' WITH (FORMAT csv, HEADER true, NULL 'NULLISH')
`, inText, outText, cols, inCSV, cols, outCSV)
	sf := filepath.Join(dir, "s.sql")
	os.WriteFile(sf, []byte(script), 0o644)
	if out, err := runPsql(t, env.superConnString(), "-f", sf); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	t.Logf("%d rows in and out twice through pgseal in %v", rows, time.Since(start))
	sameLines(t, "text", text.String(), readFile(t, outText))
	sameLines(t, "csv", "id,note,email,born,score,seen,n\n"+csv.String(), readFile(t, outCSV))
	var n int
	dc := direct(t)
	ctx := testCtx(t)
	if err := dc.QueryRow(ctx, `SELECT count(*) FROM cp_people WHERE position('CPMARK' in encode(email, 'escape')) > 0`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("plaintext at rest: %d %v", n, err)
	}
	if err := dc.QueryRow(ctx, `SELECT count(*) FROM cp_people`).Scan(&n); err != nil || n != rows {
		t.Fatalf("row count %d, %v", n, err)
	}
}

func TestCopyBinaryWithPgx(t *testing.T) {
	env := startEncrypting(t, strings.ReplaceAll(copyPolicy, "cp_people", "cpb_people"), strings.ReplaceAll(copyDDL, "cp_people", "cpb_people"))
	ctx := testCtx(t)
	conn := env.connect(t)
	rows := copyRows()
	src := make([][]any, rows)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range src {
		src[i] = []any{i, fmt.Sprint("note", i), fmt.Sprintf("CPB%d@x", i), base.AddDate(0, 0, -i%20000), fmt.Sprintf("%d.5", i), base.Add(time.Duration(i) * time.Second), int64(i) * 3}
	}
	cols := []string{"id", "note", "email", "born", "score", "seen", "n"}
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"cpb_people"}, cols, pgx.CopyFromRows(src))
	if err != nil || int(n) != rows {
		t.Fatalf("CopyFrom: %d %v", n, err)
	}
	// Binary COPY TO, decoded by pgx's own codecs.
	var out bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &out, `COPY cpb_people (id, email, n) TO STDOUT (FORMAT binary)`); err != nil {
		t.Fatal(err)
	}
	got := decodeBinaryCopy(t, out.Bytes())
	if len(got) != rows {
		t.Fatalf("COPY TO gave %d rows", len(got))
	}
	for _, r := range got[:10] {
		id := int(int32(be32(r[0])))
		if string(r[1]) != fmt.Sprintf("CPB%d@x", id) || int64(be64(r[2])) != int64(id)*3 {
			t.Fatalf("row %d: %q %d", id, r[1], be64(r[2]))
		}
	}
	// And reading with SELECT agrees.
	var email string
	var born time.Time
	if err := conn.QueryRow(ctx, `SELECT email, born FROM cpb_people WHERE n = $1`, int64(3000)).Scan(&email, &born); err != nil || email != "CPB1000@x" || !born.Equal(base.AddDate(0, 0, -1000)) {
		t.Fatalf("%q %v %v", email, born, err)
	}
}

func TestCopyMalformedValueAbortsAndSessionContinues(t *testing.T) {
	env := startEncrypting(t, strings.ReplaceAll(copyPolicy, "cp_people", "cpm_people"), strings.ReplaceAll(copyDDL, "cp_people", "cpm_people"))
	ctx := testCtx(t)
	conn := env.connect(t)
	var data strings.Builder
	for i := range 1000 {
		born := "2000-01-01"
		if i == 500 {
			born = "not-a-date"
		}
		fmt.Fprintf(&data, "%d\tx\te%d@x\t%s\t1.5\t2024-01-01 00:00:00+00\t%d\n", i, i, born, i)
	}
	_, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(data.String()), `COPY cpm_people FROM STDIN`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22007" && pe.Code != "22P02" && pe.Code != "22008" {
		t.Fatalf("want a 22xxx data error, got %v", err)
	}
	if !strings.Contains(pe.Message, "line 501") || !strings.Contains(pe.Message, "born") || strings.Contains(pe.Message, "not-a-date") {
		t.Fatalf("error should name line 501 and column born, without the value: %q", pe.Message)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM cpm_people`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("aborted COPY left %d rows (%v)", n, err)
	}
}

func TestCopyServerSideRefusedAndPlainTablesUntouched(t *testing.T) {
	env := startEncrypting(t, strings.ReplaceAll(copyPolicy, "cp_people", "cps_people"), strings.ReplaceAll(copyDDL, "cp_people", "cps_people"), `CREATE TABLE cps_plain (id int, s text)`)
	ctx := testCtx(t)
	conn := env.connect(t)
	for _, q := range []string{`COPY cps_people FROM '/tmp/x.csv'`, `COPY cps_people TO '/tmp/x.csv'`, `COPY cps_people (email) TO PROGRAM 'cat'`} {
		_, err := conn.Exec(ctx, q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "0A000" {
			t.Fatalf("%s: want 0A000, got %v", q, err)
		}
	}
	in := "1\tone\n2\t\\N\n"
	if _, err := conn.PgConn().CopyFrom(ctx, strings.NewReader(in), `COPY cps_plain FROM STDIN`); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &out, `COPY cps_plain TO STDOUT`); err != nil || out.String() != in {
		t.Fatalf("plain COPY changed: %q %v", out.String(), err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sameLines compares two texts line by line after sorting.
func sameLines(t *testing.T, what, want, got string) {
	t.Helper()
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	slices.Sort(w)
	slices.Sort(g)
	if len(w) != len(g) {
		t.Fatalf("%s: %d lines in, %d out", what, len(w), len(g))
	}
	for i := range w {
		if w[i] != g[i] {
			t.Fatalf("%s: line differs:\n in  %q\n out %q", what, w[i], g[i])
		}
	}
}

// decodeBinaryCopy splits binary COPY data into rows of raw fields.
func decodeBinaryCopy(t *testing.T, b []byte) [][][]byte {
	t.Helper()
	if len(b) < 19 || string(b[:11]) != "PGCOPY\n\xff\r\n\x00" {
		t.Fatal("no binary COPY header")
	}
	ext := int(be32(b[15:19]))
	b = b[19+ext:]
	var rows [][][]byte
	for len(b) >= 2 {
		nf := int(int16(uint16(b[0])<<8 | uint16(b[1])))
		b = b[2:]
		if nf == -1 {
			return rows
		}
		row := make([][]byte, nf)
		for i := range nf {
			l := int(int32(be32(b[:4])))
			b = b[4:]
			if l >= 0 {
				row[i] = b[:l]
				b = b[l:]
			}
		}
		rows = append(rows, row)
	}
	t.Fatal("binary COPY without trailer")
	return nil
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
func be64(b []byte) uint64 { return uint64(be32(b[:4]))<<32 | uint64(be32(b[4:8])) }
