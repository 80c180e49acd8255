package keystore

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// The keystore file is JSON:
//
//	{"format": "pgseal-keystore", "version": 1, "body": {...}, "mac": "..."}
//
// body holds everything else; mac is HMAC-SHA256 over a label and the
// compact form of body, keyed from the keystore's meta key. See
// docs/keystore.md for every field.
const (
	fileFormatName    = "pgseal-keystore"
	fileFormatVersion = 1
	maxFileSize       = 16 << 20
	maxWrappedSize    = 1024
)

// AlgorithmV1 is the algorithm recorded for every data key version: a
// 256-bit key from which envelope format v1 derives column keys with
// HKDF-SHA256.
const AlgorithmV1 = "hkdf-sha256-256/envelope-v1"

// NamePattern is what a key set name must match.
const NamePattern = `^[a-z][a-z0-9_-]{0,62}$`

var nameRE = regexp.MustCompile(NamePattern)

// Labels. Each is a domain separator for one use of a key; see
// docs/keystore.md.
const (
	labelFileMAC  = "pgseal/keystore/v1 file mac"
	labelAuditKey = "pgseal/auditlog/v1 hmac key"
	labelMetaAD   = "pgseal/keystore/v1 wrapped meta key"
	labelDataAD   = "pgseal/keystore/v1 wrapped data key"
)

// Version states as written in the file.
const (
	stateActive   = "active"
	stateDisabled = "disabled"
)

type fileJSON struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	Body    json.RawMessage `json:"body"`
	MAC     []byte          `json:"mac"`
}

type bodyJSON struct {
	ID      string       `json:"id"`
	Created string       `json:"created"`
	Master  masterJSON   `json:"master"`
	MetaKey []byte       `json:"meta_key"`
	KeySets []keySetJSON `json:"key_sets"`
}

type masterJSON struct {
	Kind      string `json:"kind"`
	Salt      []byte `json:"salt,omitempty"`
	Time      uint32 `json:"time,omitempty"`
	MemoryKiB uint32 `json:"memory_kib,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
}

type keySetJSON struct {
	Name     string        `json:"name"`
	ID       uint32        `json:"id"`
	Primary  uint32        `json:"primary"`
	Versions []versionJSON `json:"versions"`
}

type versionJSON struct {
	Version   uint32 `json:"version"`
	State     string `json:"state"`
	Created   string `json:"created"`
	Algorithm string `json:"algorithm"`
	Wrapped   []byte `json:"wrapped"`
}

// document is a decoded and structurally valid keystore file whose MAC has
// not been checked yet.
type document struct {
	body    bodyJSON
	id      []byte // 16 bytes
	compact []byte // the compact body the MAC covers
	mac     []byte
}

// decodeFile parses and validates data without any key. It never trusts
// anything it returns before the MAC is verified.
func decodeFile(data []byte) (*document, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("failed to decode keystore: larger than %d bytes: %w", maxFileSize, ErrCorrupt)
	}
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("failed to decode keystore: %w", ErrCorrupt)
	}
	if head.Format != fileFormatName {
		return nil, fmt.Errorf("failed to decode keystore: not a pgseal keystore: %w", ErrCorrupt)
	}
	if head.Version != fileFormatVersion {
		return nil, fmt.Errorf("failed to decode keystore: format version %d (this build reads %d): %w", head.Version, fileFormatVersion, ErrUnknownFormat)
	}
	var f fileJSON
	if err := strictUnmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("failed to decode keystore: %w", ErrCorrupt)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, f.Body); err != nil {
		return nil, fmt.Errorf("failed to decode keystore body: %w", ErrCorrupt)
	}
	doc := &document{compact: compact.Bytes(), mac: f.MAC}
	if err := strictUnmarshal(doc.compact, &doc.body); err != nil {
		return nil, fmt.Errorf("failed to decode keystore body: %w", ErrCorrupt)
	}
	id, err := validateBody(&doc.body)
	if err != nil {
		return nil, err
	}
	doc.id = id
	return doc, nil
}

// strictUnmarshal is json.Unmarshal that refuses unknown fields and
// trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("failed to validate keystore: "+format+": %w", append(args, ErrCorrupt)...)
}

// validateBody checks every invariant of a keystore body and returns the
// decoded keystore id.
func validateBody(b *bodyJSON) ([]byte, error) {
	id, err := hex.DecodeString(b.ID)
	if err != nil || len(id) != 16 || hex.EncodeToString(id) != b.ID {
		return nil, corrupt("bad keystore id")
	}
	if _, err := time.Parse(time.RFC3339, b.Created); err != nil {
		return nil, corrupt("bad creation time")
	}
	switch m := b.Master; m.Kind {
	case KindRaw256, KindPKCS11:
		if m.Salt != nil || m.Time != 0 || m.MemoryKiB != 0 || m.Threads != 0 {
			return nil, corrupt("unexpected parameters for a raw master key")
		}
	case KindArgon2id:
		if len(m.Salt) < minSaltLen || len(m.Salt) > maxSaltLen {
			return nil, corrupt("bad Argon2id salt")
		}
		if checkArgon2idCost(Argon2idParams{Time: m.Time, MemoryKiB: m.MemoryKiB, Threads: m.Threads}) != nil {
			return nil, corrupt("Argon2id costs out of range")
		}
	default:
		return nil, corrupt("unknown master-key kind")
	}
	if len(b.MetaKey) == 0 || len(b.MetaKey) > maxWrappedSize {
		return nil, corrupt("bad wrapped meta key")
	}
	names := make(map[string]bool, len(b.KeySets))
	ids := make(map[uint32]bool, len(b.KeySets))
	for i := range b.KeySets {
		ks := &b.KeySets[i]
		if !nameRE.MatchString(ks.Name) || names[ks.Name] {
			return nil, corrupt("key set %d: bad or duplicate name", i)
		}
		if ks.ID == 0 || ids[ks.ID] {
			return nil, corrupt("key set %q: bad or duplicate id", ks.Name)
		}
		names[ks.Name], ids[ks.ID] = true, true
		if len(ks.Versions) == 0 {
			return nil, corrupt("key set %q: no versions", ks.Name)
		}
		for j, v := range ks.Versions {
			if v.Version != uint32(j+1) {
				return nil, corrupt("key set %q: versions out of sequence", ks.Name)
			}
			if v.State != stateActive && v.State != stateDisabled {
				return nil, corrupt("key set %q version %d: unknown state", ks.Name, v.Version)
			}
			if _, err := time.Parse(time.RFC3339, v.Created); err != nil {
				return nil, corrupt("key set %q version %d: bad creation time", ks.Name, v.Version)
			}
			if v.Algorithm != AlgorithmV1 {
				return nil, corrupt("key set %q version %d: unknown algorithm", ks.Name, v.Version)
			}
			if len(v.Wrapped) == 0 || len(v.Wrapped) > maxWrappedSize {
				return nil, corrupt("key set %q version %d: bad wrapped key", ks.Name, v.Version)
			}
		}
		if ks.Primary < 1 || int(ks.Primary) > len(ks.Versions) || ks.Versions[ks.Primary-1].State != stateActive {
			return nil, corrupt("key set %q: primary version missing or disabled", ks.Name)
		}
	}
	return id, nil
}

// deriveKey derives a 32-byte subkey of the meta key for one purpose.
func deriveKey(metaKey []byte, label string) []byte {
	k, err := hkdf.Key(sha256.New, metaKey, nil, label, 32)
	if err != nil {
		panic("BUG: HKDF-SHA256 refused a 32-byte output: " + err.Error())
	}
	return k
}

// fileMAC computes the MAC of a compact body.
func fileMAC(metaKey, compact []byte) []byte {
	h := hmac.New(sha256.New, deriveKey(metaKey, labelFileMAC))
	h.Write([]byte(labelFileMAC))
	h.Write([]byte{0})
	h.Write(compact)
	return h.Sum(nil)
}

// encodeFile serializes body and appends its MAC.
func encodeFile(body *bodyJSON, metaKey []byte) ([]byte, error) {
	compact, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("failed to encode keystore body: %w", err)
	}
	out, err := json.MarshalIndent(fileJSON{
		Format:  fileFormatName,
		Version: fileFormatVersion,
		Body:    compact,
		MAC:     fileMAC(metaKey, compact),
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode keystore: %w", err)
	}
	return append(out, '\n'), nil
}

// metaKeyAD is the associated data of the wrapped meta key.
func metaKeyAD(id []byte) []byte {
	ad := append([]byte(labelMetaAD), 0)
	return append(ad, id...)
}

// dataKeyAD is the associated data of a wrapped data key: it binds the
// keystore id, the key set name and id, and the version.
func dataKeyAD(id []byte, name string, setID, version uint32) []byte {
	ad := append([]byte(labelDataAD), 0)
	ad = append(ad, id...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(name)))
	ad = append(ad, name...)
	ad = binary.BigEndian.AppendUint32(ad, setID)
	return binary.BigEndian.AppendUint32(ad, version)
}

func masterToJSON(p *MasterParams) masterJSON {
	m := masterJSON{Kind: p.Kind}
	if a := p.Argon2id; a != nil {
		m.Salt, m.Time, m.MemoryKiB, m.Threads = a.Salt, a.Time, a.MemoryKiB, a.Threads
	}
	return m
}

func masterFromJSON(m masterJSON) *MasterParams {
	p := &MasterParams{Kind: m.Kind}
	if m.Kind == KindArgon2id {
		p.Argon2id = &Argon2idParams{Salt: m.Salt, Time: m.Time, MemoryKiB: m.MemoryKiB, Threads: m.Threads}
	}
	return p
}
