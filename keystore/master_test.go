package keystore

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMasterKeySource(t *testing.T) {
	tests := []struct {
		spec    string
		want    string
		wantErr error
	}{
		{"file:/etc/pgseal/master.key", "file:/etc/pgseal/master.key", nil},
		{"env:PGSEAL_MASTER_KEY", "env:PGSEAL_MASTER_KEY", nil},
		{"passphrase", "passphrase", nil},
		{"", "", ErrMasterKeySource},
		{"file:", "", ErrMasterKeySource},
		{"env:", "", ErrMasterKeySource},
		{"env:BAD-NAME", "", ErrMasterKeySource},
		{"pkcs11:slot=0", "", ErrMasterKeySource},
		{"passphrase:x", "", ErrMasterKeySource},
		{"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=", "", ErrMasterKeySource},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseMasterKeySource(tt.spec)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if len(tt.spec) > 20 && strings.Contains(err.Error(), tt.spec[:20]) {
					t.Errorf("error repeats the spec: %v", err)
				}
				return
			}
			if got.String() != tt.want {
				t.Errorf("String = %q, want %q", got.String(), tt.want)
			}
		})
	}
}

func writeKeyFile(t *testing.T, content []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(path, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask may have cut bits
		t.Fatal(err)
	}
	return path
}

func TestFileSource(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{7}, 32)
	b64 := base64.StdEncoding.EncodeToString(key)
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		wantErr error
	}{
		{"raw 0600", key, 0o600, nil},
		{"raw 0400", key, 0o400, nil},
		{"base64 with newline", []byte(b64 + "\n"), 0o600, nil},
		{"url base64 unpadded", []byte(base64.RawURLEncoding.EncodeToString(key)), 0o600, nil},
		{"group readable", key, 0o640, ErrInsecureKeyFile},
		{"world readable", key, 0o604, ErrInsecureKeyFile},
		{"group writable", key, 0o620, ErrInsecureKeyFile},
		{"short", key[:31], 0o600, ErrMasterKeySource},
		{"long", append(key, 1), 0o600, ErrMasterKeySource},
		{"base64 of 16 bytes", []byte(base64.StdEncoding.EncodeToString(key[:16])), 0o600, ErrMasterKeySource},
		{"huge", bytes.Repeat([]byte("A"), 4096), 0o600, ErrMasterKeySource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ParseMasterKeySource("file:" + writeKeyFile(t, tt.content, tt.mode))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = src.Unlock(ctx, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Unlock error = %v, want %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), b64[:12]) {
				t.Errorf("error leaks key material: %v", err)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		dir := t.TempDir()
		_ = os.Chmod(dir, 0o700)
		src, _ := ParseMasterKeySource("file:" + dir)
		if _, _, err := src.Unlock(ctx, nil); !errors.Is(err, ErrInsecureKeyFile) {
			t.Errorf("Unlock(directory) error = %v, want ErrInsecureKeyFile", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		src, _ := ParseMasterKeySource("file:" + filepath.Join(t.TempDir(), "nope"))
		if _, _, err := src.Unlock(ctx, nil); !errors.Is(err, ErrMasterKeySource) || !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Unlock(missing) error = %v, want ErrMasterKeySource and fs.ErrNotExist", err)
		}
	})
}

func TestProvisionKeyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "master.key")
	src, _ := ParseMasterKeySource("file:" + path)
	p := src.(Provisioner)
	created, err := p.Provision(ctx)
	if err != nil || !created {
		t.Fatalf("Provision = %v, %v; want true, nil", created, err)
	}
	first, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if len(first) != MasterKeySize || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %d bytes, mode %04o; want 32, 0600", len(first), fi.Mode().Perm())
	}
	created, err = p.Provision(ctx)
	if err != nil || created {
		t.Fatalf("second Provision = %v, %v; want false, nil", created, err)
	}
	if again, _ := os.ReadFile(path); !bytes.Equal(again, first) {
		t.Errorf("second Provision changed the key file")
	}
	if err := GenerateMasterKeyFile(path); !errors.Is(err, os.ErrExist) {
		t.Errorf("GenerateMasterKeyFile over a file: error = %v, want os.ErrExist", err)
	}
}

func TestEnvSource(t *testing.T) {
	ctx := context.Background()
	key := bytes.Repeat([]byte{9}, 32)
	env := map[string]string{"GOOD": base64.StdEncoding.EncodeToString(key), "BAD": "not base64!", "SHORT": "AAAA"}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }
	tests := []struct {
		name    string
		wantErr error
	}{
		{"GOOD", nil},
		{"BAD", ErrMasterKeySource},
		{"SHORT", ErrMasterKeySource},
		{"UNSET", ErrMasterKeySource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ParseMasterKeySource("env:"+tt.name, WithLookupEnv(lookup))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := src.Unlock(ctx, nil); !errors.Is(err, tt.wantErr) {
				t.Errorf("Unlock error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestPassphraseSource(t *testing.T) {
	ctx := context.Background()
	noEnv := WithLookupEnv(func(string) (string, bool) { return "", false })
	cheap := WithArgon2idCost(1, 64, 1)
	prompter := func(answers ...string) (func(string) ([]byte, error), *int) {
		n := 0
		return func(string) ([]byte, error) {
			if n >= len(answers) {
				return nil, errors.New("no more answers")
			}
			n++
			return []byte(answers[n-1]), nil
		}, &n
	}
	t.Run("prompt twice on create, once on reopen", func(t *testing.T) {
		prompt, n := prompter("long enough passphrase", "long enough passphrase")
		src, _ := ParseMasterKeySource("passphrase", noEnv, cheap, WithPrompt(prompt))
		w1, params, err := src.Unlock(ctx, nil)
		if err != nil || *n != 2 {
			t.Fatalf("create: %v after %d prompts", err, *n)
		}
		if params.Kind != KindArgon2id || len(params.Argon2id.Salt) != 16 || params.Argon2id.MemoryKiB != 64 {
			t.Errorf("params = %+v", params.Argon2id)
		}
		wrapped, _ := w1.Wrap(ctx, []byte("data key"), []byte("ad"))
		w2, _, err := src.Unlock(ctx, params)
		if err != nil || *n != 2 {
			t.Fatalf("reopen: %v after %d prompts", err, *n)
		}
		if got, err := w2.Unwrap(ctx, wrapped, []byte("ad")); err != nil || string(got) != "data key" {
			t.Errorf("Unwrap = %q, %v", got, err)
		}
		if _, err := w2.Unwrap(ctx, wrapped, []byte("other ad")); err == nil {
			t.Errorf("Unwrap under other associated data succeeded")
		}
	})
	t.Run("entries differ", func(t *testing.T) {
		prompt, _ := prompter("long enough passphrase", "long enough passphrasE")
		src, _ := ParseMasterKeySource("passphrase", noEnv, cheap, WithPrompt(prompt))
		if _, _, err := src.Unlock(ctx, nil); !errors.Is(err, ErrMasterKeySource) {
			t.Errorf("error = %v, want ErrMasterKeySource", err)
		}
	})
	t.Run("too short", func(t *testing.T) {
		src := cheapPassphrase(t, "short")
		if _, _, err := src.Unlock(ctx, nil); !errors.Is(err, ErrWeakPassphrase) {
			t.Errorf("error = %v, want ErrWeakPassphrase", err)
		}
	})
	t.Run("no env and no prompt", func(t *testing.T) {
		src, _ := ParseMasterKeySource("passphrase", noEnv, cheap)
		if _, _, err := src.Unlock(ctx, nil); !errors.Is(err, ErrMasterKeySource) {
			t.Errorf("error = %v, want ErrMasterKeySource", err)
		}
	})
	t.Run("other env variable", func(t *testing.T) {
		lookup := WithLookupEnv(func(name string) (string, bool) { return "new long passphrase", name == "NEW_PASS" })
		src, _ := ParseMasterKeySource("passphrase", lookup, cheap, WithPassphraseEnv("NEW_PASS"))
		if _, _, err := src.Unlock(ctx, nil); err != nil {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("cost out of range", func(t *testing.T) {
		if _, err := ParseMasterKeySource("passphrase", WithArgon2idCost(0, 64, 1)); !errors.Is(err, ErrMasterKeySource) {
			t.Errorf("error = %v, want ErrMasterKeySource", err)
		}
	})
}
