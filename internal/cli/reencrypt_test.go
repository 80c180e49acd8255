package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDatabaseCommandUsage covers the refusals of reencrypt, encrypt-column,
// decrypt-column and keys disable --check-db that come before any database
// connection. The commands at work are tested end to end in e2e.
func TestDatabaseCommandUsage(t *testing.T) {
	dir := t.TempDir()
	ks, mk := filepath.Join(dir, "ks.json"), "file:"+filepath.Join(dir, "master.key")
	keys := []string{"--keystore", ks, "--master-key", mk}
	runSteps(t, []step{
		{name: "init", args: append([]string{"keys", "init"}, keys...)},
		{name: "add", args: append([]string{"keys", "add", "pii"}, keys...)},
	})
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte("version: 1\ntables:\n  public.users:\n    email: {type: text, mode: deterministic, key: pii}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\ntables:\n  public.users:\n    email: {type: nope, mode: deterministic, key: pii}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Never dialled: every case fails before connecting.
	dsn := "host=127.0.0.1 port=1 user=nobody dbname=nothing connect_timeout=1"
	db := append([]string{"--dsn", dsn, "--policy", pol}, keys...)
	with := func(args ...string) []string { return append(args, db...) }

	runSteps(t, []step{
		{"no dsn", append([]string{"reencrypt", "--all", "--policy", pol}, keys...), ExitUsage, "no database"},
		{"bad dsn", append([]string{"reencrypt", "--all", "--dsn", "port=notanumber", "--policy", pol}, keys...), ExitConfig, "connection string"},
		{"no policy", append([]string{"reencrypt", "--all", "--dsn", dsn}, keys...), ExitUsage, "no policy"},
		{"invalid policy", append([]string{"reencrypt", "--all", "--dsn", dsn, "--policy", bad}, keys...), ExitConfig, "bad.yaml:4"},
		{"no keystore", []string{"reencrypt", "--all", "--dsn", dsn, "--policy", pol}, ExitUsage, "--keystore"},
		{"wrong master key", []string{"reencrypt", "--all", "--dsn", dsn, "--policy", pol, "--keystore", ks, "--master-key", "file:" + filepath.Join(dir, "missing.key")}, ExitMasterKey, ""},
		{"nothing chosen", with("reencrypt"), ExitUsage, "--table"},
		{"all and table", with("reencrypt", "--all", "--table", "users"), ExitUsage, "--all excludes"},
		{"table not in policy", with("reencrypt", "--table", "orders"), ExitUsage, "not in the policy"},
		{"column not in policy", with("reencrypt", "--table", "users", "--column", "ssn"), ExitUsage, `users\.ssn is not in the policy`},
		{"bad progress", with("reencrypt", "--table", "users", "--progress", "fancy"), ExitUsage, "--progress"},
		{"encrypt without column", with("encrypt-column", "--table", "users"), ExitUsage, "--column"},
		{"finish and abort", with("encrypt-column", "--table", "users", "--column", "email", "--finish", "--abort"), ExitUsage, "exclude each other"},
		{"decrypt column not in policy", with("decrypt-column", "--table", "users", "--column", "name"), ExitUsage, "not in the policy"},
		{"check-db without dsn", append([]string{"keys", "disable", "pii", "--version", "1", "--check-db"}, keys...), ExitUsage, "--check-db needs"},
	})
}
