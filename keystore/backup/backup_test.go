package backup

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
)

var update = flag.Bool("update", false, "rewrite testdata/golden.backup")

var fixedNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func clock() time.Time { return fixedNow }

const testPassphrase = "escrow officer passphrase"

// testExport is a keystore's export: "finance" with one version, "pii"
// with three (1 disabled, 3 primary).
func testExport(tb testing.TB) *keystore.Export {
	tb.Helper()
	ctx := context.Background()
	mk, err := keystore.NewStaticMasterKey(bytes.Repeat([]byte{3}, keystore.MasterKeySize))
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "keystore.json")
	if _, err := keystore.Create(ctx, path, mk); err != nil {
		tb.Fatal(err)
	}
	e, err := keystore.Edit(ctx, path, mk)
	if err != nil {
		tb.Fatal(err)
	}
	for _, step := range []func() error{
		func() error { _, err := e.AddKeySet(ctx, "pii"); return err },
		func() error { _, err := e.AddKeySet(ctx, "finance"); return err },
		func() error { _, err := e.Rotate(ctx, "pii"); return err },
		func() error { _, err := e.Rotate(ctx, "pii"); return err },
		func() error { _, err := e.Disable("pii", 1); return err },
		func() error { return e.Commit(ctx) },
	} {
		if err := step(); err != nil {
			tb.Fatal(err)
		}
	}
	x, err := keystore.ExportKeys(ctx, path, mk)
	if err != nil {
		tb.Fatal(err)
	}
	return x
}

func newIdentity(tb testing.TB) *age.X25519Identity {
	tb.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func scrypt(tb testing.TB, pass string) age.Identity {
	tb.Helper()
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func write(tb testing.TB, x *keystore.Export, r Recipients) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := Write(&buf, x, r, WithClock(clock), WithScryptWorkFactor(10)); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// sameKeys fails tb unless got holds the key sets, versions and keys of want.
func sameKeys(tb testing.TB, got, want *keystore.Export) {
	tb.Helper()
	if got.KeystoreID != want.KeystoreID || !reflect.DeepEqual(got.Info(), want.Info()) {
		tb.Fatalf("export = %+v, want %+v", got.Info(), want.Info())
	}
	for i, s := range want.KeySets {
		for j, v := range s.Versions {
			if !bytes.Equal(got.KeySets[i].Versions[j].Key.UnsafeBytes(), v.Key.UnsafeBytes()) {
				tb.Errorf("key set %s version %d: key differs", s.Name, v.Version)
			}
		}
	}
}

func TestWriteOpen(t *testing.T) {
	x := testExport(t)
	alice, bob, eve := newIdentity(t), newIdentity(t), newIdentity(t)
	tests := []struct {
		name     string
		rcpt     Recipients
		sections []string
		open     []age.Identity // each opens the backup alone
		refused  []age.Identity // each is refused alone
	}{
		{"one recipient", Recipients{X25519: []*age.X25519Recipient{alice.Recipient()}},
			[]string{"x25519"}, []age.Identity{alice}, []age.Identity{bob, scrypt(t, testPassphrase)}},
		{"two recipients", Recipients{X25519: []*age.X25519Recipient{alice.Recipient(), bob.Recipient()}},
			[]string{"x25519"}, []age.Identity{alice, bob}, []age.Identity{eve}},
		{"passphrase", Recipients{Passphrase: testPassphrase},
			[]string{"scrypt"}, []age.Identity{scrypt(t, testPassphrase)}, []age.Identity{scrypt(t, "another passphrase"), alice}},
		{"recipient and passphrase", Recipients{X25519: []*age.X25519Recipient{bob.Recipient()}, Passphrase: testPassphrase},
			[]string{"x25519", "scrypt"}, []age.Identity{bob, scrypt(t, testPassphrase)}, []age.Identity{alice, scrypt(t, "wrong")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := write(t, x, tt.rcpt)
			f, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			h := f.Header
			if !h.Created.Equal(fixedNow) || h.KeystoreID != x.KeystoreID || !reflect.DeepEqual(h.KeySets, x.Info()) ||
				!reflect.DeepEqual(h.Sections(), tt.sections) || h.Versions() != 4 {
				t.Errorf("header = %+v", h)
			}
			for _, id := range tt.open {
				got, err := f.Open(id)
				if err != nil {
					t.Fatalf("open with %T: %v", id, err)
				}
				sameKeys(t, got, x)
			}
			for _, id := range tt.refused {
				if _, err := f.Open(id); !errors.Is(err, ErrNoIdentity) {
					t.Errorf("open with a wrong %T = %v, want ErrNoIdentity", id, err)
				}
			}
			if bytes.Contains(data, x.KeySets[0].Versions[0].Key.UnsafeBytes()) {
				t.Error("a key appears in the clear")
			}
		})
	}
}

func TestWriteRefuses(t *testing.T) {
	x := testExport(t)
	if _, err := Write(&bytes.Buffer{}, x, Recipients{}); !errors.Is(err, ErrNoRecipients) {
		t.Errorf("no recipients: %v", err)
	}
	if _, err := Write(&bytes.Buffer{}, nil, Recipients{Passphrase: "x"}); err == nil {
		t.Error("nil export accepted")
	}
}

// TestTampered changes a backup in every way an attacker with write access
// could and expects each to be refused.
func TestTampered(t *testing.T) {
	x := testExport(t)
	alice, bob := newIdentity(t), newIdentity(t)
	rcpt := Recipients{X25519: []*age.X25519Recipient{alice.Recipient(), bob.Recipient()}, Passphrase: testPassphrase}
	orig := write(t, x, rcpt)
	other := write(t, testExport(t), rcpt) // another keystore, same recipients
	lines := strings.SplitAfter(string(orig), "\n")
	otherLines := strings.SplitAfter(string(other), "\n")
	header := lines[1]
	sectionStart := len(lines[0]) + len(lines[1])
	replaceHeader := func(old, new string) func([]byte) []byte {
		return func([]byte) []byte {
			if !strings.Contains(header, old) {
				t.Fatalf("header has no %q", old)
			}
			return []byte(lines[0] + strings.Replace(header, old, new, 1) + strings.Join(lines[2:], ""))
		}
	}
	flip := func(at int) func([]byte) []byte {
		return func(b []byte) []byte {
			b = bytes.Clone(b)
			// Flip within the base64 alphabet so that the armor still decodes.
			if b[at] == 'A' {
				b[at] = 'B'
			} else {
				b[at] = 'A'
			}
			return b
		}
	}
	// The second section starts after the first END line.
	secondSection := strings.Index(string(orig), "-----END AGE ENCRYPTED FILE-----") + len("-----END AGE ENCRYPTED FILE-----\n")
	pass := scrypt(t, testPassphrase)
	// Sections are authenticated one by one: damage to the X25519 section
	// is refused to alice and bob, while the passphrase section, intact,
	// still opens. Header changes are refused to everyone.
	x25519Only := []age.Identity{alice, bob}
	tests := []struct {
		name     string
		change   func([]byte) []byte
		wantErr  error
		refusers []age.Identity // default: alice, bob and the passphrase
	}{
		{"disabled version shown active", replaceHeader(`"state":"disabled"`, `"state":"active"`), ErrTampered, nil},
		{"keystore id changed", replaceHeader(x.KeystoreID, strings.Repeat("0", 32)), ErrTampered, nil},
		{"creation time changed", replaceHeader(`"created":"2026-03-04T05:06:07Z"`, `"created":"2025-03-04T05:06:07Z"`), ErrTampered, nil},
		{"recipient removed from the header", replaceHeader(`"`+alice.Recipient().String()+`",`, ``), ErrTampered, nil},
		{"header from another backup", func([]byte) []byte {
			return []byte(otherLines[0] + otherLines[1] + strings.Join(lines[2:], ""))
		}, ErrTampered, nil},
		{"sections from another backup", func([]byte) []byte {
			return []byte(lines[0] + lines[1] + strings.Join(otherLines[2:], ""))
		}, ErrTampered, nil},
		{"X25519 payload byte flipped", flip(sectionStart + 400), ErrTampered, x25519Only},
		{"X25519 last line flipped", flip(secondSection - len("-----END AGE ENCRYPTED FILE-----\n") - 3), ErrTampered, x25519Only},
		{"passphrase payload byte flipped", flip(len(orig) - 60), ErrTampered, []age.Identity{pass}},
		{"section dropped", func(b []byte) []byte { return b[:secondSection] }, ErrMalformed, nil},
		{"truncated", func(b []byte) []byte { return b[:len(b)-40] }, ErrMalformed, nil},
		{"junk appended", func(b []byte) []byte { return append(bytes.Clone(b), "junk\n"...) }, ErrMalformed, nil},
		{"header JSON broken", replaceHeader(`{`, `[`), ErrMalformed, nil},
		{"format version", func(b []byte) []byte { return bytes.Replace(b, []byte("backup v1"), []byte("backup v2"), 1) }, ErrUnknownVersion, nil},
		{"not a backup", func([]byte) []byte { return []byte("hello\n") }, ErrMalformed, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.change(orig)
			f, err := Parse(data)
			if err != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			refusers := tt.refusers
			if refusers == nil {
				refusers = []age.Identity{alice, bob, pass}
			}
			for _, id := range refusers {
				if _, err := f.Open(id); !errors.Is(err, tt.wantErr) {
					t.Errorf("Open with %T = %v, want %v", id, err, tt.wantErr)
				}
			}
		})
	}
	if _, err := Parse(orig); err != nil {
		t.Fatalf("the original no longer parses: %v", err)
	}
}

// goldenExport has fixed keys so that testdata/golden.backup can be checked
// byte for byte after decryption.
func goldenExport(tb testing.TB) *keystore.Export {
	tb.Helper()
	key := func(b byte) envelope.DataKey {
		k, err := envelope.NewDataKey(bytes.Repeat([]byte{b}, envelope.DataKeySize))
		if err != nil {
			tb.Fatal(err)
		}
		return k
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v := func(n uint32, st keystore.State, b byte) keystore.ExportedVersion {
		return keystore.ExportedVersion{VersionInfo: keystore.VersionInfo{Version: n, State: st, Created: t0.AddDate(0, int(n), 0), Algorithm: keystore.AlgorithmV1}, Key: key(b)}
	}
	return &keystore.Export{KeystoreID: "00112233445566778899aabbccddeeff", Created: t0, KeySets: []keystore.ExportedKeySet{
		{Name: "finance", ID: 0x0badf00d, Primary: 1, Versions: []keystore.ExportedVersion{v(1, keystore.StatePrimary, 0x11)}},
		{Name: "pii", ID: 0x12345678, Primary: 2, Versions: []keystore.ExportedVersion{v(1, keystore.StateDisabled, 0x21), v(2, keystore.StatePrimary, 0x22)}},
	}}
}

const goldenPassphrase = "golden test passphrase"

func goldenIdentity(tb testing.TB) age.Identity {
	tb.Helper()
	b, err := os.ReadFile("testdata/golden-identity.txt")
	if err != nil {
		tb.Fatal(err)
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil || len(ids) != 1 {
		tb.Fatalf("golden identity: %v", err)
	}
	return ids[0]
}

// TestGolden reads a backup written by an earlier build: the format must
// stay readable. Regenerate with -update only when the format changes on
// purpose (and bump its version).
func TestGolden(t *testing.T) {
	id := goldenIdentity(t)
	if *update {
		var buf bytes.Buffer
		r := Recipients{X25519: []*age.X25519Recipient{id.(*age.X25519Identity).Recipient()}, Passphrase: goldenPassphrase}
		if _, err := Write(&buf, goldenExport(t), r, WithClock(clock), WithScryptWorkFactor(10)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/golden.backup", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("testdata/golden.backup")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []age.Identity{id, scrypt(t, goldenPassphrase)} {
		got, err := f.Open(id)
		if err != nil {
			t.Fatal(err)
		}
		sameKeys(t, got, goldenExport(t))
	}
}
