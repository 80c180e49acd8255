// Package backup writes and reads escrow backups of a keystore's data keys:
// every version of every key set, disabled ones included, encrypted with
// age (filippo.io/age) to X25519 recipients and/or a passphrase, and
// independent of the master key, so that the keys survive the loss of the
// keystore host or of the HSM.
//
// Entry points:
//
//   - [Write] encrypts a [keystore.Export] (from keystore.ExportKeys) to
//     [Recipients] and writes the backup.
//   - [Parse] reads a backup's plaintext [Header] (key sets, versions,
//     creation time, recipients) without any key; `pgseal keys backup
//     inspect` prints it.
//   - [File.Open] decrypts a parsed backup with age identities and returns
//     the Export, which keystore.Import turns into a keystore under a new
//     master key.
//
// A backup is a text file: a format line, the header as one line of JSON,
// then one armored age file per recipient group (age requires a passphrase
// recipient to be alone in its file, so X25519 recipients share one section
// and a passphrase gets its own). Every section holds the same keys and the
// SHA-256 of the exact header bytes; File.Open refuses a backup whose header
// does not match that hash or whose keys do not match the header, and age
// authenticates each section. The header is therefore trusted only after
// File.Open: Parse alone verifies nothing. docs/backup.md describes the
// format and the escrow procedure.
//
// The package does not read keystores, prompt for passphrases or log.
package backup
