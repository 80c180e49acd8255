package envelope

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tink-crypto/tink-go/v2/daead/subtle"
	"golang.org/x/crypto/chacha20poly1305"
)

// VersionKey pairs a key version with its data key.
type VersionKey struct {
	Version uint32
	Key     DataKey
}

// ColumnSpec names a column and how it is encrypted.
type ColumnSpec struct {
	// Table is the schema-qualified table name, e.g. "public.users". It
	// enters the associated data and the key derivation byte for byte, so
	// callers must always spell a table the same way.
	Table string
	// Column is the column name, e.g. "email".
	Column string
	// Mode is Randomized or Deterministic.
	Mode Mode
	// KeySetID is the keystore's id of the key set whose versions are given.
	KeySetID uint32
}

// ColumnCipher seals and opens the values of one column under the active
// versions of one key set. It is immutable once built and safe for
// concurrent use; build it once per column and keep it.
type ColumnCipher struct {
	spec     ColumnSpec
	primary  uint32
	versions []uint32        // primary first, then the others, newest first
	ciphers  []versionCipher // same order as versions
}

// versionCipher is the cipher of one key version for one column.
type versionCipher struct {
	version uint32
	header  [HeaderSize]byte
	ad      []byte
	aead    cipher.AEAD    // Randomized
	siv     *subtle.AESSIV // Deterministic
}

// NewColumnCipher builds the cipher of the column spec names from the
// active versions in keys, sealing new values under primary. keys must hold
// primary; versions left out (disabled ones) do not open. The column keys
// are derived here, once, with HKDF-SHA256 (see docs/envelope.md).
func NewColumnCipher(spec ColumnSpec, primary uint32, keys []VersionKey) (*ColumnCipher, error) {
	if !spec.Mode.Valid() {
		return nil, fmt.Errorf("failed to build column cipher: %w", ErrUnknownMode)
	}
	if err := checkPlace(spec.Table, spec.Column); err != nil {
		return nil, err
	}
	c := &ColumnCipher{spec: spec, primary: primary}
	ordered := slices.Clone(keys)
	slices.SortFunc(ordered, func(a, b VersionKey) int {
		switch {
		case a.Version == primary:
			return -1
		case b.Version == primary:
			return 1
		case a.Version > b.Version:
			return -1
		case a.Version < b.Version:
			return 1
		}
		return 0
	})
	for i, vk := range ordered {
		if vk.Version == 0 || vk.Key.IsZero() {
			return nil, fmt.Errorf("failed to build column cipher: version %d has no key: %w", vk.Version, ErrInvalidColumn)
		}
		if i > 0 && ordered[i-1].Version == vk.Version {
			return nil, fmt.Errorf("failed to build column cipher: version %d given twice: %w", vk.Version, ErrInvalidColumn)
		}
		vc, err := newVersionCipher(spec, vk)
		if err != nil {
			return nil, err
		}
		c.versions = append(c.versions, vk.Version)
		c.ciphers = append(c.ciphers, vc)
	}
	if len(c.versions) == 0 || c.versions[0] != primary {
		return nil, fmt.Errorf("failed to build column cipher: primary version %d not among the keys: %w", primary, ErrInvalidColumn)
	}
	return c, nil
}

func checkPlace(table, column string) error {
	switch {
	case table == "" || column == "":
		return fmt.Errorf("failed to build column cipher: empty table or column name: %w", ErrInvalidColumn)
	case len(table) > maxNameLen || len(column) > maxNameLen:
		return fmt.Errorf("failed to build column cipher: table or column name longer than %d bytes: %w", maxNameLen, ErrInvalidColumn)
	case !strings.Contains(table, "."):
		return fmt.Errorf("failed to build column cipher: table %q is not schema-qualified: %w", table, ErrInvalidColumn)
	}
	return nil
}

func newVersionCipher(spec ColumnSpec, vk VersionKey) (versionCipher, error) {
	h := Header{Format: FormatV1, Mode: spec.Mode, KeySetID: spec.KeySetID, KeyVersion: vk.Version}
	vc := versionCipher{version: vk.Version, ad: associatedData(h, spec.Table, spec.Column)}
	appendHeader(vc.header[:0], h)
	switch spec.Mode {
	case Randomized:
		k, err := deriveColumnKey(vk.Key, LabelRandomized, spec.Table, spec.Column, chacha20poly1305.KeySize)
		if err != nil {
			return versionCipher{}, fmt.Errorf("failed to derive column key: %w", err)
		}
		vc.aead, err = chacha20poly1305.NewX(k)
		clear(k)
		if err != nil {
			return versionCipher{}, fmt.Errorf("failed to build xchacha20-poly1305: %w", err)
		}
	case Deterministic:
		k, err := deriveColumnKey(vk.Key, LabelDeterministic, spec.Table, spec.Column, subtle.AESSIVKeySize)
		if err != nil {
			return versionCipher{}, fmt.Errorf("failed to derive column key: %w", err)
		}
		// AESSIV keeps slices of k, so k is not cleared.
		vc.siv, err = subtle.NewAESSIV(k)
		if err != nil {
			return versionCipher{}, fmt.Errorf("failed to build aes-siv: %w", err)
		}
	}
	return vc, nil
}

// Spec returns the column, mode and key set the cipher was built for.
func (c *ColumnCipher) Spec() ColumnSpec { return c.spec }

// Primary returns the key version Seal uses.
func (c *ColumnCipher) Primary() uint32 { return c.primary }

// Versions returns the key versions this cipher opens, primary first, then
// the others newest first. The slice is shared: callers must not modify it.
func (c *ColumnCipher) Versions() []uint32 { return c.versions }

// Seal appends the envelope of plaintext under the primary version to dst
// and returns the result. To avoid allocations, give dst enough spare
// capacity: len(plaintext)+Overhead(mode). dst must not overlap plaintext.
func (c *ColumnCipher) Seal(dst, plaintext []byte) ([]byte, error) {
	return c.seal(dst, plaintext, &c.ciphers[0])
}

// SealWith is Seal under a given active version. Deterministic lookups use
// it during a rotation to compute a value's ciphertext under every active
// version (see Versions). It returns ErrVersionNotActive for a version the
// cipher does not hold.
func (c *ColumnCipher) SealWith(dst, plaintext []byte, version uint32) ([]byte, error) {
	vc := c.lookup(version)
	if vc == nil {
		return dst, fmt.Errorf("failed to seal under version %d: %w", version, ErrVersionNotActive)
	}
	return c.seal(dst, plaintext, vc)
}

func (c *ColumnCipher) seal(dst, plaintext []byte, vc *versionCipher) ([]byte, error) {
	if len(plaintext) > MaxPlaintextSize {
		return dst, ErrTooLarge
	}
	switch c.spec.Mode {
	case Randomized:
		ret, out := sliceForAppend(dst, HeaderSize+RandomizedNonceSize, len(plaintext)+RandomizedTagSize)
		copy(out, vc.header[:])
		nonce := out[HeaderSize:]
		// crypto/rand.Read never fails; it crashes the program instead.
		_, _ = io.ReadFull(rand.Reader, nonce)
		return vc.aead.Seal(ret, nonce, plaintext, vc.ad), nil
	default:
		ct, err := vc.siv.EncryptDeterministically(plaintext, vc.ad)
		if err != nil {
			return dst, fmt.Errorf("failed to seal deterministic value: %w", err)
		}
		dst = append(dst, vc.header[:]...)
		return append(dst, ct...), nil
	}
}

// Open decrypts env, appends the plaintext to dst and returns the result.
// Every failure is ErrDecrypt, with nothing more said. dst must not overlap
// env.
func (c *ColumnCipher) Open(dst, env []byte) ([]byte, error) {
	if len(env) < Overhead(c.spec.Mode) || env[0] != FormatV1 || Mode(env[1]) != c.spec.Mode ||
		binary.BigEndian.Uint32(env[2:6]) != c.spec.KeySetID {
		return dst, ErrDecrypt
	}
	vc := c.lookup(binary.BigEndian.Uint32(env[6:10]))
	if vc == nil {
		return dst, ErrDecrypt
	}
	body := env[HeaderSize:]
	switch c.spec.Mode {
	case Randomized:
		out, err := vc.aead.Open(dst, body[:RandomizedNonceSize], body[RandomizedNonceSize:], vc.ad)
		if err != nil {
			return dst, ErrDecrypt
		}
		return out, nil
	default:
		pt, err := vc.siv.DecryptDeterministically(body, vc.ad)
		if err != nil {
			return dst, ErrDecrypt
		}
		return append(dst, pt...), nil
	}
}

// lookup returns the cipher of version, or nil. A linear scan beats a map
// for the handful of versions a key set has.
func (c *ColumnCipher) lookup(version uint32) *versionCipher {
	for i := range c.ciphers {
		if c.ciphers[i].version == version {
			return &c.ciphers[i]
		}
	}
	return nil
}

// String describes the cipher without key material.
func (c *ColumnCipher) String() string {
	return fmt.Sprintf("envelope.ColumnCipher(%s.%s, %s, key set 0x%08x, versions %v)",
		c.spec.Table, c.spec.Column, c.spec.Mode, c.spec.KeySetID, c.versions)
}

// GoString describes the cipher without key material.
func (c *ColumnCipher) GoString() string { return c.String() }

// Format writes the String description whatever the verb.
func (c *ColumnCipher) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// sliceForAppend extends in by n bytes and returns the whole slice and the
// n new bytes. When it must reallocate, it leaves room for spare more bytes
// so that the caller's next append does not reallocate again.
func sliceForAppend(in []byte, n, spare int) (head, tail []byte) {
	if total := len(in) + n; cap(in) >= total {
		head = in[:total]
	} else {
		head = make([]byte, total, total+spare)
		copy(head, in)
	}
	tail = head[len(in):]
	return head, tail
}
