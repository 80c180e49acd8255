package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// FormatV1 is the first byte of every envelope written by this package.
const FormatV1 byte = 1

// HeaderSize is the length of the envelope header: format version (1 byte),
// mode (1 byte), key set id (4 bytes, big-endian) and key version (4 bytes,
// big-endian).
const HeaderSize = 10

// Sizes of the mode-specific parts that follow the header.
const (
	// RandomizedNonceSize is the XChaCha20-Poly1305 nonce length.
	RandomizedNonceSize = 24
	// RandomizedTagSize is the Poly1305 tag length.
	RandomizedTagSize = 16
	// DeterministicSIVSize is the AES-SIV synthetic IV length.
	DeterministicSIVSize = 16
)

// MaxPlaintextSize is the largest value Seal accepts: 1 GiB, PostgreSQL's
// limit for one bytea value.
const MaxPlaintextSize = 1 << 30

// Mode is how a column is encrypted. Its numeric value is the second byte of
// an envelope.
type Mode uint8

const (
	// Randomized is XChaCha20-Poly1305 with a random nonce: equal plaintexts
	// give unrelated ciphertexts.
	Randomized Mode = 1
	// Deterministic is AES-SIV: equal plaintexts in one column under one key
	// version give equal ciphertexts.
	Deterministic Mode = 2
)

// String returns "randomized", "deterministic" or "mode(N)".
func (m Mode) String() string {
	switch m {
	case Randomized:
		return "randomized"
	case Deterministic:
		return "deterministic"
	default:
		return fmt.Sprintf("mode(%d)", uint8(m))
	}
}

// Valid reports whether m is a mode this package implements.
func (m Mode) Valid() bool { return m == Randomized || m == Deterministic }

// ParseMode parses "randomized" or "deterministic".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "randomized":
		return Randomized, nil
	case "deterministic":
		return Deterministic, nil
	default:
		return 0, fmt.Errorf("failed to parse mode %q: %w", s, ErrUnknownMode)
	}
}

// Overhead returns how many bytes an envelope in mode m adds to its
// plaintext, or 0 for an unknown mode.
func Overhead(m Mode) int {
	switch m {
	case Randomized:
		return HeaderSize + RandomizedNonceSize + RandomizedTagSize
	case Deterministic:
		return HeaderSize + DeterministicSIVSize
	default:
		return 0
	}
}

// Errors. Callers branch on them with errors.Is.
var (
	// ErrDecrypt is the one error Open returns, whatever went wrong:
	// tampering, a value moved from another column, a key version that is
	// disabled or unknown to this cipher, or bytes that are no envelope.
	ErrDecrypt = errors.New("envelope: failed to decrypt value")
	// ErrMalformed means Peek found bytes that are not a well-formed
	// envelope header (too short, or an unknown mode).
	ErrMalformed = errors.New("envelope: malformed envelope")
	// ErrUnknownFormat means Peek found a format version this package does
	// not read.
	ErrUnknownFormat = errors.New("envelope: unknown envelope format version")
	// ErrUnknownMode means a mode name or number is not one of Randomized
	// and Deterministic.
	ErrUnknownMode = errors.New("envelope: unknown mode")
	// ErrVersionNotActive means SealWith was asked for a key version the
	// column cipher does not hold (disabled, or unknown).
	ErrVersionNotActive = errors.New("envelope: key version not active for this column")
	// ErrTooLarge means a plaintext is longer than MaxPlaintextSize.
	ErrTooLarge = errors.New("envelope: plaintext too large")
	// ErrInvalidColumn means NewColumnCipher got an unusable table or column
	// name, key list or primary version.
	ErrInvalidColumn = errors.New("envelope: invalid column cipher parameters")
)

// Header is the clear part of an envelope.
type Header struct {
	// Format is the envelope format version, FormatV1.
	Format byte
	// Mode is how the value was encrypted.
	Mode Mode
	// KeySetID identifies the key set (assigned by the keystore).
	KeySetID uint32
	// KeyVersion is the key set version the value was sealed under.
	KeyVersion uint32
}

// Peek returns the header of env without decrypting it. It checks that env
// is long enough for its mode, nothing more: a nil error does not mean the
// value will open.
func Peek(env []byte) (Header, error) {
	if len(env) < HeaderSize {
		return Header{}, ErrMalformed
	}
	if env[0] != FormatV1 {
		return Header{}, ErrUnknownFormat
	}
	h := Header{
		Format:     env[0],
		Mode:       Mode(env[1]),
		KeySetID:   binary.BigEndian.Uint32(env[2:6]),
		KeyVersion: binary.BigEndian.Uint32(env[6:10]),
	}
	if !h.Mode.Valid() || len(env) < Overhead(h.Mode) {
		return Header{}, ErrMalformed
	}
	return h, nil
}

// appendHeader appends the encoded h to dst.
func appendHeader(dst []byte, h Header) []byte {
	dst = append(dst, h.Format, byte(h.Mode))
	dst = binary.BigEndian.AppendUint32(dst, h.KeySetID)
	return binary.BigEndian.AppendUint32(dst, h.KeyVersion)
}

// maxNameLen bounds table and column names. PostgreSQL identifiers are at
// most 63 bytes; a quoted, schema-qualified table name stays far below this.
const maxNameLen = 1024

// appendPlace appends the length-prefixed table and column names. The
// prefixes make the encoding injective: ("a.b", "c") and ("a", "b.c") never
// encode alike.
func appendPlace(dst []byte, table, column string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(table)))
	dst = append(dst, table...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(column)))
	return append(dst, column...)
}

// associatedData is the AEAD associated data of an envelope: the encoded
// header followed by the length-prefixed table and column. Everything the
// header says is therefore authenticated, and the place binds the value.
func associatedData(h Header, table, column string) []byte {
	ad := make([]byte, 0, HeaderSize+4+len(table)+len(column))
	ad = appendHeader(ad, h)
	return appendPlace(ad, table, column)
}
