// Package envelope is pgseal's ciphertext format: how one column value is
// encrypted, what the resulting bytes look like, and how they are opened
// again.
//
// An envelope names its key (key set id and key version) and is bound to
// its place: the associated data covers the format version, the mode, the
// key set id, the key version, the schema-qualified table and the column, so
// a value copied into another column or table does not open. The byte
// layout, the key derivation and the reasons for each algorithm are written
// down in docs/envelope.md.
//
// Entry points:
//
//   - [NewColumnCipher] builds the cipher for one column from the versions
//     of one key set. Build it once and reuse it: it is immutable and safe
//     for concurrent use. Most callers get one from keystore.Keystore.Column.
//   - [ColumnCipher.Seal] and [ColumnCipher.Open] encrypt and decrypt,
//     appending to a caller-supplied buffer.
//   - [Peek] reads the header (mode, key set id, key version) without
//     decrypting.
//
// Two modes exist. [Randomized] is XChaCha20-Poly1305 with a random 192-bit
// nonce; equal plaintexts give unrelated ciphertexts. [Deterministic] is
// AES-SIV (RFC 5297, Tink's implementation); equal plaintexts in one column
// under one key version give equal ciphertexts, which allows equality
// lookups, joins and unique indexes at the price of revealing equality.
//
// Every decryption failure is the single opaque error [ErrDecrypt]: a
// tampered value, a value from another column, a disabled or unknown key
// version and garbage all look the same to the caller.
//
// The package does not store keys, choose key versions or know about
// policies; that is the keystore's and the proxy's business.
package envelope
