package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	agelib "filippo.io/age"

	"github.com/pgseal/pgseal/envelope"
)

// writeIdentity writes a new age identity file and returns its path and
// public key.
func writeIdentity(t *testing.T, dir, name string) (path, recipient string) {
	t.Helper()
	id, err := agelib.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, name+".key")
	if err := os.WriteFile(path, []byte("# "+name+"\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, id.Recipient().String()
}

// auditEvents returns the event names of an audit log, in order.
func auditEvents(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		events = append(events, e.Event)
	}
	return events
}

// TestKeysBackupRestore backs a keystore up to two X25519 recipients and a
// passphrase, loses the keystore and its master key, restores it with each
// under a new master key, and opens values written before.
func TestKeysBackupRestore(t *testing.T) {
	dir := t.TempDir()
	ksPath := filepath.Join(dir, "keystore.json")
	mk := "file:" + filepath.Join(dir, "master.key")
	flags := func(args ...string) []string { return append(args, "--keystore", ksPath, "--master-key", mk) }
	aliceKey, alice := writeIdentity(t, dir, "alice")
	bobKey, bob := writeIdentity(t, dir, "bob")
	eveKey, _ := writeIdentity(t, dir, "eve")
	t.Setenv(backupPassphraseEnv, "escrow officer passphrase")
	bak := filepath.Join(dir, "keys.backup")

	runSteps(t, []step{
		{"init", flags("keys", "init"), ExitOK, ``},
		{"add pii", flags("keys", "add", "pii"), ExitOK, ``},
		{"add finance", flags("keys", "add", "finance"), ExitOK, ``},
	})
	ks := openKeystore(t, ksPath, mk)
	piiV1 := sealValue(t, ks, "pii", envelope.Deterministic, "written under pii v1")
	runSteps(t, []step{
		{"rotate", flags("keys", "rotate", "pii"), ExitOK, ``},
		{"rotate again", flags("keys", "rotate", "pii"), ExitOK, ``},
		{"disable v1", flags("keys", "disable", "pii", "--version", "1"), ExitOK, ``},
	})
	ks = openKeystore(t, ksPath, mk)
	piiV3 := sealValue(t, ks, "pii", envelope.Randomized, "written under pii v3")
	finance := sealValue(t, ks, "finance", envelope.Deterministic, "1234.56")

	runSteps(t, []step{
		{"no recipient", flags("keys", "backup", "--to", bak), ExitUsage, `--recipient`},
		{"bad recipient", flags("keys", "backup", "--to", bak, "--recipient", "age1nope"), ExitUsage, `bad --recipient`},
		{"backup", flags("keys", "backup", "--to", bak, "--recipient", alice, "--recipient", bob, "--recipient", "passphrase"),
			ExitOK, `wrote backup .*keys\.backup: 2 key sets, 4 versions, for age1\S+, age1\S+, passphrase\nsha256 [0-9a-f]{64}`},
		{"never overwritten", flags("keys", "backup", "--to", bak, "--recipient", alice), ExitUsage, `already exists`},
		{"inspect", []string{"keys", "backup", "inspect", bak}, ExitOK,
			`(?s)keystore    ` + ks.ID() + `\nrecipients  ` + alice + `, ` + bob + `, passphrase\nsections    x25519, scrypt\n.*pii\s+0x[0-9a-f]{8}\s+1\s+disabled.*pii\s+0x[0-9a-f]{8}\s+3\s+primary.*not authenticated`},
	})
	if fi, err := os.Stat(bak); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", err, fi.Mode())
	}
	if ev := auditEvents(t, ksPath+".audit.jsonl"); ev[len(ev)-1] != "keys.backup" {
		t.Errorf("audit events = %v, want keys.backup last", ev)
	}

	// Lose the keystore, its audit log and the master key.
	for _, p := range []string{ksPath, ksPath + ".audit.jsonl", filepath.Join(dir, "master.key")} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct{ name, identity string }{{"alice", aliceKey}, {"bob", bobKey}, {"passphrase", "passphrase"}} {
		t.Run(tt.name, func(t *testing.T) {
			newKS := filepath.Join(t.TempDir(), "restored.json")
			newMK := "file:" + filepath.Join(t.TempDir(), "new-master.key")
			runSteps(t, []step{{"restore", []string{"keys", "restore", "--from", bak, "--identity", tt.identity, "--keystore", newKS, "--master-key", newMK},
				ExitOK, `created master key .*\nrestored 2 key sets \(4 versions\) of keystore ` + ks.ID()}})
			restored := openKeystore(t, newKS, newMK)
			for _, v := range []struct {
				set  string
				mode envelope.Mode
				env  []byte
				want string
			}{{"pii", envelope.Randomized, piiV3, "written under pii v3"}, {"finance", envelope.Deterministic, finance, "1234.56"}} {
				if got, err := openValue(t, restored, v.set, v.mode, v.env); err != nil || got != v.want {
					t.Errorf("%s value after restore: %q, %v", v.set, got, err)
				}
			}
			if _, err := openValue(t, restored, "pii", envelope.Deterministic, piiV1); !errors.Is(err, envelope.ErrDecrypt) {
				t.Errorf("value under the disabled version opened after restore: %v", err)
			}
			if ev := auditEvents(t, newKS+".audit.jsonl"); len(ev) != 1 || ev[0] != "keys.restore" {
				t.Errorf("audit events of the restored keystore = %v", ev)
			}
			runSteps(t, []step{{"audit verify", []string{"audit", "verify", "--keystore", newKS, "--master-key", newMK}, ExitOK, `ok, 1 entries`}})
		})
	}

	data, err := os.ReadFile(bak)
	if err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(dir, "tampered.backup")
	if err := os.WriteFile(tampered, []byte(strings.Replace(string(data), `"state":"disabled"`, `"state":"active"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	restore := func(from, identity string) []string {
		return []string{"keys", "restore", "--from", from, "--identity", identity,
			"--keystore", filepath.Join(t.TempDir(), "k.json"), "--master-key", "file:" + filepath.Join(t.TempDir(), "m.key")}
	}
	runSteps(t, []step{
		{"tampered", restore(tampered, aliceKey), ExitKeystore, `header does not match the encrypted contents: backup: backup was altered`},
		{"wrong identity", restore(bak, eveKey), ExitKeystore, `no identity opens this backup`},
		{"bad identity file", restore(bak, garbage), ExitUsage, `failed to parse identity file`},
		{"not a backup", restore(aliceKey, aliceKey), ExitKeystore, `not a pgseal key backup`},
		{"no identity", []string{"keys", "restore", "--from", bak}, ExitUsage, `--identity`},
	})
	code, out, errw := runCLI(t, restore(bak, garbage)...)
	if code == ExitOK || regexp.MustCompile(`NOTAKEY`).MatchString(out+errw) {
		t.Errorf("a bad identity file is quoted in the error: %s", errw)
	}
}
