package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
)

// runCLI runs pgseal in-process with args and an empty, non-terminal stdin.
func runCLI(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errw)
	return code, out.String(), errw.String()
}

// step is one CLI invocation and what it must produce.
type step struct {
	name     string
	args     []string
	wantCode int
	wantOut  string // regular expression the output (stdout+stderr) must match
}

func runSteps(t testing.TB, steps []step) {
	t.Helper()
	for _, st := range steps {
		code, out, errw := runCLI(t, st.args...)
		if code != st.wantCode {
			t.Fatalf("%s: pgseal %s: exit %d, want %d\nstdout: %s\nstderr: %s", st.name, strings.Join(st.args, " "), code, st.wantCode, out, errw)
		}
		if st.wantOut != "" && !regexp.MustCompile(st.wantOut).MatchString(out+errw) {
			t.Fatalf("%s: output does not match %q:\nstdout: %s\nstderr: %s", st.name, st.wantOut, out, errw)
		}
	}
}

// sealValue seals pt under the primary version of keySet in public.users.email.
func sealValue(t testing.TB, ks *keystore.Keystore, keySet string, mode envelope.Mode, pt string) []byte {
	t.Helper()
	c, err := ks.Column(keySet, "public.users", "email", mode)
	if err != nil {
		t.Fatal(err)
	}
	env, err := c.Seal(nil, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func openValue(t testing.TB, ks *keystore.Keystore, keySet string, mode envelope.Mode, env []byte) (string, error) {
	t.Helper()
	c, err := ks.Column(keySet, "public.users", "email", mode)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := c.Open(nil, env)
	return string(pt), err
}

func openKeystore(t testing.TB, path, spec string) *keystore.Keystore {
	t.Helper()
	mk, err := keystore.ParseMasterKeySource(spec)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := keystore.Open(context.Background(), path, mk)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// TestKeysLifecycle walks init → add → rotate → list → disable → rewrap and
// checks that values sealed before the rewrap still open after it.
func TestKeysLifecycle(t *testing.T) {
	dir := t.TempDir()
	ksPath := filepath.Join(dir, "keystore.json")
	keyPath := filepath.Join(dir, "secrets", "master.key")
	oldMK := "file:" + keyPath
	flags := func(mk string, args ...string) []string {
		return append(args, "--keystore", ksPath, "--master-key", mk)
	}
	newKey := bytes.Repeat([]byte{0x5e}, 32)
	t.Setenv("PGSEAL_TEST_NEW_MASTER_KEY", base64.StdEncoding.EncodeToString(newKey))
	newMK := "env:PGSEAL_TEST_NEW_MASTER_KEY"

	runSteps(t, []step{
		{"init", flags(oldMK, "keys", "init"), ExitOK, `created master key file:.*master\.key.*\n.*created keystore`},
		{"init again", flags(oldMK, "keys", "init"), ExitKeystore, `already exists`},
		{"add pii", flags(oldMK, "keys", "add", "pii"), ExitOK, `added key set pii \(id 0x[0-9a-f]{8}\), version 1 is primary`},
		{"add finance", flags(oldMK, "keys", "add", "finance"), ExitOK, ``},
		{"add pii again", flags(oldMK, "keys", "add", "pii"), ExitUsage, `already exists`},
		{"add bad name", flags(oldMK, "keys", "add", "Bad Name"), ExitUsage, `invalid key set name`},
	})
	if fi, err := os.Stat(keyPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v, mode %v", err, fi.Mode())
	}

	ks := openKeystore(t, ksPath, oldMK)
	piiV1 := sealValue(t, ks, "pii", envelope.Randomized, "sealed under pii v1")
	financeV1 := sealValue(t, ks, "finance", envelope.Deterministic, "sealed under finance v1")

	runSteps(t, []step{
		{"rotate", flags(oldMK, "keys", "rotate", "pii"), ExitOK, `key set pii: version 2 is primary, version 1 stays active`},
		{"rotate unknown", flags(oldMK, "keys", "rotate", "nope"), ExitUsage, `unknown key set`},
	})
	ks = openKeystore(t, ksPath, oldMK)
	piiV2 := sealValue(t, ks, "pii", envelope.Randomized, "sealed under pii v2")
	if got, err := openValue(t, ks, "pii", envelope.Randomized, piiV1); err != nil || got != "sealed under pii v1" {
		t.Fatalf("v1 value after rotate: %q, %v", got, err)
	}

	code, out, _ := runCLI(t, flags(oldMK, "keys", "list")...)
	if code != ExitOK {
		t.Fatalf("keys list: exit %d", code)
	}
	for _, row := range []string{
		`(?m)^NAME\s+ID\s+VERSION\s+STATE\s+CREATED\s+AGE$`,
		`(?m)^finance\s+0x[0-9a-f]{8}\s+1\s+primary\s+\d{4}-\d\d-\d\dT\S+Z\s+\d+s$`,
		`(?m)^pii\s+0x[0-9a-f]{8}\s+1\s+active\s+`,
		`(?m)^pii\s+0x[0-9a-f]{8}\s+2\s+primary\s+`,
	} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("keys list output lacks %s:\n%s", row, out)
		}
	}

	runSteps(t, []step{
		{"disable primary", flags(oldMK, "keys", "disable", "pii", "--version", "2"), ExitUsage, `primary`},
		{"disable without version", flags(oldMK, "keys", "disable", "pii"), ExitUsage, `--version is required`},
		{"disable unknown version", flags(oldMK, "keys", "disable", "pii", "--version", "7"), ExitUsage, `unknown key version`},
		{"disable v1", flags(oldMK, "keys", "disable", "pii", "--version", "1"), ExitOK, `version 1 is disabled`},
		{"rewrap", flags(oldMK, "keys", "rewrap", "--new-master-key", newMK), ExitOK, `re-wrapped every data key under env:PGSEAL_TEST_NEW_MASTER_KEY`},
		{"old key refused", flags(oldMK, "keys", "list"), ExitKeystore, `wrong master key`},
		{"list with new key", flags(newMK, "keys", "list"), ExitOK, `(?m)^pii\s+\S+\s+1\s+disabled`},
		{"audit verify", flags(newMK, "audit", "verify"), ExitOK, `ok, 6 entries`},
	})

	ks = openKeystore(t, ksPath, newMK)
	if got, err := openValue(t, ks, "pii", envelope.Randomized, piiV2); err != nil || got != "sealed under pii v2" {
		t.Errorf("pii v2 value after rewrap: %q, %v", got, err)
	}
	if got, err := openValue(t, ks, "finance", envelope.Deterministic, financeV1); err != nil || got != "sealed under finance v1" {
		t.Errorf("finance v1 value after rewrap: %q, %v", got, err)
	}
	if _, err := openValue(t, ks, "pii", envelope.Randomized, piiV1); !errors.Is(err, envelope.ErrDecrypt) {
		t.Errorf("value under the disabled version opened: %v", err)
	}

	// Tampering with the audit log is detected, and blocks further changes.
	logPath := ksPath + ".audit.jsonl"
	data, _ := os.ReadFile(logPath)
	tampered := strings.Replace(string(data), `"key_set":"finance"`, `"key_set":"fiNance"`, 1)
	if err := os.WriteFile(logPath, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	runSteps(t, []step{
		{"audit verify tampered", flags(newMK, "audit", "verify", logPath), ExitFailure, `line 3: auditlog: audit log chain is broken`},
	})
}

func TestKeysErrors(t *testing.T) {
	dir := t.TempDir()
	ksPath := filepath.Join(dir, "keystore.json")
	keyPath := filepath.Join(dir, "master.key")
	mk := "file:" + keyPath
	runSteps(t, []step{
		{"init", []string{"keys", "init", "--keystore", ksPath, "--master-key", mk}, ExitOK, ``},
		{"no keystore", []string{"keys", "list", "--master-key", mk}, ExitUsage, `no keystore`},
		{"no master key", []string{"keys", "list", "--keystore", ksPath}, ExitUsage, `no master key`},
		{"bad spec", []string{"keys", "list", "--keystore", ksPath, "--master-key", "vault:x"}, ExitMasterKey, `master-key source unusable`},
		{"missing keystore", []string{"keys", "list", "--keystore", ksPath + ".nope", "--master-key", mk}, ExitKeystore, `no such file`},
		{"missing key file", []string{"keys", "list", "--keystore", ksPath, "--master-key", mk + ".nope"}, ExitMasterKey, `master-key source unusable`},
	})

	if err := os.Chmod(keyPath, 0o640); err != nil {
		t.Fatal(err)
	}
	runSteps(t, []step{
		{"group-readable key file", []string{"keys", "list", "--keystore", ksPath, "--master-key", mk}, ExitMasterKey, `insecure permissions`},
	})
	_ = os.Chmod(keyPath, 0o600)

	data, _ := os.ReadFile(ksPath)
	for _, tt := range []struct {
		name, content, want string
	}{
		{"truncated", string(data[:len(data)/2]), `corrupt`},
		{"unknown format", strings.Replace(string(data), `"version": 1`, `"version": 3`, 1), `unknown keystore format version`},
		{"tampered", strings.Replace(string(data), `"created": "2`, `"created": "1`, 1), `corrupt`},
	} {
		if err := os.WriteFile(ksPath, []byte(tt.content), 0o600); err != nil {
			t.Fatal(err)
		}
		runSteps(t, []step{{tt.name, []string{"keys", "list", "--keystore", ksPath, "--master-key", mk}, ExitKeystore, tt.want}})
	}
}

// TestKeysConfigSources reads the keystore settings from a YAML file and
// from PGSEAL_* variables, and uses a passphrase master key.
func TestKeysConfigSources(t *testing.T) {
	dir := t.TempDir()
	ksPath := filepath.Join(dir, "keystore.json")
	cfg := filepath.Join(dir, "pgseal.yaml")
	if err := os.WriteFile(cfg, []byte("keystore:\n  path: "+ksPath+"\n  master_key: passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSEAL_PASSPHRASE", "a passphrase long enough")
	runSteps(t, []step{
		{"init from config", []string{"keys", "init", "--config", cfg}, ExitOK, `created keystore`},
		{"add from config", []string{"keys", "add", "pii", "--config", cfg}, ExitOK, ``},
	})
	t.Setenv("PGSEAL_KEYSTORE_PATH", ksPath)
	t.Setenv("PGSEAL_KEYSTORE_MASTER_KEY", "passphrase")
	runSteps(t, []step{
		{"list from env", []string{"keys", "list"}, ExitOK, `(?m)^pii\s`},
	})
	t.Setenv("PGSEAL_PASSPHRASE", "not the right passphrase")
	runSteps(t, []step{
		{"wrong passphrase", []string{"keys", "list"}, ExitKeystore, `wrong master key`},
	})
	t.Setenv("PGSEAL_PASSPHRASE", "a passphrase long enough")
	t.Setenv("PGSEAL_NEW_PASSPHRASE", "short")
	runSteps(t, []step{
		{"weak new passphrase", []string{"keys", "rewrap", "--new-master-key", "passphrase"}, ExitMasterKey, `passphrase too short`},
		{"audit still intact", []string{"audit", "verify"}, ExitOK, `ok, 2 entries`},
	})
}
