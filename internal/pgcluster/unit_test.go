package pgcluster

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestFindBinDir(t *testing.T) {
	tests := []struct {
		name     string
		versions []string // directories with initdb and postgres
		broken   []string // directories missing postgres
		want     string   // "" means ErrNoServer
	}{
		{"none", nil, nil, ""},
		{"one", []string{"15"}, nil, "15"},
		{"numeric order", []string{"9.6", "15", "14"}, nil, "15"},
		{"skips incomplete", []string{"14"}, []string{"17"}, "14"},
		{"only incomplete", nil, []string{"17"}, ""},
		{"skips non-version", []string{"13", "latest"}, nil, "13"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			mk := func(version string, progs ...string) {
				bin := filepath.Join(root, version, "bin")
				if err := os.MkdirAll(bin, 0o755); err != nil {
					t.Fatal(err)
				}
				for _, p := range progs {
					if err := os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, v := range tt.versions {
				mk(v, "initdb", "postgres")
			}
			for _, v := range tt.broken {
				mk(v, "initdb")
			}
			got, err := findBinDir(filepath.Join(root, "*", "bin"))
			if tt.want == "" {
				if !errors.Is(err, ErrNoServer) {
					t.Fatalf("findBinDir = %q, %v; want ErrNoServer", got, err)
				}
				return
			}
			if want := filepath.Join(root, tt.want, "bin"); got != want || err != nil {
				t.Fatalf("findBinDir = %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestQuoteConnValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"", "''"},
		{"two words", "'two words'"},
		{`it's`, `'it\'s'`},
		{`back\slash`, `'back\\slash'`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := quoteConnValue(tt.in)
			if got != tt.want {
				t.Fatalf("quoteConnValue(%q) = %s, want %s", tt.in, got, tt.want)
			}
			// pgconn parses it back to the same value.
			cfg, err := pgconn.ParseConfig("host=127.0.0.1 sslmode=disable user=u password=" + got)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Password != tt.in {
				t.Errorf("round trip gave %q", cfg.Password)
			}
		})
	}
}

func TestRenderSettings(t *testing.T) {
	tests := []struct {
		name    string
		in      []setting
		want    string
		wantErr bool
	}{
		{"plain", []setting{{"work_mem", "8MB"}}, "work_mem = '8MB'\n", false},
		{"quote and backslash", []setting{{"application_name", `it's \ odd`}}, `application_name = 'it''s \\ odd'` + "\n", false},
		{"dotted name", []setting{{"pgseal.test", "1"}}, "pgseal.test = '1'\n", false},
		{"bad name", []setting{{"a=b", "1"}}, "", true},
		{"newline", []setting{{"a", "1\n2"}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := renderSettings(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrBadOption) {
					t.Fatalf("error = %v, want ErrBadOption", err)
				}
				return
			}
			if err != nil || !strings.HasSuffix(got, tt.want) {
				t.Fatalf("renderSettings = %q, %v; want suffix %q", got, err, tt.want)
			}
		})
	}
}
