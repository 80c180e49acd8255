package keystore

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// MasterKeySize is the length of a raw master key.
const MasterKeySize = 32

// maxKeyFileSize bounds what is read from a key file.
const maxKeyFileSize = 1024

// rawWrapper wraps with XChaCha20-Poly1305 under a 256-bit key-encryption
// key. A wrapped value is nonce (24 bytes) || ciphertext || tag (16 bytes).
// Random 192-bit nonces make the number of wraps under one key a non-issue.
type rawWrapper struct {
	aead cipher.AEAD
}

var errUnwrap = errors.New("keystore: failed to unwrap")

func newRawWrapper(kek []byte) (*rawWrapper, error) {
	aead, err := chacha20poly1305.NewX(kek)
	if err != nil {
		return nil, fmt.Errorf("failed to build key wrapper: %w", err)
	}
	return &rawWrapper{aead: aead}, nil
}

func (w *rawWrapper) Wrap(_ context.Context, plaintext, ad []byte) ([]byte, error) {
	out := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+chacha20poly1305.Overhead)
	_, _ = io.ReadFull(rand.Reader, out) // crypto/rand never fails
	return w.aead.Seal(out, out, plaintext, ad), nil
}

func (w *rawWrapper) Unwrap(_ context.Context, wrapped, ad []byte) ([]byte, error) {
	if len(wrapped) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return nil, errUnwrap
	}
	pt, err := w.aead.Open(nil, wrapped[:chacha20poly1305.NonceSizeX], wrapped[chacha20poly1305.NonceSizeX:], ad)
	if err != nil {
		return nil, errUnwrap
	}
	return pt, nil
}

func (w *rawWrapper) String() string             { return "keystore.Wrapper(REDACTED)" }
func (w *rawWrapper) GoString() string           { return w.String() }
func (w *rawWrapper) Format(f fmt.State, _ rune) { redacted(f, w.String()) }

// unlockRaw is Unlock for every source of a raw 256-bit key.
func unlockRaw(key []byte, params *MasterParams) (Wrapper, *MasterParams, error) {
	if params != nil && params.Kind != KindRaw256 {
		return nil, nil, fmt.Errorf("failed to unlock: the keystore expects a %s master key: %w", params.Kind, ErrWrongMasterKey)
	}
	w, err := newRawWrapper(key)
	if err != nil {
		return nil, nil, err
	}
	return w, &MasterParams{Kind: KindRaw256}, nil
}

// decodeRawKey accepts exactly 32 bytes, or base64 (standard or URL
// alphabet, padded or not, surrounding whitespace ignored) of 32 bytes.
// Errors never include the input.
func decodeRawKey(b []byte) ([]byte, error) {
	if len(b) == MasterKeySize {
		return bytes.Clone(b), nil
	}
	s := bytes.TrimSpace(b)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		k := make([]byte, enc.DecodedLen(len(s)))
		n, err := enc.Decode(k, s)
		if err == nil && n == MasterKeySize {
			return k[:n], nil
		}
	}
	return nil, fmt.Errorf("failed to decode master key: want 32 bytes or their base64: %w", ErrMasterKeySource)
}

// fileSource reads a raw key from a file on every Unlock, so that a reload
// sees a replaced key file.
type fileSource struct{ path string }

func (s *fileSource) String() string             { return "file:" + s.path }
func (s *fileSource) GoString() string           { return s.String() }
func (s *fileSource) Format(f fmt.State, _ rune) { redacted(f, s.String()) }

func (s *fileSource) Unlock(_ context.Context, params *MasterParams) (Wrapper, *MasterParams, error) {
	key, err := readKeyFile(s.path)
	if err != nil {
		return nil, nil, err
	}
	defer clear(key)
	return unlockRaw(key, params)
}

func (s *fileSource) Provision(_ context.Context) (bool, error) {
	err := GenerateMasterKeyFile(s.path)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	return err == nil, err
}

// readKeyFile reads and checks a master-key file: a regular file that
// neither group nor others may read or write.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open master-key file: %w: %w", ErrMasterKeySource, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat master-key file: %w: %w", ErrMasterKeySource, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("failed to use master-key file %s: not a regular file: %w", path, ErrInsecureKeyFile)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("failed to use master-key file %s: mode %04o gives group or others access (want 0600): %w", path, perm, ErrInsecureKeyFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read master-key file: %w: %w", ErrMasterKeySource, err)
	}
	defer clear(b)
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("failed to read master-key file %s: too large: %w", path, ErrMasterKeySource)
	}
	return decodeRawKey(b)
}

// GenerateMasterKeyFile writes 32 random bytes to path with mode 0600,
// creating missing parent directories with mode 0700. It never overwrites:
// an existing path gives an error that wraps os.ErrExist.
func GenerateMasterKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("failed to create master-key directory: %w", err)
	}
	key := make([]byte, MasterKeySize)
	_, _ = io.ReadFull(rand.Reader, key) // crypto/rand never fails
	defer clear(key)
	if err := writeFileAtomic(path, key, true); err != nil {
		return fmt.Errorf("failed to write master-key file: %w", err)
	}
	return nil
}

// envSource reads a base64 raw key from an environment variable.
type envSource struct {
	name   string
	lookup func(string) (string, bool)
}

func (s *envSource) String() string             { return "env:" + s.name }
func (s *envSource) GoString() string           { return s.String() }
func (s *envSource) Format(f fmt.State, _ rune) { redacted(f, s.String()) }

func (s *envSource) Unlock(_ context.Context, params *MasterParams) (Wrapper, *MasterParams, error) {
	v, ok := s.lookup(s.name)
	if !ok || v == "" {
		return nil, nil, fmt.Errorf("failed to read master key: environment variable %s is not set: %w", s.name, ErrMasterKeySource)
	}
	key, err := decodeRawKey([]byte(v))
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read master key from %s: %w", s.name, err)
	}
	defer clear(key)
	return unlockRaw(key, params)
}

// staticSource holds a raw key in memory.
type staticSource struct{ key []byte }

// NewStaticMasterKey returns a source for a raw 32-byte key held in memory,
// for tests and for programs that fetch the key themselves. key is copied.
func NewStaticMasterKey(key []byte) (MasterKeySource, error) {
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("failed to build static master key: got %d bytes, want %d: %w", len(key), MasterKeySize, ErrMasterKeySource)
	}
	return &staticSource{key: bytes.Clone(key)}, nil
}

func (s *staticSource) String() string             { return "static" }
func (s *staticSource) GoString() string           { return s.String() }
func (s *staticSource) Format(f fmt.State, _ rune) { redacted(f, s.String()) }

func (s *staticSource) Unlock(_ context.Context, params *MasterParams) (Wrapper, *MasterParams, error) {
	return unlockRaw(s.key, params)
}

// passphraseSource stretches a passphrase with Argon2id. It reads the
// passphrase once and keeps it, with the last derived key, so that a reload
// neither prompts again nor pays for Argon2id again.
type passphraseSource struct {
	lookup  func(string) (string, bool)
	envName string
	prompt  func(string) ([]byte, error)
	cost    Argon2idParams

	mu       sync.Mutex
	pass     []byte
	lastSalt []byte
	lastCost Argon2idParams
	lastKEK  []byte
}

func (s *passphraseSource) String() string             { return "passphrase" }
func (s *passphraseSource) GoString() string           { return s.String() }
func (s *passphraseSource) Format(f fmt.State, _ rune) { redacted(f, s.String()) }

func (s *passphraseSource) Unlock(_ context.Context, params *MasterParams) (Wrapper, *MasterParams, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if params != nil && params.Kind != KindArgon2id {
		return nil, nil, fmt.Errorf("failed to unlock: the keystore expects a %s master key, not a passphrase: %w", params.Kind, ErrWrongMasterKey)
	}
	creating := params == nil
	if creating {
		salt := make([]byte, minSaltLen)
		_, _ = io.ReadFull(rand.Reader, salt) // crypto/rand never fails
		c := s.cost
		c.Salt = salt
		params = &MasterParams{Kind: KindArgon2id, Argon2id: &c}
	}
	p := params.Argon2id
	if p == nil || len(p.Salt) < minSaltLen || len(p.Salt) > maxSaltLen {
		return nil, nil, fmt.Errorf("failed to unlock: bad Argon2id salt: %w", ErrCorrupt)
	}
	if err := checkArgon2idCost(*p); err != nil {
		return nil, nil, fmt.Errorf("failed to unlock: recorded Argon2id costs out of range: %w", ErrCorrupt)
	}
	if err := s.readPassphrase(creating); err != nil {
		return nil, nil, err
	}
	if s.lastKEK == nil || !bytes.Equal(s.lastSalt, p.Salt) || s.lastCost.Time != p.Time ||
		s.lastCost.MemoryKiB != p.MemoryKiB || s.lastCost.Threads != p.Threads {
		clear(s.lastKEK)
		s.lastKEK = argon2.IDKey(s.pass, p.Salt, p.Time, p.MemoryKiB, p.Threads, MasterKeySize)
		s.lastSalt = bytes.Clone(p.Salt)
		s.lastCost = Argon2idParams{Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads}
	}
	w, err := newRawWrapper(s.lastKEK)
	if err != nil {
		return nil, nil, err
	}
	return w, params, nil
}

// readPassphrase fills s.pass from the environment or the prompt. A new
// passphrase (creating) must be long enough and, when prompted, typed twice.
func (s *passphraseSource) readPassphrase(creating bool) error {
	if s.pass == nil {
		if v, ok := s.lookup(s.envName); ok && v != "" {
			s.pass = []byte(v)
		} else if s.prompt != nil {
			p, err := s.prompt("Passphrase: ")
			if err != nil {
				return fmt.Errorf("failed to read passphrase: %w: %w", ErrMasterKeySource, err)
			}
			if creating {
				again, err := s.prompt("Repeat passphrase: ")
				if err != nil {
					return fmt.Errorf("failed to read passphrase: %w: %w", ErrMasterKeySource, err)
				}
				if subtle.ConstantTimeCompare(p, again) != 1 {
					return fmt.Errorf("failed to read passphrase: the two entries differ: %w", ErrMasterKeySource)
				}
			}
			s.pass = p
		} else {
			return fmt.Errorf("failed to read passphrase: set %s or run on a terminal: %w", s.envName, ErrMasterKeySource)
		}
	}
	if creating && len(s.pass) < MinPassphraseLength {
		s.pass = nil
		return fmt.Errorf("failed to accept passphrase: fewer than %d bytes: %w", MinPassphraseLength, ErrWeakPassphrase)
	}
	return nil
}
