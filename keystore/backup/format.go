package backup

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
)

// The file format, version 1:
//
//	pgseal-key-backup v1
//	{"created":"...","keystore_id":"...","key_sets":[...],"recipients":[...],"sections":[...]}
//	-----BEGIN AGE ENCRYPTED FILE-----
//	...
//	-----END AGE ENCRYPTED FILE-----
//
// The first two lines, newlines included, are the header bytes; each
// section is an armored age file whose plaintext is the payload JSON,
// which carries SHA-256 of the header bytes and every data key.
const (
	formatPrefix  = "pgseal-key-backup v"
	formatVersion = 1
	payloadFormat = "pgseal-key-backup-keys/v1"

	sectionX25519 = "x25519"
	sectionScrypt = "scrypt"

	maxFile    = 64 << 20
	maxHeader  = 4 << 20
	maxSection = 16 << 20
)

var (
	nameRE = regexp.MustCompile(keystore.NamePattern)
	idRE   = regexp.MustCompile(`^[0-9a-f]{32}$`)
)

// Header is what a backup says about itself in the clear.
type Header struct {
	Created    time.Time
	KeystoreID string                // the keystore the keys came from
	KeySets    []keystore.KeySetInfo // every key set and version, no keys
	Recipients []string              // X25519 recipients ("age1...") and "passphrase"
	sections   []string
}

// Sections names the encrypted sections in file order: "x25519" for the
// one all X25519 recipients share, "scrypt" for the passphrase.
func (h *Header) Sections() []string { return append([]string(nil), h.sections...) }

// Versions counts the key versions the backup holds.
func (h *Header) Versions() int {
	n := 0
	for _, s := range h.KeySets {
		n += len(s.Versions)
	}
	return n
}

type headerJSON struct {
	Created    string       `json:"created"`
	KeystoreID string       `json:"keystore_id"`
	KeySets    []keySetJSON `json:"key_sets"`
	Recipients []string     `json:"recipients"`
	Sections   []string     `json:"sections"`
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
}

type payloadJSON struct {
	Format       string    `json:"format"`
	HeaderSHA256 string    `json:"header_sha256"`
	Keys         []keyJSON `json:"keys"`
}

type keyJSON struct {
	KeySetID uint32 `json:"key_set_id"`
	Version  uint32 `json:"version"`
	Key      []byte `json:"key"`
}

// encode returns the header bytes: the format line and the JSON line.
func (h *Header) encode() ([]byte, error) {
	hj := headerJSON{
		Created:    h.Created.UTC().Format(time.RFC3339),
		KeystoreID: h.KeystoreID,
		KeySets:    []keySetJSON{},
		Recipients: h.Recipients,
		Sections:   h.sections,
	}
	for _, s := range h.KeySets {
		ks := keySetJSON{Name: s.Name, ID: s.ID, Primary: s.Primary}
		for _, v := range s.Versions {
			ks.Versions = append(ks.Versions, versionJSON{
				Version: v.Version, State: v.State.String(), Created: v.Created.UTC().Format(time.RFC3339), Algorithm: v.Algorithm,
			})
		}
		hj.KeySets = append(hj.KeySets, ks)
	}
	line, err := json.Marshal(hj)
	if err != nil {
		return nil, fmt.Errorf("failed to encode backup header: %w", err)
	}
	head := fmt.Appendf(nil, "%s%d\n", formatPrefix, formatVersion)
	head = append(head, line...)
	head = append(head, '\n')
	if _, err := decodeHeader(line); err != nil {
		return nil, fmt.Errorf("failed to write backup: %w", err)
	}
	return head, nil
}

// encodePayload serializes every key of x with the header hash.
func encodePayload(x *keystore.Export, headHash [sha256.Size]byte) ([]byte, error) {
	p := payloadJSON{Format: payloadFormat, HeaderSHA256: hex.EncodeToString(headHash[:]), Keys: []keyJSON{}}
	for _, s := range x.KeySets {
		for _, v := range s.Versions {
			p.Keys = append(p.Keys, keyJSON{KeySetID: s.ID, Version: v.Version, Key: v.Key.UnsafeBytes()})
		}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("failed to encode backup keys: %w", err)
	}
	return b, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("failed to parse backup: "+format+": %w", append(args, ErrMalformed)...)
}

// Parse reads a backup's header and locates its sections. It decrypts
// nothing and so verifies nothing beyond the structure: the header is
// trusted only once File.Open has checked it.
func Parse(data []byte) (*File, error) {
	if len(data) > maxFile {
		return nil, malformed("larger than %d bytes", maxFile)
	}
	first, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(first, []byte(formatPrefix)) {
		return nil, malformed("no %q line", formatPrefix+"1")
	}
	if v := string(first[len(formatPrefix):]); v != fmt.Sprint(formatVersion) {
		return nil, fmt.Errorf("failed to parse backup: format version %.8q (this build reads %d): %w", v, formatVersion, ErrUnknownVersion)
	}
	line, rest, ok := bytes.Cut(rest, []byte("\n"))
	if !ok || len(line) > maxHeader {
		return nil, malformed("no header line")
	}
	h, err := decodeHeader(line)
	if err != nil {
		return nil, err
	}
	f := &File{Header: *h, head: data[:len(first)+len(line)+2]}
	for {
		rest = bytes.TrimLeft(rest, " \t\r\n")
		if len(rest) == 0 {
			break
		}
		if !bytes.HasPrefix(rest, []byte(armor.Header)) {
			return nil, malformed("unexpected data after section %d", len(f.sections))
		}
		end := bytes.Index(rest, []byte(armor.Footer))
		if end < 0 {
			return nil, malformed("section %d has no end line", len(f.sections)+1)
		}
		end += len(armor.Footer)
		if end > maxSection*2 {
			return nil, malformed("section %d is too large", len(f.sections)+1)
		}
		f.sections = append(f.sections, append(bytes.Clone(rest[:end]), '\n'))
		rest = rest[end:]
	}
	if len(f.sections) != len(h.sections) {
		return nil, malformed("the header lists %d sections, the file has %d", len(h.sections), len(f.sections))
	}
	return f, nil
}

// decodeHeader parses and validates the JSON header line.
func decodeHeader(line []byte) (*Header, error) {
	var hj headerJSON
	if err := strictUnmarshal(line, &hj); err != nil {
		return nil, malformed("bad header JSON")
	}
	created, err := time.Parse(time.RFC3339, hj.Created)
	if err != nil {
		return nil, malformed("bad creation time")
	}
	if !idRE.MatchString(hj.KeystoreID) {
		return nil, malformed("bad keystore id")
	}
	h := &Header{Created: created, KeystoreID: hj.KeystoreID, Recipients: hj.Recipients, sections: hj.Sections}
	names, ids := map[string]bool{}, map[uint32]bool{}
	for i, s := range hj.KeySets {
		if !nameRE.MatchString(s.Name) || names[s.Name] || s.ID == 0 || ids[s.ID] {
			return nil, malformed("key set %d: bad or duplicate name or id", i+1)
		}
		names[s.Name], ids[s.ID] = true, true
		info := keystore.KeySetInfo{Name: s.Name, ID: s.ID, Primary: s.Primary}
		for j, v := range s.Versions {
			t, err := time.Parse(time.RFC3339, v.Created)
			state, ok := parseState(v.State)
			switch {
			case v.Version != uint32(j+1):
				return nil, malformed("key set %q: versions out of sequence", s.Name)
			case err != nil:
				return nil, malformed("key set %q version %d: bad creation time", s.Name, v.Version)
			case !ok || (state == keystore.StatePrimary) != (v.Version == s.Primary):
				return nil, malformed("key set %q version %d: bad state", s.Name, v.Version)
			case v.Algorithm == "" || len(v.Algorithm) > 64:
				return nil, malformed("key set %q version %d: bad algorithm", s.Name, v.Version)
			}
			info.Versions = append(info.Versions, keystore.VersionInfo{Version: v.Version, State: state, Created: t, Algorithm: v.Algorithm})
		}
		if s.Primary < 1 || int(s.Primary) > len(s.Versions) {
			return nil, malformed("key set %q: no primary version", s.Name)
		}
		h.KeySets = append(h.KeySets, info)
	}
	if err := checkRecipients(hj.Recipients, hj.Sections); err != nil {
		return nil, err
	}
	return h, nil
}

// checkRecipients checks that the recipients parse and agree with the
// sections: one x25519 section iff there are X25519 recipients, one scrypt
// section iff there is a passphrase.
func checkRecipients(rcpts, sections []string) error {
	seen := map[string]bool{}
	x25519 := false
	for _, r := range rcpts {
		if seen[r] {
			return malformed("recipient listed twice")
		}
		seen[r] = true
		if r == PassphraseRecipient {
			continue
		}
		if _, err := age.ParseX25519Recipient(r); err != nil {
			return malformed("bad recipient %.80q", r)
		}
		x25519 = true
	}
	want := []string{}
	if x25519 {
		want = append(want, sectionX25519)
	}
	if seen[PassphraseRecipient] {
		want = append(want, sectionScrypt)
	}
	if len(want) == 0 || strings.Join(want, ",") != strings.Join(sections, ",") {
		return malformed("sections %v do not match the recipients", sections)
	}
	return nil
}

func parseState(s string) (keystore.State, bool) {
	for _, st := range []keystore.State{keystore.StatePrimary, keystore.StateActive, keystore.StateDisabled} {
		if s == st.String() {
			return st, true
		}
	}
	return 0, false
}

// decodePayload checks a decrypted payload against the header bytes and
// builds the Export. The payload is authentic (age checked it), so any
// disagreement means the header was changed or a section was taken from
// another backup.
func decodePayload(payload, head []byte, h *Header) (*keystore.Export, error) {
	var p payloadJSON
	if err := strictUnmarshal(payload, &p); err != nil || p.Format != payloadFormat {
		return nil, fmt.Errorf("failed to decode backup keys: %w", ErrTampered)
	}
	sum := sha256.Sum256(head)
	if subtle.ConstantTimeCompare([]byte(p.HeaderSHA256), []byte(hex.EncodeToString(sum[:]))) != 1 {
		return nil, fmt.Errorf("failed to open backup: the header does not match the encrypted contents: %w", ErrTampered)
	}
	type ref struct{ set, version uint32 }
	keys := make(map[ref][]byte, len(p.Keys))
	for _, k := range p.Keys {
		r := ref{k.KeySetID, k.Version}
		if _, dup := keys[r]; dup {
			return nil, fmt.Errorf("failed to open backup: key set 0x%08x version %d twice: %w", k.KeySetID, k.Version, ErrTampered)
		}
		keys[r] = k.Key
	}
	defer func() {
		for _, k := range keys {
			clear(k)
		}
	}()
	x := &keystore.Export{KeystoreID: h.KeystoreID, Created: h.Created}
	for _, s := range h.KeySets {
		es := keystore.ExportedKeySet{Name: s.Name, ID: s.ID, Primary: s.Primary}
		for _, v := range s.Versions {
			raw, ok := keys[ref{s.ID, v.Version}]
			if !ok {
				return nil, fmt.Errorf("failed to open backup: no key for key set %q version %d: %w", s.Name, v.Version, ErrTampered)
			}
			delete(keys, ref{s.ID, v.Version})
			k, err := envelope.NewDataKey(raw)
			clear(raw)
			if err != nil {
				return nil, fmt.Errorf("failed to open backup: bad key for key set %q version %d: %w", s.Name, v.Version, ErrTampered)
			}
			es.Versions = append(es.Versions, keystore.ExportedVersion{VersionInfo: v, Key: k})
		}
		x.KeySets = append(x.KeySets, es)
	}
	if len(keys) != 0 {
		return nil, fmt.Errorf("failed to open backup: %d keys the header does not list: %w", len(keys), ErrTampered)
	}
	return x, nil
}
