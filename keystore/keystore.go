package keystore

import (
	"cmp"
	"context"
	"crypto/hmac"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/pgseal/pgseal/envelope"
)

// State is the state of one key version.
type State uint8

const (
	// StatePrimary is the one version new values are sealed under.
	StatePrimary State = iota + 1
	// StateActive versions open existing values but seal nothing new.
	StateActive
	// StateDisabled versions are kept for the record and open nothing.
	StateDisabled
)

// String returns "primary", "active" or "disabled".
func (s State) String() string {
	switch s {
	case StatePrimary:
		return "primary"
	case StateActive:
		return "active"
	case StateDisabled:
		return "disabled"
	default:
		return fmt.Sprintf("state(%d)", uint8(s))
	}
}

// VersionInfo describes one key version. It holds no key material.
type VersionInfo struct {
	Version   uint32
	State     State
	Created   time.Time
	Algorithm string
}

// KeySetInfo describes one key set. It holds no key material.
type KeySetInfo struct {
	Name     string
	ID       uint32 // the id envelopes carry
	Primary  uint32
	Versions []VersionInfo // ascending
}

func (k KeySetInfo) clone() KeySetInfo {
	k.Versions = slices.Clone(k.Versions)
	return k
}

// Keystore is a loaded keystore: the metadata and the unwrapped keys of
// every primary and active version. It is immutable and safe for concurrent
// use. To reload, Open again and swap the pointer.
//
// A Keystore prints as "keystore.Keystore(ID)" with every fmt verb.
type Keystore struct {
	id         string
	created    time.Time
	masterKind string
	sets       []KeySetInfo // sorted by name
	byName     map[string]int
	byID       map[uint32]int
	keys       map[uint32][]envelope.VersionKey // by key set id; primary and active only
	auditKey   []byte
}

// Option configures Open, Create and Edit.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock replaces time.Now for creation times.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

func buildOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Open reads the keystore at path and unlocks it with mk. It fails with
// ErrWrongMasterKey, ErrCorrupt, ErrUnknownFormat or a master-key source
// error, and never returns a partly loaded keystore. A missing file gives
// an error that wraps fs.ErrNotExist.
func Open(ctx context.Context, path string, mk MasterKeySource, opts ...Option) (*Keystore, error) {
	data, err := readKeystoreFile(path)
	if err != nil {
		return nil, err
	}
	u, err := unlock(ctx, data, mk, false)
	if err != nil {
		return nil, err
	}
	return u.keystore()
}

// readKeystoreFile reads at most maxFileSize+1 bytes of path.
func readKeystoreFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open keystore: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read keystore: %w", err)
	}
	return data, nil
}

// unlocked is a verified keystore with its unwrapping state.
type unlocked struct {
	doc     *document
	wrapper Wrapper
	metaKey []byte
	// keys holds unwrapped data keys by key set id and version.
	keys map[uint32]map[uint32]envelope.DataKey
}

// unlock decodes data, unlocks it with mk, verifies the MAC and unwraps the
// data keys: those of primary and active versions, or all with
// withDisabled.
func unlock(ctx context.Context, data []byte, mk MasterKeySource, withDisabled bool) (*unlocked, error) {
	doc, err := decodeFile(data)
	if err != nil {
		return nil, err
	}
	w, _, err := mk.Unlock(ctx, masterFromJSON(doc.body.Master))
	if err != nil {
		return nil, err
	}
	metaKey, err := w.Unwrap(ctx, doc.body.MetaKey, metaKeyAD(doc.id))
	if err != nil {
		return nil, fmt.Errorf("failed to unlock keystore with master key %s: %w", mk, ErrWrongMasterKey)
	}
	if !hmac.Equal(fileMAC(metaKey, doc.compact), doc.mac) {
		return nil, fmt.Errorf("failed to verify keystore: MAC mismatch: %w", ErrCorrupt)
	}
	u := &unlocked{doc: doc, wrapper: w, metaKey: metaKey, keys: make(map[uint32]map[uint32]envelope.DataKey)}
	for _, set := range doc.body.KeySets {
		for _, v := range set.Versions {
			if v.State == stateDisabled && !withDisabled {
				continue
			}
			if _, err := u.dataKey(ctx, set.Name, set.ID, v.Version); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

// dataKey returns the unwrapped key of one version, unwrapping it on first
// use.
func (u *unlocked) dataKey(ctx context.Context, name string, setID, version uint32) (envelope.DataKey, error) {
	if k, ok := u.keys[setID][version]; ok {
		return k, nil
	}
	i := slices.IndexFunc(u.doc.body.KeySets, func(s keySetJSON) bool { return s.ID == setID })
	if i < 0 || version < 1 || int(version) > len(u.doc.body.KeySets[i].Versions) {
		return envelope.DataKey{}, fmt.Errorf("failed to find key set %q version %d: %w", name, version, ErrUnknownVersion)
	}
	v := u.doc.body.KeySets[i].Versions[version-1]
	raw, err := u.wrapper.Unwrap(ctx, v.Wrapped, dataKeyAD(u.doc.id, name, setID, version))
	if err != nil {
		// The MAC held, so the master key is right: the wrapped key is bad.
		return envelope.DataKey{}, fmt.Errorf("failed to unwrap key set %q version %d: %w", name, version, ErrCorrupt)
	}
	k, err := envelope.NewDataKey(raw)
	clear(raw)
	if err != nil {
		return envelope.DataKey{}, fmt.Errorf("failed to unwrap key set %q version %d: %w", name, version, ErrCorrupt)
	}
	if u.keys[setID] == nil {
		u.keys[setID] = make(map[uint32]envelope.DataKey)
	}
	u.keys[setID][version] = k
	return k, nil
}

// keystore builds the immutable view of u.
func (u *unlocked) keystore() (*Keystore, error) {
	b := &u.doc.body
	created, _ := time.Parse(time.RFC3339, b.Created) // validated by decodeFile
	ks := &Keystore{
		id:         b.ID,
		created:    created,
		masterKind: b.Master.Kind,
		byName:     make(map[string]int, len(b.KeySets)),
		byID:       make(map[uint32]int, len(b.KeySets)),
		keys:       make(map[uint32][]envelope.VersionKey, len(b.KeySets)),
		auditKey:   deriveKey(u.metaKey, labelAuditKey),
	}
	for _, set := range b.KeySets {
		info := KeySetInfo{Name: set.Name, ID: set.ID, Primary: set.Primary}
		for _, v := range set.Versions {
			t, _ := time.Parse(time.RFC3339, v.Created) // validated by decodeFile
			vi := VersionInfo{Version: v.Version, State: StateActive, Created: t, Algorithm: v.Algorithm}
			switch {
			case v.Version == set.Primary:
				vi.State = StatePrimary
			case v.State == stateDisabled:
				vi.State = StateDisabled
			}
			info.Versions = append(info.Versions, vi)
			if vi.State == StateDisabled {
				continue
			}
			k, ok := u.keys[set.ID][v.Version]
			if !ok {
				return nil, fmt.Errorf("BUG: key set %q version %d was not unwrapped", set.Name, v.Version)
			}
			ks.keys[set.ID] = append(ks.keys[set.ID], envelope.VersionKey{Version: v.Version, Key: k})
		}
		ks.sets = append(ks.sets, info)
	}
	slices.SortFunc(ks.sets, func(a, b KeySetInfo) int {
		return cmp.Compare(a.Name, b.Name)
	})
	for i, s := range ks.sets {
		ks.byName[s.Name] = i
		ks.byID[s.ID] = i
	}
	return ks, nil
}

// ID returns the keystore's id: 32 hexadecimal digits.
func (ks *Keystore) ID() string { return ks.id }

// Created returns when the keystore was created.
func (ks *Keystore) Created() time.Time { return ks.created }

// MasterKind returns the kind of master key the keystore is wrapped with,
// KindRaw256 or KindArgon2id.
func (ks *Keystore) MasterKind() string { return ks.masterKind }

// KeySets describes every key set, sorted by name. The result is a copy.
func (ks *Keystore) KeySets() []KeySetInfo {
	out := make([]KeySetInfo, len(ks.sets))
	for i, s := range ks.sets {
		out[i] = s.clone()
	}
	return out
}

// KeySet describes the key set called name, or fails with ErrUnknownKeySet.
func (ks *Keystore) KeySet(name string) (KeySetInfo, error) {
	i, ok := ks.byName[name]
	if !ok {
		return KeySetInfo{}, fmt.Errorf("failed to find key set %q: %w", name, ErrUnknownKeySet)
	}
	return ks.sets[i].clone(), nil
}

// KeySetByID describes the key set with the id an envelope carries, or
// fails with ErrUnknownKeySet.
func (ks *Keystore) KeySetByID(id uint32) (KeySetInfo, error) {
	i, ok := ks.byID[id]
	if !ok {
		return KeySetInfo{}, fmt.Errorf("failed to find key set 0x%08x: %w", id, ErrUnknownKeySet)
	}
	return ks.sets[i].clone(), nil
}

// VersionState returns the state of a key version named by the ids an
// envelope carries (see envelope.Peek). It fails with ErrUnknownKeySet or
// ErrUnknownVersion; a proxy that meets either may reload the keystore.
func (ks *Keystore) VersionState(keySetID, version uint32) (State, error) {
	i, ok := ks.byID[keySetID]
	if !ok {
		return 0, fmt.Errorf("failed to find key set 0x%08x: %w", keySetID, ErrUnknownKeySet)
	}
	vs := ks.sets[i].Versions
	if version < 1 || int(version) > len(vs) {
		return 0, fmt.Errorf("failed to find version %d of key set %q: %w", version, ks.sets[i].Name, ErrUnknownVersion)
	}
	return vs[version-1].State, nil
}

// CheckVersion reports whether values sealed under a key version open:
// nil for a primary or active version, else ErrVersionDisabled,
// ErrUnknownVersion or ErrUnknownKeySet. The ids are those an envelope
// carries (see envelope.Peek).
func (ks *Keystore) CheckVersion(keySetID, version uint32) error {
	st, err := ks.VersionState(keySetID, version)
	if err != nil {
		return err
	}
	if st == StateDisabled {
		return fmt.Errorf("failed to use version %d of key set 0x%08x: %w", version, keySetID, ErrVersionDisabled)
	}
	return nil
}

// Column builds the cipher of one column from the primary and active
// versions of keySet. table must be schema-qualified ("public.users"); the
// associated data and the key derivation use table and column byte for byte
// (see docs/envelope.md). Build the cipher once per column and reuse it.
func (ks *Keystore) Column(keySet, table, column string, mode envelope.Mode) (*envelope.ColumnCipher, error) {
	i, ok := ks.byName[keySet]
	if !ok {
		return nil, fmt.Errorf("failed to build cipher for %s.%s: key set %q: %w", table, column, keySet, ErrUnknownKeySet)
	}
	set := ks.sets[i]
	c, err := envelope.NewColumnCipher(envelope.ColumnSpec{Table: table, Column: column, Mode: mode, KeySetID: set.ID}, set.Primary, ks.keys[set.ID])
	if err != nil {
		return nil, fmt.Errorf("failed to build cipher for %s.%s: %w", table, column, err)
	}
	return c, nil
}

// AuditLogKey returns a copy of the 256-bit HMAC key of the audit log. It is
// derived from the keystore's meta key, so it survives a master-key rewrap.
// It is secret: never print or store it.
func (ks *Keystore) AuditLogKey() []byte { return slices.Clone(ks.auditKey) }

// String describes the keystore without key material.
func (ks *Keystore) String() string { return "keystore.Keystore(" + ks.id + ")" }

// GoString describes the keystore without key material.
func (ks *Keystore) GoString() string { return ks.String() }

// Format writes the String description whatever the verb.
func (ks *Keystore) Format(f fmt.State, _ rune) { redacted(f, ks.String()) }
