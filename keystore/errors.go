package keystore

import "errors"

// Sentinel errors. Callers branch on them with errors.Is; messages never
// contain key material or passphrases.
var (
	// ErrWrongMasterKey means the master key does not unlock the keystore:
	// another key, another passphrase, a master key of another kind, or an
	// altered wrapped keystore key (the two cannot be told apart).
	ErrWrongMasterKey = errors.New("keystore: wrong master key")
	// ErrCorrupt means the keystore file is truncated, tampered with or
	// otherwise invalid.
	ErrCorrupt = errors.New("keystore: keystore file is corrupt")
	// ErrUnknownFormat means the keystore file has a format version this
	// build does not read.
	ErrUnknownFormat = errors.New("keystore: unknown keystore format version")
	// ErrExists means Create found a keystore already at the path.
	ErrExists = errors.New("keystore: keystore already exists")
	// ErrConcurrentUpdate means the keystore file changed between Edit and
	// Commit; nothing was written.
	ErrConcurrentUpdate = errors.New("keystore: keystore file changed since it was opened")

	// ErrMasterKeySource means a master-key source is unusable: a bad spec,
	// a missing file or variable, a bad encoding or length.
	ErrMasterKeySource = errors.New("keystore: master-key source unusable")
	// ErrInsecureKeyFile means a master-key file is readable or writable by
	// group or others, or is not a regular file.
	ErrInsecureKeyFile = errors.New("keystore: master-key file has insecure permissions")
	// ErrWeakPassphrase means a new passphrase is shorter than
	// MinPassphraseLength.
	ErrWeakPassphrase = errors.New("keystore: passphrase too short")

	// ErrUnknownKeySet means no key set has the given name or id.
	ErrUnknownKeySet = errors.New("keystore: unknown key set")
	// ErrUnknownVersion means the key set has no such version.
	ErrUnknownVersion = errors.New("keystore: unknown key version")
	// ErrVersionDisabled means the key version exists but is disabled.
	ErrVersionDisabled = errors.New("keystore: key version is disabled")
	// ErrKeySetExists means a key set with that name already exists.
	ErrKeySetExists = errors.New("keystore: key set already exists")
	// ErrInvalidName means a key set name does not match NamePattern.
	ErrInvalidName = errors.New("keystore: invalid key set name")
	// ErrPrimaryVersion means the operation would disable the primary
	// version; rotate first.
	ErrPrimaryVersion = errors.New("keystore: refusing to disable the primary version")
)
