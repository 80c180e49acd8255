package policy

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgseal/pgseal/codec"
)

func TestLoadValid(t *testing.T) {
	p, err := Load(filepath.Join("testdata", "valid.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := p.KeySets(), []string{"finance", "pii"}; !reflect.DeepEqual(got, want) {
		t.Errorf("KeySets = %v, want %v", got, want)
	}
	tests := []struct {
		schema, table, column string
		typ                   codec.Type
		mode                  Mode
		keySet                string
	}{
		{"public", "users", "email", codec.Text, Deterministic, "pii"},
		{"public", "users", "ssn", codec.Text, Randomized, "pii"},
		{"public", "payroll", "salary", codec.Numeric, Randomized, "finance"},
		{"MixedCase", "accounts", "IBAN", codec.Varchar, Deterministic, "finance"},
		{"MixedCase", "accounts", "born", codec.Date, Randomized, "pii"},
	}
	for _, tt := range tests {
		t.Run(tt.schema+"."+tt.table+"."+tt.column, func(t *testing.T) {
			tab, ok := p.Table(tt.schema, tt.table)
			if !ok {
				t.Fatalf("Table(%q, %q) not found", tt.schema, tt.table)
			}
			c, ok := tab.Column(tt.column)
			if !ok {
				t.Fatalf("Column(%q) not found", tt.column)
			}
			if c.Type != tt.typ || c.Mode != tt.mode || c.KeySet != tt.keySet || c.Name != tt.column ||
				c.Table != (QualifiedName{tt.schema, tt.table}) {
				t.Errorf("column = %+v", c)
			}
		})
	}
	if _, ok := p.Table("public", "Users"); ok {
		t.Error("lookup must be by normalised name")
	}
	if got := len(p.Tables()); got != 3 {
		t.Errorf("len(Tables) = %d, want 3", got)
	}
	tab, _ := p.Table("MixedCase", "accounts")
	if got := tab.Columns(); got[0].Name != "IBAN" || got[1].Name != "born" {
		t.Errorf("Columns not in file order: %v, %v", got[0], got[1])
	}
	if got, want := tab.Columns()[0].String(), `"MixedCase".accounts."IBAN"`; got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "invalid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(data, "invalid.yaml")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	want := []string{
		`invalid.yaml:4:56: column public.users.email: unknown key "extra"`,
		`invalid.yaml:5:5: duplicate column public.users.email`,
		`invalid.yaml:6:19: column public.users.age: unknown type "integer"`,
		`invalid.yaml:7:31: column public.users.ssn: unknown mode "scrambled"`,
		`invalid.yaml:8:12: column public.users.note: missing key "key"`,
		`invalid.yaml:9:3: duplicate table public.users`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d errors:\n%v", len(got), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
	var perr *Error
	if !errors.As(err, &perr) || perr.Line != 4 {
		t.Errorf("errors.As: %+v", perr)
	}
}

func TestParseErrorCases(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "", "f.yaml: empty policy"},
		{"syntax", "version: 1\ntables: [", "f.yaml: line"},
		{"not a mapping", "- 1\n", "f.yaml:1:1: policy must be a mapping"},
		{"unknown top key", "version: 1\ntables: {}\nextra: 2\n", `f.yaml:3:1: unknown key "extra"`},
		{"missing version", "tables: {}\n", `f.yaml:1:1: missing key "version"`},
		{"bad version", "version: 2\ntables: {}\n", `f.yaml:1:10: unsupported version "2"`},
		{"string version", "version: '1'\ntables: {}\n", `f.yaml:1:10: unsupported version "1"`},
		{"missing tables", "version: 1\n", `f.yaml:1:1: missing key "tables"`},
		{"duplicate top key", "version: 1\nversion: 1\ntables: {}\n", `f.yaml:2:1: policy: duplicate key "version"`},
		{"bad table name", "version: 1\ntables:\n  a.b.c: {x: {type: text, mode: randomized, key: k}}\n", `f.yaml:3:3: table "a.b.c": too many dotted parts`},
		{"unterminated quote", "version: 1\ntables:\n  '\"a': {x: {type: text, mode: randomized, key: k}}\n", `unterminated quoted identifier`},
		{"too long", "version: 1\ntables:\n  " + strings.Repeat("a", 64) + ": {x: {type: text, mode: randomized, key: k}}\n", `longer than 63 bytes`},
		{"dup table after folding", "version: 1\ntables:\n  Users: {x: {type: text, mode: randomized, key: k}}\n  public.users: {y: {type: text, mode: randomized, key: k}}\n", `f.yaml:4:3: duplicate table public.users`},
		{"no columns", "version: 1\ntables:\n  t: {}\n", `f.yaml:3:6: table public.t has no columns`},
		{"column not mapping", "version: 1\ntables:\n  t: {x: text}\n", `f.yaml:3:10: column public.t.x must be a mapping`},
		{"missing type", "version: 1\ntables:\n  t: {x: {mode: randomized, key: k}}\n", `missing key "type"`},
		{"missing mode", "version: 1\ntables:\n  t: {x: {type: text, key: k}}\n", `missing key "mode"`},
		{"bad key set", "version: 1\ntables:\n  t: {x: {type: text, mode: randomized, key: 'a b'}}\n", `invalid key set name "a b"`},
		{"alias", "version: 1\ntables:\n  t: &a {x: {type: text, mode: randomized, key: k}}\n  u: *a\n", `YAML aliases are not allowed`},
		{"two documents", "version: 1\ntables: {}\n---\nversion: 1\n", `more than one YAML document`},
		{"type not scalar", "version: 1\ntables:\n  t: {x: {type: [text], mode: randomized, key: k}}\n", `type must be a scalar`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "f.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("err does not wrap ErrInvalid")
			}
		})
	}
}

func TestEmptyTables(t *testing.T) {
	p, err := Parse([]byte("version: 1\ntables:\n"), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tables()) != 0 || len(p.KeySets()) != 0 {
		t.Errorf("want an empty policy")
	}
}

func TestValidate(t *testing.T) {
	p, err := Load(filepath.Join("testdata", "valid.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	errs := p.Validate(func(k string) bool { return k == "pii" })
	if len(errs) != 2 {
		t.Fatalf("got %v", errs)
	}
	want := `testdata/valid.yaml:7:56: column public.payroll.salary: key set "finance" does not exist in the keystore`
	if errs[0].Error() != want {
		t.Errorf("got %q\nwant %q", errs[0], want)
	}
	if errs := p.Validate(func(string) bool { return true }); errs != nil {
		t.Errorf("got %v", errs)
	}
}

func TestParseQualifiedName(t *testing.T) {
	tests := []struct {
		in   string
		want QualifiedName
		err  bool
	}{
		{"users", QualifiedName{"public", "users"}, false},
		{"Users", QualifiedName{"public", "users"}, false},
		{"App.Users", QualifiedName{"app", "users"}, false},
		{`"App"."Users"`, QualifiedName{"App", "Users"}, false},
		{`"a.b"."c""d"`, QualifiedName{"a.b", `c"d`}, false},
		{`"MixedCase".t`, QualifiedName{"MixedCase", "t"}, false},
		{"a_1$", QualifiedName{"public", "a_1$"}, false},
		{"1a", QualifiedName{}, true},
		{"a b", QualifiedName{}, true},
		{`""`, QualifiedName{}, true},
		{"a.", QualifiedName{}, true},
		{`"a"b`, QualifiedName{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseQualifiedName(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParseQualifiedName(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestQuoteIdent(t *testing.T) {
	for in, want := range map[string]string{"users": "users", "Users": `"Users"`, `a"b`: `"a""b"`, "1a": `"1a"`, "a b": `"a b"`} {
		if got := QuoteIdent(in); got != want {
			t.Errorf("QuoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
}
