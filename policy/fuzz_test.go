package policy

import (
	"os"
	"path/filepath"
	"testing"
)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if p != nil {
				t.Fatal("non-nil policy with an error")
			}
			return
		}
		for _, tab := range p.Tables() {
			if got, ok := p.Table(tab.Name.Schema, tab.Name.Name); !ok || got != tab {
				t.Fatalf("table %s not found by name", tab.Name)
			}
			for _, c := range tab.Columns() {
				if got, ok := tab.Column(c.Name); !ok || got != c {
					t.Fatalf("column %s not found by name", c)
				}
				if c.Mode != Randomized && c.Mode != Deterministic || c.KeySet == "" {
					t.Fatalf("invalid column accepted: %+v", c)
				}
				// Names round-trip through their SQL spelling.
				q, err := ParseQualifiedName(c.Table.String())
				if err != nil || q != c.Table {
					t.Fatalf("table name %q does not round-trip: %v %v", c.Table.String(), q, err)
				}
			}
		}
	})
}
