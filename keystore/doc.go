// Package keystore holds pgseal's keys: a master key that wraps named data
// keys ("key sets"), each with numbered versions, one of them primary.
//
// Entry points:
//
//   - [ParseMasterKeySource] turns a spec ("file:PATH", "env:VAR",
//     "passphrase") into a [MasterKeySource]; [NewStaticMasterKey] makes one
//     from bytes for tests and embedding programs.
//   - [Open] loads a keystore file into an immutable [Keystore]. The proxy
//     calls it at start and again to reload, then swaps its pointer; a
//     Keystore is safe for concurrent use.
//   - [Keystore.Column] builds the envelope.ColumnCipher of one column. Build
//     it once per column and reuse it.
//   - [Create] writes a new, empty keystore; [Edit] opens one for the key
//     lifecycle (add, rotate, disable, rewrap) and [Editor.Commit] writes
//     the result atomically.
//
// The file holds only wrapped key material and metadata, authenticated as a
// whole: a wrong master key, a truncated or tampered file and an unknown
// format version each fail with their own sentinel error, and never load in
// part. docs/keystore.md describes the file, the key hierarchy and every
// cryptographic choice.
//
// The package does not log, read configuration or talk to a database. It
// does not decide which column uses which key set; the policy does.
package keystore
