package copyfmt

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/internal/pgcluster"
)

// chunkRecorder keeps each CopyData payload pgconn hands over.
type chunkRecorder struct{ chunks [][]byte }

func (c *chunkRecorder) Write(p []byte) (int, error) {
	c.chunks = append(c.chunks, bytes.Clone(p))
	return len(p), nil
}

var oracleTexts = []string{"", "plain", "tab\there", "nl\nhere", "cr\rhere", "crlf\r\nhere", `back\slash`, `\N`, `\.`,
	`quote"d`, "comma,", "semi;", "pipe|", "NULL", "N/A", "ünïcödé ☃", "\x01ctl\x7f", "'single'", " lead", `\x41`, `""`}

func TestMatchesPostgresCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	c := pgcluster.StartTB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pg := conn.PgConn()
	setup := `SET TimeZone = 'UTC';
CREATE TABLE src (id int, t text, n numeric, b bytea, j jsonb, ts timestamptz);
CREATE TABLE single (v text);
CREATE TABLE cf (id serial, a text, b text);`
	if _, err := pg.Exec(ctx, setup).ReadAll(); err != nil {
		t.Fatal(err)
	}
	for i, s := range oracleTexts {
		_, err := conn.Exec(ctx, `INSERT INTO src VALUES ($1, $2, $3, $4, $5, $6)`,
			i, s, fmt.Sprintf("%d.50", i), []byte(s), jsonObject(s), time.Unix(int64(i)*86400, 0))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO single VALUES ($1)`, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pg.Exec(ctx, `INSERT INTO src (id) VALUES (100); INSERT INTO single VALUES (NULL)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	t.Run("COPY TO", func(t *testing.T) { testCopyTo(ctx, t, pg) })
	t.Run("COPY FROM", func(t *testing.T) { testCopyFrom(ctx, t, pg) })
}

func jsonObject(s string) string {
	v, _ := json.Marshal(map[string]string{"k": s})
	return string(v)
}

func testCopyTo(ctx context.Context, t *testing.T, pg *pgconn.PgConn) {
	cols := []string{"id", "t", "n", "b", "j", "ts"}
	tests := []struct {
		table, with string
		opts        Options
	}{
		{"src", "", Options{}},
		{"src", "(DELIMITER '|', NULL 'NULL')", Options{Delimiter: '|', Null: str("NULL")}},
		{"src", "(HEADER)", Options{Header: true}},
		{"src", "(FORMAT csv)", Options{Format: CSV}},
		{"src", "(FORMAT csv, HEADER)", Options{Format: CSV, Header: true}},
		{"src", `(FORMAT csv, DELIMITER ';', NULL 'N/A', QUOTE '''', ESCAPE '\', FORCE_QUOTE (t, j))`,
			Options{Format: CSV, Delimiter: ';', Null: str("N/A"), Quote: '\'', Escape: '\\', ForceQuote: []string{"t", "j"}}},
		{"src", "(FORMAT csv, FORCE_QUOTE *)", Options{Format: CSV, ForceQuoteAll: true}},
		{"src", "(FORMAT binary)", Options{Format: Binary}},
		{"single", "(FORMAT csv)", Options{Format: CSV}},
		{"single", "", Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.table+tt.with, func(t *testing.T) {
			o := tt.opts
			o.Columns = cols
			if tt.table == "single" {
				o.Columns = []string{"v"}
			}
			var rec chunkRecorder
			if _, err := pg.CopyTo(ctx, &rec, "COPY "+tt.table+" TO STDOUT "+tt.with); err != nil {
				t.Fatal(err)
			}
			in := bytes.Join(rec.chunks, nil)
			res := readChunks(t, o, rec.chunks...)
			if res.err != nil {
				t.Fatal(res.err)
			}
			w, err := NewWriter(o)
			if err != nil {
				t.Fatal(err)
			}
			var out []byte
			for _, row := range res.rows {
				if row.Header {
					if o.Format != Binary {
						// The header our Writer builds equals PostgreSQL's.
						if h, _ := w.AppendHeader(nil); string(h) != row.Raw {
							t.Errorf("header %q, postgres %q", h, row.Raw)
						}
					}
					out = append(out, row.Raw...)
					continue
				}
				out, _ = w.AppendRow(out, row.Fields)
			}
			if res.marker {
				out = w.AppendEnd(out)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("rewritten data differs:\n got %q\nwant %q", out, in)
			}
			if n := len(res.rows); n < len(oracleTexts) {
				t.Fatalf("only %d rows", n)
			}
		})
	}
}

// testCopyFrom loads inputs with PostgreSQL and with a Reader under the
// same options and compares what each made of them.
func testCopyFrom(ctx context.Context, t *testing.T, pg *pgconn.PgConn) {
	tests := []struct {
		with string
		opts Options
		in   string
	}{
		{"", Options{}, "a\t\\N\n\\\\N\t\\N\\N\nx\\ty\t\\101\\x41\\x4\\q\nl1\\\nl2\t\n"},
		{"", Options{}, "a\tb\r\nc\td\r\n\\.\r\njunk\n"},
		{"", Options{}, "a\tb\nlast\\.\n"},
		{"", Options{}, "a\tb\nc\td\\.x\n"},
		{"", Options{}, "a\tb\nc\td\r\n"},
		{"(DELIMITER '|', NULL '')", Options{Delimiter: '|', Null: str("")}, "|x\n\\|y|\n"},
		{"(HEADER)", Options{Header: true}, "col\tcol\n1\t2\n"},
		{"(FORMAT csv)", Options{Format: CSV}, "a,\n\"\",\"\"\"\"\nab\"c,d\"ef,\"x\ny\"\n\\.x,\\.\n\"\\.\",z\n"},
		{"(FORMAT csv)", Options{Format: CSV}, "a,b\n\\.\nignored,row\n"},
		{"(FORMAT csv)", Options{Format: CSV}, "\"open,x\n"},
		{"(FORMAT csv, HEADER)", Options{Format: CSV, Header: true}, "\"h\n1\",h2\n1,2\n"},
		{"(FORMAT csv, NULL 'NULL', FORCE_NOT_NULL (a), FORCE_NULL (b))",
			Options{Format: CSV, Null: str("NULL"), ForceNotNull: []string{"a"}, ForceNull: []string{"b"}},
			"NULL,NULL\n\"NULL\",\"NULL\"\n,\"\"\n"},
		{"(FORMAT csv, QUOTE '''', ESCAPE '\\', DELIMITER ';')", Options{Format: CSV, Quote: '\'', Escape: '\\', Delimiter: ';'},
			"'a\\'b';'c\\\\d\\e'\n'';x\\y\n"},
		{"(FORMAT csv, FORCE_NULL (a, b), FORCE_NOT_NULL (a, b))", Options{Format: CSV, ForceNull: []string{"a", "b"}, ForceNotNull: []string{"a", "b"}}, ",\"\"\n"},
	}
	for _, tt := range tests {
		t.Run(tt.with+fmt.Sprintf("%q", tt.in), func(t *testing.T) {
			o := tt.opts
			o.Columns = []string{"a", "b"}
			if _, err := pg.Exec(ctx, "TRUNCATE cf; ALTER SEQUENCE cf_id_seq RESTART").ReadAll(); err != nil {
				t.Fatal(err)
			}
			_, pgErr := pg.CopyFrom(ctx, strings.NewReader(tt.in), "COPY cf (a, b) FROM STDIN "+tt.with)
			res := readAll(t, o, []byte(tt.in))
			if (pgErr != nil) != (res.err != nil) {
				t.Fatalf("postgres: %v; reader: %v", pgErr, res.err)
			}
			if pgErr != nil {
				return
			}
			rows, err := pg.Exec(ctx, "SELECT a, b FROM cf ORDER BY id").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var want []rowCopy
			for _, r := range rows[0].Rows {
				want = append(want, rowCopy{Fields: r})
			}
			var got []rowCopy
			for _, r := range res.rows {
				if !r.Header {
					got = append(got, rowCopy{Fields: r.Fields})
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("reader %v\npostgres %v", got, want)
			}
			// What a Writer makes of the rows loads to the same values.
			if _, err := pg.Exec(ctx, "TRUNCATE cf; ALTER SEQUENCE cf_id_seq RESTART").ReadAll(); err != nil {
				t.Fatal(err)
			}
			data := writeAll(t, o, res)
			if _, err := pg.CopyFrom(ctx, bytes.NewReader(data), "COPY cf (a, b) FROM STDIN "+tt.with); err != nil {
				t.Fatalf("reloading %q: %v", data, err)
			}
			rows, err = pg.Exec(ctx, "SELECT a, b FROM cf ORDER BY id").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var again []rowCopy
			for _, r := range rows[0].Rows {
				again = append(again, rowCopy{Fields: r})
			}
			if fmt.Sprint(again) != fmt.Sprint(want) {
				t.Fatalf("reloaded %v\nfirst load %v", again, want)
			}
		})
	}
}
