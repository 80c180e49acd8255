package rewrite

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// FuzzAnalyze checks that analysis never panics, that every plan it makes
// can be applied to its text, and that the rewritten text still parses.
func FuzzAnalyze(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.txtar"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		ar, err := readArchive(file)
		if err != nil {
			f.Fatal(err)
		}
		for _, sf := range ar.files {
			if strings.HasSuffix(sf.name, ".sql") {
				f.Add(strings.TrimSuffix(string(sf.data), "\n"))
			}
		}
	}
	pol := loadTestPolicy(f)
	analyzers := []*Analyzer{New(pol, WithCatalog(newTestCatalog())), New(pol)}
	f.Fuzz(func(t *testing.T, sql string) {
		for _, az := range analyzers {
			plan, err := az.Analyze(sql, []string{"app", "public"})
			if err != nil {
				var r *Refusal
				if !errors.As(err, &r) || r.SQLState == "" || r.Message == "" {
					t.Fatalf("error is not a refusal: %v", err)
				}
				continue
			}
			plan, err = plan.BindExecute(func(string) (*Statement, bool) { return &Statement{}, true })
			if err != nil {
				continue
			}
			for _, st := range plan.Statements {
				for _, l := range st.Literals {
					if l.Offset < 0 || l.Length <= 0 || l.Offset+l.Length > len(sql) || l.Column == nil {
						t.Fatalf("bad literal span %d+%d in %d bytes", l.Offset, l.Length, len(sql))
					}
				}
			}
			out, err := plan.Rewrite(sql, fakeEncrypt)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			if out != sql {
				if _, err := pg.Parse(out); err != nil {
					t.Fatalf("rewritten text does not parse: %v\nin:  %s\nout: %s", err, sql, out)
				}
			}
		}
	})
}
