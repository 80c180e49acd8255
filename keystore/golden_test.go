package keystore

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pgseal/pgseal/envelope"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// The golden keystore: format v1 written by an earlier build, with the
// master key beside it, and values sealed under it. It guards the file
// format and the key derivations against accidental change.
const (
	goldenDir      = "testdata/v1"
	goldenKeystore = "testdata/v1/keystore.json"
	goldenKey      = "testdata/v1/master.key.b64"
	goldenValues   = "testdata/v1/values.txt"
)

func goldenMasterKey(tb testing.TB) MasterKeySource {
	tb.Helper()
	b, err := os.ReadFile(goldenKey)
	if err != nil {
		tb.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		tb.Fatal(err)
	}
	mk, err := NewStaticMasterKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return mk
}

func TestGoldenKeystore(t *testing.T) {
	if *update {
		writeGoldenKeystore(t)
	}
	ctx := context.Background()
	ks, err := Open(ctx, goldenKeystore, goldenMasterKey(t))
	if err != nil {
		t.Fatalf("golden keystore no longer opens: %v", err)
	}
	f, err := os.Open(goldenValues)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var set, modeName, table, column, ptHex, envHex string
		if _, err := fmt.Sscan(line, &set, &modeName, &table, &column, &ptHex, &envHex); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		mode, _ := envelope.ParseMode(modeName)
		c, err := ks.Column(set, table, column, mode)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := hex.DecodeString(envHex)
		pt, err := c.Open(nil, env)
		if err != nil || hex.EncodeToString(pt) != ptHex {
			t.Errorf("golden value %s/%s: Open = %x, %v; want %s", set, modeName, pt, err, ptHex)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no golden values")
	}
}

func writeGoldenKeystore(t *testing.T) {
	ctx := context.Background()
	if err := os.MkdirAll(goldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{goldenKeystore, goldenKey, goldenValues} {
		_ = os.Remove(p)
	}
	key := make([]byte, MasterKeySize)
	for i := range key {
		key[i] = byte(0xc0 + i)
	}
	if err := os.WriteFile(goldenKey, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := goldenMasterKey(t)
	if _, err := Create(ctx, goldenKeystore, mk, WithClock(clock)); err != nil {
		t.Fatal(err)
	}
	e, err := Edit(ctx, goldenKeystore, mk, WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"pii", "finance"} {
		if _, err := e.AddKeySet(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []func() error{
		func() error { _, err := e.Rotate(ctx, "pii"); return err },
		func() error { _, err := e.Rotate(ctx, "pii"); return err },
		func() error { _, err := e.Disable("pii", 1); return err },
		func() error { return e.Commit(ctx) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ks, err := e.Keystore()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("# Values sealed under testdata/v1/keystore.json. Regenerate with: go test ./keystore -run TestGoldenKeystore -update\n")
	b.WriteString("# key-set mode table column plaintext-hex envelope-hex\n")
	for _, set := range []string{"pii", "finance"} {
		for _, mode := range []envelope.Mode{envelope.Randomized, envelope.Deterministic} {
			c, err := ks.Column(set, "public.users", "email", mode)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range c.Versions() {
				pt := []byte(fmt.Sprintf("%s %s v%d", set, mode, v))
				env, err := c.SealWith(nil, pt, v)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%s %s public.users email %x %x\n", set, mode, pt, env)
			}
		}
	}
	if err := os.WriteFile(goldenValues, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(goldenKeystore, 0o644) // committed to git, which keeps no 0600
}
