package rewrite

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgseal/pgseal/policy"
)

var update = flag.Bool("update", false, "rewrite the golden sections of testdata/*.txtar")

// testCatalog is a fixed catalog for the golden tests.
type testCatalog struct {
	cols  map[policy.QualifiedName][]string
	views map[policy.QualifiedName]string
}

func (c *testCatalog) Columns(schema, rel string) ([]string, bool) {
	cols, ok := c.cols[policy.QualifiedName{Schema: schema, Name: rel}]
	return cols, ok
}

func (c *testCatalog) ViewQuery(schema, view string) (string, bool) {
	q, ok := c.views[policy.QualifiedName{Schema: schema, Name: view}]
	return q, ok
}

func (c *testCatalog) Views() []policy.QualifiedName {
	var out []policy.QualifiedName
	for v := range c.views {
		out = append(out, v)
	}
	return out
}

func newTestCatalog() *testCatalog {
	q := func(s, n string) policy.QualifiedName { return policy.QualifiedName{Schema: s, Name: n} }
	c := &testCatalog{
		cols: map[policy.QualifiedName][]string{
			q("public", "users"):          {"id", "email", "ssn", "born", "score", "active", "name"},
			q("public", "payroll"):        {"id", "user_id", "salary", "email"},
			q("public", "contacts"):       {"id", "user_id", "email", "phone"},
			q("public", "orders"):         {"id", "user_id", "total", "note"},
			q("app", "accounts"):          {"id", "iban", "owner"},
			q("app", "users"):             {"id", "nick"},
			q("MixedCase", "Secrets"):     {"id", "Token"},
			q("public", "user_emails"):    {"id", "address"},
			q("public", "order_totals"):   {"user_id", "total"},
			q("public", "all_emails"):     {"email"},
			q("public", "sorted_users"):   {"email"},
			q("public", "emails_of_ids"):  {"id", "email"},
			q("public", "users_archive"):  {"id", "email", "ssn", "born", "score", "active", "name"},
			q("pg_catalog", "pg_class"):   {"oid", "relname"},
			q("public", "orders_summary"): {"user_id", "n"},
		},
		views: map[policy.QualifiedName]string{
			q("public", "user_emails"):    "SELECT u.id, u.email AS address FROM public.users u",
			q("public", "order_totals"):   "SELECT orders.user_id, sum(orders.total) AS total FROM public.orders GROUP BY orders.user_id",
			q("public", "all_emails"):     "SELECT users.email FROM public.users UNION ALL SELECT payroll.email FROM public.payroll",
			q("public", "sorted_users"):   "SELECT users.email FROM public.users ORDER BY users.email",
			q("public", "emails_of_ids"):  "SELECT e.id, e.address AS email FROM public.user_emails e",
			q("public", "orders_summary"): "SELECT orders.user_id, count(*) AS n FROM public.orders GROUP BY orders.user_id",
		},
	}
	return c
}

func loadTestPolicy(tb testing.TB) *policy.Policy {
	tb.Helper()
	p, err := policy.Load(filepath.Join("testdata", "policy.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// fakeEncrypt stands in for encryption: the "ciphertext" is the column
// name, so golden files stay short and show which column a value is for.
func fakeEncrypt(l Literal) ([]byte, error) { return []byte(l.Column.Name), nil }

// fileOptions reads "key: value" lines from a txtar comment.
func fileOptions(comment []byte) (path []string, catalog bool) {
	path, catalog = []string{"\"$user\"", "public"}, true
	for _, line := range strings.Split(string(comment), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "search_path":
			path = nil
			for _, s := range strings.Split(v, ",") {
				path = append(path, strings.TrimSpace(s))
			}
		case "catalog":
			catalog = v != "none"
		}
	}
	return path, catalog
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	pol := loadTestPolicy(t)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := readArchive(file)
			if err != nil {
				t.Fatal(err)
			}
			path, withCatalog := fileOptions(ar.comment)
			var opts []Option
			if withCatalog {
				opts = append(opts, WithCatalog(newTestCatalog()))
			}
			az := New(pol, opts...)
			prepared := map[string]*Statement{}
			changed := false
			for i := 0; i < len(ar.files); i++ {
				f := ar.files[i]
				if !strings.HasSuffix(f.name, ".sql") {
					continue
				}
				name := strings.TrimSuffix(f.name, ".sql")
				got := runCase(az, strings.TrimSuffix(string(f.data), "\n"), path, prepared)
				outName := name + ".out"
				if i+1 < len(ar.files) && ar.files[i+1].name == outName {
					if string(ar.files[i+1].data) != got {
						if *update {
							ar.files[i+1].data = []byte(got)
							changed = true
						} else {
							t.Errorf("%s:\n--- got ---\n%s--- want ---\n%s", name, got, ar.files[i+1].data)
						}
					}
					i++
					continue
				}
				if !*update {
					t.Errorf("%s: no %s section (run go test -update)", name, outName)
					continue
				}
				ar.files = append(ar.files[:i+1], append([]archiveFile{{name: outName, data: []byte(got)}}, ar.files[i+1:]...)...)
				changed = true
				i++
			}
			if changed {
				if err := os.WriteFile(file, ar.format(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// runCase analyses one case, updates the simulated session and renders the
// outcome.
func runCase(az *Analyzer, sql string, path []string, prepared map[string]*Statement) string {
	var b strings.Builder
	plan, err := az.Analyze(sql, path)
	if err == nil {
		plan, err = plan.BindExecute(func(name string) (*Statement, bool) {
			s, ok := prepared[name]
			return s, ok
		})
	}
	if err != nil {
		var r *Refusal
		if errors.As(err, &r) {
			fmt.Fprintf(&b, "refused %s: %s\n", r.SQLState, r.Message)
		} else {
			fmt.Fprintf(&b, "error: %v\n", err)
		}
		return b.String()
	}
	if plan.Statements == nil {
		b.WriteString("fast path: pass through\n")
		return b.String()
	}
	for i, st := range plan.Statements {
		fmt.Fprintf(&b, "statement %d: %s", i+1, st.Kind)
		if st.IsPassthrough() {
			b.WriteString(" (pass through)")
		}
		b.WriteString("\n")
		describe(&b, sql, st, "  ")
		if st.Prepare != nil {
			prepared[st.Prepare.Name] = st.Prepare.Statement
		}
		if d := st.Deallocate; d != nil {
			if d.All {
				clear(prepared)
			} else {
				delete(prepared, d.Name)
			}
		}
	}
	if plan.NeedsRewrite() {
		out, err := plan.Rewrite(sql, fakeEncrypt)
		if err != nil {
			fmt.Fprintf(&b, "rewrite error: %v\n", err)
		} else {
			fmt.Fprintf(&b, "rewritten: %s\n", out)
		}
	}
	return b.String()
}

func describe(b *strings.Builder, sql string, st *Statement, ind string) {
	for n, c := range st.Params {
		if c != nil {
			fmt.Fprintf(b, "%sparam $%d -> %s (%s)\n", ind, n+1, c, c.Mode)
		}
	}
	for _, l := range st.Literals {
		fmt.Fprintf(b, "%sliteral %q %s %q -> %s (%s)\n", ind, sql[l.Offset:l.Offset+l.Length], kindName(l.Kind), l.Value, l.Column, l.Column.Mode)
	}
	for i, r := range st.Results {
		if r.Column == nil {
			continue
		}
		fmt.Fprintf(b, "%sresult %d: %s", ind, i+1, r.Column)
		for _, alt := range r.Alternatives {
			fmt.Fprintf(b, " | %s", alt)
		}
		if r.Direct {
			b.WriteString(" (direct)")
		}
		b.WriteString("\n")
	}
	if st.Results != nil {
		fmt.Fprintf(b, "%sresult columns: %d\n", ind, len(st.Results))
	}
	if st.ResultsFromRowDescription {
		fmt.Fprintf(b, "%sresults: from RowDescription\n", ind)
	}
	if p := st.Prepare; p != nil {
		fmt.Fprintf(b, "%sprepare %q: %s\n", ind, p.Name, p.Statement.Kind)
		describe(b, sql, p.Statement, ind+"  ")
	}
	if x := st.Execute; x != nil {
		fmt.Fprintf(b, "%sexecute %q with %d args\n", ind, x.Name, x.Args)
	}
	if d := st.Deallocate; d != nil {
		fmt.Fprintf(b, "%sdeallocate %q all=%v\n", ind, d.Name, d.All)
	}
	if s := st.SearchPath; s != nil {
		fmt.Fprintf(b, "%ssearch_path %q reset=%v local=%v\n", ind, s.Path, s.Reset, s.Local)
	}
	if c := st.Copy; c != nil {
		fmt.Fprintf(b, "%scopy %s columns=%q from=%v program=%v file=%q options=%v\n", ind, c.Table, c.Columns, c.From, c.Program, c.File, c.Options)
		if c.Query != nil {
			describe(b, sql, c.Query, ind+"  ")
		}
	}
}

func kindName(k LiteralKind) string {
	switch k {
	case LiteralString:
		return "string"
	case LiteralInteger:
		return "integer"
	case LiteralFloat:
		return "float"
	case LiteralBool:
		return "bool"
	}
	return "?"
}
