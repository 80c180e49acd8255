package keystore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgseal/pgseal/envelope"
)

func TestCreateAndOpen(t *testing.T) {
	ctx := context.Background()
	mk := staticKey(t, 1)
	path := newKeystore(t, mk)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("keystore mode = %04o, want 0600", fi.Mode().Perm())
	}
	ks, err := Open(ctx, path, mk)
	if err != nil {
		t.Fatal(err)
	}
	sets := ks.KeySets()
	if len(sets) != 2 || sets[0].Name != "finance" || sets[1].Name != "pii" {
		t.Fatalf("KeySets = %+v, want finance and pii", sets)
	}
	for _, s := range sets {
		if s.ID == 0 || s.Primary != 1 || len(s.Versions) != 1 || s.Versions[0].State != StatePrimary ||
			!s.Versions[0].Created.Equal(fixedNow) || s.Versions[0].Algorithm != AlgorithmV1 {
			t.Errorf("key set %+v is not a fresh version-1 set", s)
		}
	}
	if sets[0].ID == sets[1].ID {
		t.Errorf("two key sets share id %#x", sets[0].ID)
	}
	for _, mode := range []envelope.Mode{envelope.Randomized, envelope.Deterministic} {
		env := seal(t, ks, "pii", mode, "alice")
		if h, _ := envelope.Peek(env); h.KeySetID != sets[1].ID || h.KeyVersion != 1 {
			t.Errorf("envelope header %+v does not name pii version 1", h)
		}
		if got, err := open(t, ks, "pii", mode, env); err != nil || got != "alice" {
			t.Errorf("%s round trip = %q, %v", mode, got, err)
		}
		if _, err := open(t, ks, "finance", mode, env); err != envelope.ErrDecrypt {
			t.Errorf("value of pii opened under finance: %v", err)
		}
	}
	if _, err := ks.Column("nope", "public.users", "email", envelope.Randomized); !errors.Is(err, ErrUnknownKeySet) {
		t.Errorf("Column(unknown) error = %v, want ErrUnknownKeySet", err)
	}
	if _, err := Create(ctx, path, mk); !errors.Is(err, ErrExists) {
		t.Errorf("Create over an existing keystore: error = %v, want ErrExists", err)
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "missing"), mk); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) error = %v, want fs.ErrNotExist", err)
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	mk := staticKey(t, 1)
	path := newKeystore(t, mk)
	ks1, _ := Open(ctx, path, mk)
	v1 := seal(t, ks1, "pii", envelope.Randomized, "sealed under v1")
	d1 := seal(t, ks1, "pii", envelope.Deterministic, "x")

	e, err := Edit(ctx, path, mk, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.Rotate(ctx, "pii")
	if err != nil {
		t.Fatal(err)
	}
	if info.Primary != 2 || info.Versions[0].State != StateActive || info.Versions[1].State != StatePrimary {
		t.Fatalf("after rotate: %+v", info)
	}
	if err := e.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ks2, err := Open(ctx, path, mk)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(t, ks2, "pii", envelope.Randomized, v1); err != nil || got != "sealed under v1" {
		t.Errorf("v1 value after rotate = %q, %v", got, err)
	}
	v2 := seal(t, ks2, "pii", envelope.Randomized, "sealed under v2")
	if h, _ := envelope.Peek(v2); h.KeyVersion != 2 {
		t.Errorf("new value under version %d, want 2", h.KeyVersion)
	}
	c, _ := ks2.Column("pii", "public.users", "email", envelope.Deterministic)
	if got := c.Versions(); !slices.Equal(got, []uint32{2, 1}) {
		t.Errorf("Versions = %v, want [2 1]", got)
	}
	if d, _ := c.SealWith(nil, []byte("x"), 1); string(d) != string(d1) {
		t.Errorf("deterministic SealWith(1) differs from the value sealed before rotation")
	}

	if _, err := e.Disable("pii", 2); !errors.Is(err, ErrPrimaryVersion) {
		t.Errorf("Disable(primary) error = %v, want ErrPrimaryVersion", err)
	}
	if _, err := e.Disable("pii", 3); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("Disable(3) error = %v, want ErrUnknownVersion", err)
	}
	if _, err := e.Disable("nope", 1); !errors.Is(err, ErrUnknownKeySet) {
		t.Errorf("Disable(unknown set) error = %v, want ErrUnknownKeySet", err)
	}
	if info, err = e.Disable("pii", 1); err != nil || info.Versions[0].State != StateDisabled {
		t.Fatalf("Disable(1) = %+v, %v", info, err)
	}
	if err := e.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ks3, err := Open(ctx, path, mk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, ks3, "pii", envelope.Randomized, v1); err != envelope.ErrDecrypt {
		t.Errorf("value under disabled version: error = %v, want ErrDecrypt", err)
	}
	if got, err := open(t, ks3, "pii", envelope.Randomized, v2); err != nil || got != "sealed under v2" {
		t.Errorf("v2 value after disable = %q, %v", got, err)
	}
	set, _ := ks3.KeySet("pii")
	tests := []struct {
		id, version uint32
		want        State
		wantErr     error
	}{
		{set.ID, 1, StateDisabled, nil},
		{set.ID, 2, StatePrimary, nil},
		{set.ID, 3, 0, ErrUnknownVersion},
		{set.ID, 0, 0, ErrUnknownVersion},
		{set.ID + 1, 1, 0, ErrUnknownKeySet},
	}
	for _, tt := range tests {
		wantCheck := tt.wantErr
		if tt.want == StateDisabled {
			wantCheck = ErrVersionDisabled
		}
		if err := ks3.CheckVersion(tt.id, tt.version); !errors.Is(err, wantCheck) {
			t.Errorf("CheckVersion(%#x, %d) = %v, want %v", tt.id, tt.version, err, wantCheck)
		}
		got, err := ks3.VersionState(tt.id, tt.version)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("VersionState(%#x, %d) = %v, %v; want %v, %v", tt.id, tt.version, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestAddKeySetRejects(t *testing.T) {
	ctx := context.Background()
	mk := staticKey(t, 1)
	e, err := Edit(ctx, newKeystore(t, mk), mk)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		wantErr error
	}{
		{"pii", ErrKeySetExists},
		{"", ErrInvalidName},
		{"PII", ErrInvalidName},
		{"1pii", ErrInvalidName},
		{"pii data", ErrInvalidName},
		{strings.Repeat("a", 64), ErrInvalidName},
	}
	for _, tt := range tests {
		if _, err := e.AddKeySet(ctx, tt.name); !errors.Is(err, tt.wantErr) {
			t.Errorf("AddKeySet(%q) error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if _, err := e.AddKeySet(ctx, strings.Repeat("a", 63)); err != nil {
		t.Errorf("AddKeySet(63 chars) error = %v", err)
	}
}

func TestRewrap(t *testing.T) {
	ctx := context.Background()
	oldMK := staticKey(t, 1)
	path := newKeystore(t, oldMK)
	before, _ := Open(ctx, path, oldMK)
	env := seal(t, before, "pii", envelope.Randomized, "survives rewraps")
	e, _ := Edit(ctx, path, oldMK)
	if _, err := e.Rotate(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Disable("finance", 1); err == nil {
		t.Fatal("disabled the primary of finance")
	}
	if err := e.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		mk   MasterKeySource
	}{
		{"to passphrase", cheapPassphrase(t, "correct horse battery staple")},
		{"to another raw key", staticKey(t, 2)},
	}
	current := oldMK
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			e, err := Edit(ctx, path, current)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Rewrap(ctx, step.mk); err != nil {
				t.Fatal(err)
			}
			if err := e.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(ctx, path, current); !errors.Is(err, ErrWrongMasterKey) {
				t.Errorf("old master key after rewrap: error = %v, want ErrWrongMasterKey", err)
			}
			after, err := Open(ctx, path, step.mk)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := open(t, after, "pii", envelope.Randomized, env); err != nil || got != "survives rewraps" {
				t.Errorf("value after rewrap = %q, %v", got, err)
			}
			if string(after.AuditLogKey()) != string(before.AuditLogKey()) {
				t.Errorf("audit log key changed with the master key")
			}
			if after.ID() != before.ID() {
				t.Errorf("keystore id changed")
			}
			current = step.mk
		})
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	rawPath := newKeystore(t, staticKey(t, 1))
	passPath := newKeystore(t, cheapPassphrase(t, "correct horse battery staple"))
	tests := []struct {
		name    string
		path    string
		mk      MasterKeySource
		wantErr error
	}{
		{"other raw key", rawPath, staticKey(t, 2), ErrWrongMasterKey},
		{"passphrase for a raw keystore", rawPath, cheapPassphrase(t, "correct horse battery staple"), ErrWrongMasterKey},
		{"wrong passphrase", passPath, cheapPassphrase(t, "incorrect horse battery staple"), ErrWrongMasterKey},
		{"raw key for a passphrase keystore", passPath, staticKey(t, 1), ErrWrongMasterKey},
		{"right passphrase", passPath, cheapPassphrase(t, "correct horse battery staple"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(ctx, tt.path, tt.mk); !errors.Is(err, tt.wantErr) {
				t.Errorf("Open error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestEverySingleByteChange flips each byte of a keystore file: Open must
// fail with a documented error or load exactly the original content (JSON
// whitespace and field-name case are not covered by the MAC and change
// nothing).
func TestEverySingleByteChange(t *testing.T) {
	ctx := context.Background()
	mk := staticKey(t, 1)
	path := newKeystore(t, mk)
	data, _ := os.ReadFile(path)
	orig, err := Open(ctx, path, mk)
	if err != nil {
		t.Fatal(err)
	}
	want := orig.KeySets()
	for i := range data {
		bad := slices.Clone(data)
		bad[i] ^= 0x01
		u, err := unlock(ctx, bad, mk, false)
		if err != nil {
			if !isSentinel(err) {
				t.Fatalf("byte %d: error %v is not a documented sentinel", i, err)
			}
			continue
		}
		ks, err := u.keystore()
		if err != nil || !slices.EqualFunc(ks.KeySets(), want, func(a, b KeySetInfo) bool {
			return a.Name == b.Name && a.ID == b.ID && a.Primary == b.Primary && slices.Equal(a.Versions, b.Versions)
		}) {
			t.Fatalf("byte %d (%q): changed file loaded with different content", i, data[i])
		}
	}
	for n := range len(data) - 2 { // the last bytes are "}\n"
		if _, err := unlock(ctx, data[:n], mk, false); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: error = %v, want ErrCorrupt", n, err)
		}
	}
}

func TestUnknownFormatVersion(t *testing.T) {
	ctx := context.Background()
	mk := staticKey(t, 1)
	path := newKeystore(t, mk)
	data, _ := os.ReadFile(path)
	v2 := strings.Replace(string(data), `"version": 1,`, `"version": 2,`, 1)
	if v2 == string(data) {
		t.Fatal("version field not found")
	}
	if err := os.WriteFile(path, []byte(v2), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, mk); !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("Open(version 2) error = %v, want ErrUnknownFormat", err)
	}
}

func TestConcurrentUpdate(t *testing.T) {
	ctx := context.Background()
	mk := staticKey(t, 1)
	path := newKeystore(t, mk)
	a, _ := Edit(ctx, path, mk)
	b, _ := Edit(ctx, path, mk)
	if _, err := a.Rotate(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddKeySet(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx); !errors.Is(err, ErrConcurrentUpdate) {
		t.Errorf("second Commit error = %v, want ErrConcurrentUpdate", err)
	}
	ks, _ := Open(ctx, path, mk)
	if _, err := ks.KeySet("other"); !errors.Is(err, ErrUnknownKeySet) {
		t.Errorf("the refused commit was written")
	}
}

func TestRedaction(t *testing.T) {
	ctx := context.Background()
	key := []byte("0123456789abcdef0123456789abcdef")
	mk, _ := NewStaticMasterKey(key)
	path := newKeystore(t, mk)
	ks, _ := Open(ctx, path, mk)
	e, _ := Edit(ctx, path, mk)
	w, _, _ := mk.Unlock(ctx, nil)
	pass := cheapPassphrase(t, "a secret passphrase")
	if _, _, err := pass.Unlock(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{mk, ks, e, w, pass} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "0123456789abcdef") || strings.Contains(out, "30313233") ||
				strings.Contains(out, "secret passphrase") {
				t.Errorf("%s of %T leaks a secret: %s", verb, v, out)
			}
		}
	}
}
