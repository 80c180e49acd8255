package keystore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/pgseal/pgseal/envelope"
)

// Export is every version of every key set of a keystore, disabled ones
// included, with its data key: what an escrow backup must hold to rebuild
// the keystore under another master key. It is the only way key material
// leaves a keystore; keep it no longer than it takes to encrypt it.
//
// An Export prints as "keystore.Export(ID)" with every fmt verb.
type Export struct {
	KeystoreID string
	Created    time.Time
	KeySets    []ExportedKeySet // sorted by name
}

// ExportedKeySet is one key set of an Export.
type ExportedKeySet struct {
	Name     string
	ID       uint32
	Primary  uint32
	Versions []ExportedVersion // ascending, from version 1
}

// ExportedVersion is one key version with its data key.
type ExportedVersion struct {
	VersionInfo
	Key envelope.DataKey
}

// String describes the export without key material.
func (x *Export) String() string { return "keystore.Export(" + x.KeystoreID + ")" }

// GoString describes the export without key material.
func (x *Export) GoString() string { return x.String() }

// Format writes the String description whatever the verb.
func (x *Export) Format(f fmt.State, _ rune) { redacted(f, x.String()) }

// Info describes the export's key sets without key material.
func (x *Export) Info() []KeySetInfo {
	out := make([]KeySetInfo, len(x.KeySets))
	for i, s := range x.KeySets {
		out[i] = KeySetInfo{Name: s.Name, ID: s.ID, Primary: s.Primary}
		for _, v := range s.Versions {
			out[i].Versions = append(out[i].Versions, v.VersionInfo)
		}
	}
	return out
}

// ExportKeys opens the keystore at path with mk and returns every key
// version with its data key. It fails like Open.
func ExportKeys(ctx context.Context, path string, mk MasterKeySource) (*Export, error) {
	data, err := readKeystoreFile(path)
	if err != nil {
		return nil, err
	}
	u, err := unlock(ctx, data, mk, true)
	if err != nil {
		return nil, err
	}
	ks, err := u.keystore()
	if err != nil {
		return nil, err
	}
	x := &Export{KeystoreID: ks.id, Created: ks.created}
	for _, set := range ks.sets {
		es := ExportedKeySet{Name: set.Name, ID: set.ID, Primary: set.Primary}
		for _, v := range set.Versions {
			k, ok := u.keys[set.ID][v.Version]
			if !ok {
				return nil, fmt.Errorf("BUG: key set %q version %d was not unwrapped", set.Name, v.Version)
			}
			es.Versions = append(es.Versions, ExportedVersion{VersionInfo: v, Key: k})
		}
		x.KeySets = append(x.KeySets, es)
	}
	return x, nil
}

// Import writes a new keystore at path, wrapped by mk, that holds every key
// version of x with its state, creation time and data key, and returns it
// loaded. The new keystore has a new id, meta key and audit-log key: it is
// a new keystore with the old data keys, so values sealed under them open.
// Like Create, it never overwrites (ErrExists). An x that would make an
// invalid keystore fails with ErrCorrupt.
func Import(ctx context.Context, path string, mk MasterKeySource, x *Export, opts ...Option) (*Keystore, error) {
	o := buildOptions(opts)
	if err := checkExport(x); err != nil {
		return nil, err
	}
	w, params, err := mk.Unlock(ctx, nil)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	metaKey := make([]byte, 32)
	_, _ = io.ReadFull(rand.Reader, id) // crypto/rand never fails
	_, _ = io.ReadFull(rand.Reader, metaKey)
	defer clear(metaKey)
	body := bodyJSON{
		ID:      hex.EncodeToString(id),
		Created: formatTime(o.now()),
		Master:  masterToJSON(params),
		KeySets: []keySetJSON{},
	}
	if body.MetaKey, err = w.Wrap(ctx, metaKey, metaKeyAD(id)); err != nil {
		return nil, fmt.Errorf("failed to wrap keystore meta key: %w", err)
	}
	for _, s := range x.KeySets {
		set := keySetJSON{Name: s.Name, ID: s.ID, Primary: s.Primary}
		for _, v := range s.Versions {
			wrapped, err := w.Wrap(ctx, v.Key.UnsafeBytes(), dataKeyAD(id, s.Name, s.ID, v.Version))
			if err != nil {
				return nil, fmt.Errorf("failed to wrap key set %q version %d: %w", s.Name, v.Version, err)
			}
			state := stateActive
			if v.State == StateDisabled {
				state = stateDisabled
			}
			set.Versions = append(set.Versions, versionJSON{
				Version: v.Version, State: state, Created: formatTime(v.Created), Algorithm: v.Algorithm, Wrapped: wrapped,
			})
		}
		body.KeySets = append(body.KeySets, set)
	}
	data, err := encodeFile(&body, metaKey)
	if err != nil {
		return nil, err
	}
	if _, err := decodeFile(data); err != nil {
		return nil, fmt.Errorf("failed to import key sets: %w", err)
	}
	if err := writeFileAtomic(path, data, true); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("failed to create keystore %s: %w", path, ErrExists)
		}
		return nil, fmt.Errorf("failed to create keystore: %w", err)
	}
	u, err := unlock(ctx, data, mk, false)
	if err != nil {
		return nil, fmt.Errorf("BUG: failed to reopen an imported keystore: %w", err)
	}
	return u.keystore()
}

// checkExport checks what validateBody cannot see: the states agree with
// the primary, and every key is present.
func checkExport(x *Export) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("failed to import key sets: "+format+": %w", append(args, ErrCorrupt)...)
	}
	if x == nil {
		return bad("nothing to import")
	}
	for _, s := range x.KeySets {
		for i, v := range s.Versions {
			switch {
			case v.Version != uint32(i+1):
				return bad("key set %q: versions out of sequence", s.Name)
			case v.Key.IsZero():
				return bad("key set %q version %d: no key", s.Name, v.Version)
			case (v.Version == s.Primary) != (v.State == StatePrimary):
				return bad("key set %q version %d: state %s disagrees with primary version %d", s.Name, v.Version, v.State, s.Primary)
			case !slices.Contains([]State{StatePrimary, StateActive, StateDisabled}, v.State):
				return bad("key set %q version %d: unknown state", s.Name, v.Version)
			case v.Created.IsZero():
				return bad("key set %q version %d: no creation time", s.Name, v.Version)
			}
		}
	}
	return nil
}
