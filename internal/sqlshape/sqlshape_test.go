package sqlshape

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name, sql, want string
	}{
		{"string and comments", "SELECT * FROM t WHERE ssn = 'SECRET' /* SECRET2 */ -- SECRET3\n AND x = 5", "SELECT * FROM t WHERE ssn = ? AND x = ?"},
		{"every literal kind", "INSERT INTO t VALUES (E'\\x41SECRET', $1, 12.5, B'101', X'1F', U&'SECRET')", "INSERT INTO t VALUES (?, $1, ?, ?, ?, ?)"},
		{"dollar quoting", "DO $$ BEGIN PERFORM 'SECRET'; END $$; SELECT $tag$SECRET$tag$", "DO ?; SELECT ?"},
		{"prepare and execute", "PREPARE p AS SELECT 'SECRET'; EXECUTE p('SECRET2')", "PREPARE p AS SELECT ?; EXECUTE p(?)"},
		{"password", "ALTER ROLE bob PASSWORD 'SECRET'", "ALTER ROLE bob PASSWORD ?"},
		{"does not parse", "SELECT 'SECRET' AND", "SELECT ? AND"},
		{"identifiers kept", `SELECT "Quoted", t.c::jsonb FROM s.t`, `SELECT "Quoted", t.c::jsonb FROM s.t`},
		{"does not scan", "SELECT 'SECRET", "(statement of 14 bytes that does not scan)"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Of(tt.sql)
			if got != tt.want {
				t.Fatalf("Of(%q)\n got %q\nwant %q", tt.sql, got, tt.want)
			}
			if strings.Contains(got, "SECRET") {
				t.Fatalf("a value survived: %q", got)
			}
		})
	}
}

func TestOfBoundsLength(t *testing.T) {
	long := "SELECT " + strings.Repeat("é_column, ", MaxLen) + "x"
	got := Of(long)
	if len(got) > MaxLen+3 || !strings.HasSuffix(got, "...") || !utf8.ValidString(got) {
		t.Fatalf("shape of %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

func seeds(tb testing.TB) []string {
	tb.Helper()
	f, err := os.Open("testdata/statements.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// FuzzOf: any text gives a bounded, stable shape without a panic, and a
// secret placed in a string literal of an otherwise plain statement never
// survives.
func FuzzOf(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, "SECRET")
	}
	f.Fuzz(func(t *testing.T, sql, secret string) {
		got := Of(sql)
		if len(got) > MaxLen+3 || Of(sql) != got {
			t.Fatalf("unbounded or unstable shape for %q", sql)
		}
		if len(secret) < 4 || strings.ContainsAny(secret, "'\\") || !utf8.ValidString(secret) || strings.ContainsRune(secret, 0) {
			return
		}
		wrapped := "SELECT a FROM t WHERE b = '" + secret + "'"
		if strings.Contains(Of(wrapped), secret) {
			t.Fatalf("secret %q survived in %q", secret, Of(wrapped))
		}
	})
}
