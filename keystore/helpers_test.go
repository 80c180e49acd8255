package keystore

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgseal/pgseal/envelope"
)

// fixedNow is the clock of every test keystore.
var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func clock() time.Time { return fixedNow }

// staticKey returns a static master key whose bytes are all b.
func staticKey(tb testing.TB, b byte) MasterKeySource {
	tb.Helper()
	mk, err := NewStaticMasterKey(bytes.Repeat([]byte{b}, MasterKeySize))
	if err != nil {
		tb.Fatal(err)
	}
	return mk
}

// cheapPassphrase returns a passphrase source reading pass from the
// environment, with Argon2id costs small enough for tests.
func cheapPassphrase(tb testing.TB, pass string) MasterKeySource {
	tb.Helper()
	mk, err := ParseMasterKeySource("passphrase",
		WithLookupEnv(func(name string) (string, bool) { return pass, name == PassphraseEnv }),
		WithArgon2idCost(1, 64, 1))
	if err != nil {
		tb.Fatal(err)
	}
	return mk
}

// newKeystore creates a keystore in a temporary directory with key sets
// "pii" and "finance", and returns its path.
func newKeystore(tb testing.TB, mk MasterKeySource) string {
	tb.Helper()
	ctx := context.Background()
	path := filepath.Join(tb.TempDir(), "keystore.json")
	if _, err := Create(ctx, path, mk, WithClock(clock)); err != nil {
		tb.Fatal(err)
	}
	e, err := Edit(ctx, path, mk, WithClock(clock))
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range []string{"pii", "finance"} {
		if _, err := e.AddKeySet(ctx, name); err != nil {
			tb.Fatal(err)
		}
	}
	if err := e.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	return path
}

// seal seals pt in public.users.email under the primary version of keySet.
func seal(tb testing.TB, ks *Keystore, keySet string, mode envelope.Mode, pt string) []byte {
	tb.Helper()
	c, err := ks.Column(keySet, "public.users", "email", mode)
	if err != nil {
		tb.Fatal(err)
	}
	env, err := c.Seal(nil, []byte(pt))
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

// open opens env as a value of public.users.email.
func open(tb testing.TB, ks *Keystore, keySet string, mode envelope.Mode, env []byte) (string, error) {
	tb.Helper()
	c, err := ks.Column(keySet, "public.users", "email", mode)
	if err != nil {
		tb.Fatal(err)
	}
	pt, err := c.Open(nil, env)
	return string(pt), err
}

// isSentinel reports whether err is one of the load errors Open documents.
func isSentinel(err error) bool {
	return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrWrongMasterKey) || errors.Is(err, ErrUnknownFormat)
}
