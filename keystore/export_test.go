package keystore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgseal/pgseal/envelope"
)

func TestExportImport(t *testing.T) {
	ctx := context.Background()
	oldMK := staticKey(t, 1)
	path := newKeystore(t, oldMK)
	ks, err := Open(ctx, path, oldMK)
	if err != nil {
		t.Fatal(err)
	}
	v1 := seal(t, ks, "pii", envelope.Deterministic, "v1@example.com")
	e, err := Edit(ctx, path, oldMK, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Rotate(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Rotate(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Disable("pii", 1); err != nil {
		t.Fatal(err)
	}
	if err := e.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err = Open(ctx, path, oldMK)
	if err != nil {
		t.Fatal(err)
	}
	v3 := seal(t, ks, "pii", envelope.Randomized, "v3@example.com")
	fin := seal(t, ks, "finance", envelope.Randomized, "42.00")

	x, err := ExportKeys(ctx, path, oldMK)
	if err != nil {
		t.Fatal(err)
	}
	if x.KeystoreID != ks.ID() || len(x.KeySets) != 2 || len(x.KeySets[1].Versions) != 3 {
		t.Fatalf("export = %d key sets, id %s", len(x.KeySets), x.KeystoreID)
	}
	if !reflect.DeepEqual(x.Info(), ks.KeySets()) {
		t.Errorf("Info = %+v, want %+v", x.Info(), ks.KeySets())
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		if got := fmt.Sprintf(verb, x); got != "keystore.Export("+x.KeystoreID+")" {
			t.Errorf("Sprintf(%q) = %q", verb, got)
		}
	}

	newMK := cheapPassphrase(t, "a brand new passphrase")
	newPath := filepath.Join(t.TempDir(), "restored.json")
	restored, err := Import(ctx, newPath, newMK, x, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if restored.ID() == ks.ID() || restored.MasterKind() != KindArgon2id {
		t.Errorf("restored id %s kind %s: want a new id and %s", restored.ID(), restored.MasterKind(), KindArgon2id)
	}
	if !reflect.DeepEqual(restored.KeySets(), ks.KeySets()) {
		t.Errorf("restored key sets = %+v, want %+v", restored.KeySets(), ks.KeySets())
	}
	if got, err := open(t, restored, "pii", envelope.Randomized, v3); err != nil || got != "v3@example.com" {
		t.Errorf("pii v3 = %q, %v", got, err)
	}
	if got, err := open(t, restored, "finance", envelope.Randomized, fin); err != nil || got != "42.00" {
		t.Errorf("finance = %q, %v", got, err)
	}
	if _, err := open(t, restored, "pii", envelope.Deterministic, v1); err == nil {
		t.Error("a value under disabled version 1 opens after import")
	}
	// The disabled version came along: re-exporting the restored keystore
	// gives the same keys.
	again, err := ExportKeys(ctx, newPath, newMK)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range x.KeySets {
		for j, v := range s.Versions {
			if string(again.KeySets[i].Versions[j].Key.UnsafeBytes()) != string(v.Key.UnsafeBytes()) {
				t.Errorf("key set %s version %d: key changed through export and import", s.Name, v.Version)
			}
		}
	}
	if _, err := Import(ctx, newPath, newMK, x); !errors.Is(err, ErrExists) {
		t.Errorf("Import over an existing keystore = %v, want ErrExists", err)
	}
}

func TestImportRefusesInconsistentExport(t *testing.T) {
	ctx := context.Background()
	mk := staticKey(t, 2)
	path := newKeystore(t, mk)
	tests := []struct {
		name   string
		change func(x *Export)
	}{
		{"nil", nil},
		{"primary disabled", func(x *Export) { x.KeySets[0].Versions[0].State = StateDisabled }},
		{"primary out of range", func(x *Export) { x.KeySets[0].Primary = 2 }},
		{"missing key", func(x *Export) { x.KeySets[0].Versions[0].Key = envelope.DataKey{} }},
		{"version gap", func(x *Export) { x.KeySets[0].Versions[0].Version = 2 }},
		{"bad name", func(x *Export) { x.KeySets[0].Name = "Bad Name" }},
		{"duplicate id", func(x *Export) { x.KeySets[1].ID = x.KeySets[0].ID }},
		{"unknown algorithm", func(x *Export) { x.KeySets[0].Versions[0].Algorithm = "rot13" }},
		{"no creation time", func(x *Export) {
			x.KeySets[0].Versions[0].Created = x.KeySets[0].Versions[0].Created.AddDate(-3000, 0, 0)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x *Export
			if tt.change != nil {
				var err error
				if x, err = ExportKeys(ctx, path, mk); err != nil {
					t.Fatal(err)
				}
				tt.change(x)
			}
			dst := filepath.Join(t.TempDir(), "k.json")
			_, err := Import(ctx, dst, mk, x)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error = %v, want ErrCorrupt", err)
			}
			if strings.Contains(err.Error(), "BUG") {
				t.Errorf("error = %v", err)
			}
		})
	}
}
