package rewrite

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestPrefilter(t *testing.T) {
	p := newPrefilter([]string{"users", "email", "MixedCase", strings.Repeat("x", 63)}, forceParse)
	tests := []struct {
		name, sql string
		want      bool
	}{
		{"plain", "SELECT id FROM orders WHERE total > $1", false},
		{"table", "select * from users", true},
		{"upper", "SELECT * FROM USERS", true},
		{"column", "UPDATE t SET Email = 1", true},
		{"quoted", `SELECT * FROM "users"`, true},
		{"quoted mixed case", `SELECT * FROM "MixedCase".t`, true},
		{"quoted with escape", `SELECT "a""b" FROM t`, false},
		{"unicode escape ident", `SELECT * FROM U&"\0075sers"`, true},
		{"glued number", "SELECT 1users", true},
		{"dollar pieces", "DO $x$BEGIN PERFORM 1 FROM a$users$x$", true},
		{"longer than 63 bytes", "SELECT * FROM " + strings.Repeat("x", 70), true},
		{"prefix only", "SELECT * FROM user", false},
		{"suffix", "SELECT * FROM users2", false},
		{"execute keyword", "EXECUTE p(1)", true},
		{"search_path", "SET search_path = a", true},
		{"reset", "RESET ALL", true},
		{"discard", "DISCARD ALL", true},
		{"string literal counts", "SELECT 'users'", true},
		{"non-ascii fold", "SELECT * FROM ÜSERS", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.mayMention(tt.sql); got != tt.want {
				t.Errorf("mayMention(%q) = %v, want %v", tt.sql, got, tt.want)
			}
		})
	}
}

func TestRewriteSpacingAndOwnership(t *testing.T) {
	az := New(loadTestPolicy(t), WithCatalog(newTestCatalog()))
	sql := "SELECT id FROM users WHERE email='a'AND ssn IS NULL"
	plan, err := az.Analyze(sql, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := plan.Rewrite(sql, func(Literal) ([]byte, error) { return []byte{0xde, 0xad}, nil })
	if err != nil {
		t.Fatal(err)
	}
	if want := `SELECT id FROM users WHERE email=E'\\xdead'::bytea AND ssn IS NULL`; out != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	errBoom := errors.New("boom")
	if _, err := plan.Rewrite(sql, func(Literal) ([]byte, error) { return nil, errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("encrypt error not wrapped: %v", err)
	}
	if _, err := plan.Rewrite("short", fakeEncrypt); !errors.Is(err, ErrPlanMismatch) {
		t.Errorf("mismatched text: %v", err)
	}
}

func TestLiteralRedacts(t *testing.T) {
	az := New(loadTestPolicy(t))
	plan, err := az.Analyze("INSERT INTO users (email) VALUES ('topsecret')", []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	l := plan.Statements[0].Literals[0]
	for _, s := range []string{fmt.Sprint(l), fmt.Sprintf("%v %+v %#v %s %q", l, l, l, l, l), fmt.Sprint(plan.Statements[0].Literals)} {
		if strings.Contains(s, "topsecret") {
			t.Errorf("literal printed its value: %s", s)
		}
	}
}

func TestRefusalNeverQuotesText(t *testing.T) {
	az := New(loadTestPolicy(t))
	for _, sql := range []string{
		"INSERT INTO users (email) VALUES ('topsecret' 'x')",
		"SELECT id FROM users WHERE email = lower('topsecret')",
		"SELECT id FROM users WHERE ssn = 'topsecret'",
	} {
		_, err := az.Analyze(sql, []string{"public"})
		var r *Refusal
		if !errors.As(err, &r) {
			t.Fatalf("%s: want a refusal, got %v", sql, err)
		}
		if strings.Contains(r.Error(), "topsecret") {
			t.Errorf("refusal quotes the text: %s", r)
		}
	}
}

func TestPlanCache(t *testing.T) {
	az := New(loadTestPolicy(t), WithCacheSize(2, 1<<20))
	path := []string{"public"}
	q := func(i int) string { return fmt.Sprintf("SELECT email FROM users WHERE id = %d", i) }
	p1, _ := az.Analyze(q(1), path)
	if p, _ := az.Analyze(q(1), path); p != p1 {
		t.Error("second Analyze did not hit the cache")
	}
	if p, _ := az.Analyze(q(1), []string{"app"}); p == p1 {
		t.Error("search_path is not part of the cache key")
	}
	az.Analyze(q(2), path)
	az.Analyze(q(3), path)
	if n := az.CacheLen(); n != 2 {
		t.Errorf("CacheLen = %d, want 2", n)
	}
	if p, _ := az.Analyze(q(1), path); p == p1 {
		t.Error("least recently used entry was not evicted")
	}
	_, err1 := az.Analyze("SELECT email FROM users ORDER BY email", path)
	_, err2 := az.Analyze("SELECT email FROM users ORDER BY email", path)
	if err1 == nil || err1 != err2 {
		t.Error("refusals are not cached")
	}
	az.Purge()
	if n := az.CacheLen(); n != 0 {
		t.Errorf("CacheLen after Purge = %d", n)
	}
}

func TestAnalyzeConcurrent(t *testing.T) {
	az := New(loadTestPolicy(t), WithCatalog(newTestCatalog()), WithCacheSize(8, 1<<20))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		// Owned by the test; ends after its loop.
		go func() {
			defer wg.Done()
			for i := range 50 {
				sql := fmt.Sprintf("SELECT email FROM users WHERE email = 'x%d'", (i+g)%12)
				plan, err := az.Analyze(sql, []string{"public"})
				if err != nil || len(plan.Statements[0].Literals) != 1 {
					t.Errorf("Analyze: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestBindExecuteKeepsCachedPlan(t *testing.T) {
	az := New(loadTestPolicy(t))
	path := []string{"public"}
	prep, err := az.Analyze("PREPARE p(text) AS SELECT id FROM users WHERE email = $1", path)
	if err != nil {
		t.Fatal(err)
	}
	inner := prep.Statements[0].Prepare.Statement
	plan, err := az.Analyze("EXECUTE p('a')", path)
	if err != nil {
		t.Fatal(err)
	}
	bound, err := plan.BindExecute(func(string) (*Statement, bool) { return inner, true })
	if err != nil {
		t.Fatal(err)
	}
	if len(bound.Statements[0].Literals) != 1 || len(plan.Statements[0].Literals) != 0 {
		t.Error("BindExecute must return a new plan and leave the cached one alone")
	}
}
