package keystore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/pgseal/pgseal/envelope"
)

// Create writes a new keystore with no key sets at path, wrapped by mk, and
// returns it loaded. It never overwrites: an existing path fails with
// ErrExists. The master key itself must already exist (see Provisioner).
func Create(ctx context.Context, path string, mk MasterKeySource, opts ...Option) (*Keystore, error) {
	o := buildOptions(opts)
	w, params, err := mk.Unlock(ctx, nil)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 16)
	metaKey := make([]byte, 32)
	_, _ = io.ReadFull(rand.Reader, id) // crypto/rand never fails
	_, _ = io.ReadFull(rand.Reader, metaKey)
	wrappedMeta, err := w.Wrap(ctx, metaKey, metaKeyAD(id))
	if err != nil {
		return nil, fmt.Errorf("failed to wrap keystore meta key: %w", err)
	}
	body := bodyJSON{
		ID:      hex.EncodeToString(id),
		Created: formatTime(o.now()),
		Master:  masterToJSON(params),
		MetaKey: wrappedMeta,
		KeySets: []keySetJSON{},
	}
	data, err := encodeFile(&body, metaKey)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, data, true); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("failed to create keystore %s: %w", path, ErrExists)
		}
		return nil, fmt.Errorf("failed to create keystore: %w", err)
	}
	u, err := unlock(ctx, data, mk, false)
	if err != nil {
		return nil, fmt.Errorf("BUG: failed to reopen a new keystore: %w", err)
	}
	return u.keystore()
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Editor changes a keystore: it adds key sets, rotates, disables and
// rewraps them in memory, and Commit writes the result atomically. An Editor
// is not safe for concurrent use. Run one editor per keystore at a time:
// Commit refuses to overwrite a file that changed since Edit
// (ErrConcurrentUpdate), but cannot lock it.
type Editor struct {
	path     string
	fileHash [sha256.Size]byte
	u        *unlocked
	opts     options
}

// Edit opens the keystore at path for changes, unlocked with mk. It fails
// like Open, and also unwraps disabled versions to check them.
func Edit(ctx context.Context, path string, mk MasterKeySource, opts ...Option) (*Editor, error) {
	data, err := readKeystoreFile(path)
	if err != nil {
		return nil, err
	}
	u, err := unlock(ctx, data, mk, true)
	if err != nil {
		return nil, err
	}
	return &Editor{path: path, fileHash: sha256.Sum256(data), u: u, opts: buildOptions(opts)}, nil
}

// Keystore returns the editor's current state as a Keystore, including
// changes not committed yet.
func (e *Editor) Keystore() (*Keystore, error) { return e.u.keystore() }

func (e *Editor) set(name string) (*keySetJSON, error) {
	for i := range e.u.doc.body.KeySets {
		if s := &e.u.doc.body.KeySets[i]; s.Name == name {
			return s, nil
		}
	}
	return nil, fmt.Errorf("failed to find key set %q: %w", name, ErrUnknownKeySet)
}

// newVersion generates, wraps and records a new data key version of set.
func (e *Editor) newVersion(ctx context.Context, set *keySetJSON) (uint32, error) {
	version := uint32(len(set.Versions) + 1)
	k := envelope.GenerateDataKey()
	wrapped, err := e.u.wrapper.Wrap(ctx, k.UnsafeBytes(), dataKeyAD(e.u.doc.id, set.Name, set.ID, version))
	if err != nil {
		return 0, fmt.Errorf("failed to wrap new data key: %w", err)
	}
	set.Versions = append(set.Versions, versionJSON{
		Version:   version,
		State:     stateActive,
		Created:   formatTime(e.opts.now()),
		Algorithm: AlgorithmV1,
		Wrapped:   wrapped,
	})
	if e.u.keys[set.ID] == nil {
		e.u.keys[set.ID] = make(map[uint32]envelope.DataKey)
	}
	e.u.keys[set.ID][version] = k
	return version, nil
}

// AddKeySet creates the key set name with a random id and a primary
// version 1. name must match NamePattern.
func (e *Editor) AddKeySet(ctx context.Context, name string) (KeySetInfo, error) {
	if !nameRE.MatchString(name) {
		return KeySetInfo{}, fmt.Errorf("failed to add key set %q: must match %s: %w", name, NamePattern, ErrInvalidName)
	}
	if _, err := e.set(name); err == nil {
		return KeySetInfo{}, fmt.Errorf("failed to add key set %q: %w", name, ErrKeySetExists)
	}
	id, err := e.newSetID()
	if err != nil {
		return KeySetInfo{}, err
	}
	e.u.doc.body.KeySets = append(e.u.doc.body.KeySets, keySetJSON{Name: name, ID: id})
	set := &e.u.doc.body.KeySets[len(e.u.doc.body.KeySets)-1]
	v, err := e.newVersion(ctx, set)
	if err != nil {
		e.u.doc.body.KeySets = e.u.doc.body.KeySets[:len(e.u.doc.body.KeySets)-1]
		return KeySetInfo{}, err
	}
	set.Primary = v
	return e.info(name)
}

// newSetID picks a random non-zero id no key set uses.
func (e *Editor) newSetID() (uint32, error) {
	var b [4]byte
	for range 64 {
		_, _ = io.ReadFull(rand.Reader, b[:]) // crypto/rand never fails
		id := binary.BigEndian.Uint32(b[:])
		if id != 0 && !slices.ContainsFunc(e.u.doc.body.KeySets, func(s keySetJSON) bool { return s.ID == id }) {
			return id, nil
		}
	}
	return 0, errors.New("failed to pick a free key set id")
}

// Rotate adds a new version to the key set name and makes it primary. The
// previous primary stays active, so existing values still open.
func (e *Editor) Rotate(ctx context.Context, name string) (KeySetInfo, error) {
	set, err := e.set(name)
	if err != nil {
		return KeySetInfo{}, err
	}
	v, err := e.newVersion(ctx, set)
	if err != nil {
		return KeySetInfo{}, err
	}
	set.Primary = v
	return e.info(name)
}

// Disable disables a version of the key set name: values sealed under it no
// longer open. It refuses the primary version (ErrPrimaryVersion). Disabling
// a disabled version does nothing.
func (e *Editor) Disable(name string, version uint32) (KeySetInfo, error) {
	set, err := e.set(name)
	if err != nil {
		return KeySetInfo{}, err
	}
	if version < 1 || int(version) > len(set.Versions) {
		return KeySetInfo{}, fmt.Errorf("failed to disable key set %q version %d: %w", name, version, ErrUnknownVersion)
	}
	if version == set.Primary {
		return KeySetInfo{}, fmt.Errorf("failed to disable key set %q version %d: %w", name, version, ErrPrimaryVersion)
	}
	set.Versions[version-1].State = stateDisabled
	return e.info(name)
}

// Rewrap re-wraps the meta key and every data key, disabled ones included,
// under the master key newMK, and records its parameters. Data keys do not
// change, so no value needs re-encryption. Nothing changes if it fails.
func (e *Editor) Rewrap(ctx context.Context, newMK MasterKeySource) error {
	w, params, err := newMK.Unlock(ctx, nil)
	if err != nil {
		return err
	}
	body := e.u.doc.body
	body.Master = masterToJSON(params)
	if body.MetaKey, err = w.Wrap(ctx, e.u.metaKey, metaKeyAD(e.u.doc.id)); err != nil {
		return fmt.Errorf("failed to rewrap meta key: %w", err)
	}
	body.KeySets = make([]keySetJSON, len(e.u.doc.body.KeySets))
	for i, set := range e.u.doc.body.KeySets {
		set.Versions = slices.Clone(set.Versions)
		for j := range set.Versions {
			v := &set.Versions[j]
			k, err := e.u.dataKey(ctx, set.Name, set.ID, v.Version)
			if err != nil {
				return err
			}
			if v.Wrapped, err = w.Wrap(ctx, k.UnsafeBytes(), dataKeyAD(e.u.doc.id, set.Name, set.ID, v.Version)); err != nil {
				return fmt.Errorf("failed to rewrap key set %q version %d: %w", set.Name, v.Version, err)
			}
		}
		body.KeySets[i] = set
	}
	e.u.doc.body = body
	e.u.wrapper = w
	return nil
}

func (e *Editor) info(name string) (KeySetInfo, error) {
	ks, err := e.u.keystore()
	if err != nil {
		return KeySetInfo{}, err
	}
	return ks.KeySet(name)
}

// Commit writes the keystore atomically with mode 0600. It fails with
// ErrConcurrentUpdate, writing nothing, if the file changed since Edit or
// the last Commit.
func (e *Editor) Commit(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("failed to commit keystore: %w", err)
	}
	data, err := encodeFile(&e.u.doc.body, e.u.metaKey)
	if err != nil {
		return err
	}
	current, err := readKeystoreFile(e.path)
	if err != nil {
		return err
	}
	if sha256.Sum256(current) != e.fileHash {
		return fmt.Errorf("failed to commit keystore %s: %w", e.path, ErrConcurrentUpdate)
	}
	if err := writeFileAtomic(e.path, data, false); err != nil {
		return fmt.Errorf("failed to commit keystore: %w", err)
	}
	e.fileHash = sha256.Sum256(data)
	return nil
}

// String describes the editor without key material.
func (e *Editor) String() string { return "keystore.Editor(" + e.path + ")" }

// GoString describes the editor without key material.
func (e *Editor) GoString() string { return e.String() }

// Format writes the String description whatever the verb.
func (e *Editor) Format(f fmt.State, _ rune) { redacted(f, e.String()) }
