package backup

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"

	"github.com/pgseal/pgseal/keystore"
)

// Sentinel errors. Callers branch on them with errors.Is; messages never
// contain key material or passphrases.
var (
	// ErrMalformed means the data is not a pgseal key backup, or its header
	// or sections cannot be parsed.
	ErrMalformed = errors.New("backup: not a pgseal key backup, or malformed")
	// ErrUnknownVersion means the backup has a format version this build
	// does not read.
	ErrUnknownVersion = errors.New("backup: unknown backup format version")
	// ErrNoIdentity means none of the identities opens any section: another
	// key, another passphrase, or an altered recipient stanza.
	ErrNoIdentity = errors.New("backup: no identity opens this backup")
	// ErrTampered means a section failed authentication, or its contents do
	// not match the header: the backup was altered.
	ErrTampered = errors.New("backup: backup was altered")
	// ErrNoRecipients means Write was given no recipient.
	ErrNoRecipients = errors.New("backup: no recipients")
)

// PassphraseRecipient is how a header names the passphrase recipient.
const PassphraseRecipient = "passphrase"

// Recipients are who can open a backup: any of the X25519 recipients'
// identities, or the passphrase. At least one is required.
type Recipients struct {
	X25519 []*age.X25519Recipient
	// Passphrase, if not empty, adds a section encrypted with age's scrypt
	// recipient.
	Passphrase string
}

// Option configures Write.
type Option func(*options)

type options struct {
	now       func() time.Time
	scryptLog int
}

// WithClock replaces time.Now for the backup's creation time.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithScryptWorkFactor sets log2 of the scrypt cost of the passphrase
// section. The default is age's (18, about a second); tests lower it.
func WithScryptWorkFactor(logN int) Option { return func(o *options) { o.scryptLog = logN } }

// Write encrypts every key version of x to rcpt and writes the backup to w.
// It returns the header it wrote.
func Write(w io.Writer, x *keystore.Export, rcpt Recipients, opts ...Option) (*Header, error) {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if x == nil {
		return nil, errors.New("failed to write backup: nothing to back up")
	}
	if len(rcpt.X25519) == 0 && rcpt.Passphrase == "" {
		return nil, fmt.Errorf("failed to write backup: %w", ErrNoRecipients)
	}
	h := &Header{Created: o.now().UTC().Truncate(time.Second), KeystoreID: x.KeystoreID, KeySets: x.Info()}
	var groups [][]age.Recipient
	if len(rcpt.X25519) > 0 {
		g := make([]age.Recipient, 0, len(rcpt.X25519))
		for _, r := range rcpt.X25519 {
			h.Recipients = append(h.Recipients, r.String())
			g = append(g, r)
		}
		h.sections = append(h.sections, sectionX25519)
		groups = append(groups, g)
	}
	if rcpt.Passphrase != "" {
		r, err := age.NewScryptRecipient(rcpt.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("failed to use the backup passphrase: %w", err)
		}
		if o.scryptLog != 0 {
			r.SetWorkFactor(o.scryptLog)
		}
		h.Recipients = append(h.Recipients, PassphraseRecipient)
		h.sections = append(h.sections, sectionScrypt)
		groups = append(groups, []age.Recipient{r})
	}
	head, err := h.encode()
	if err != nil {
		return nil, err
	}
	payload, err := encodePayload(x, sha256.Sum256(head))
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	var out bytes.Buffer
	out.Write(head)
	for _, g := range groups {
		if err := encryptSection(&out, payload, g); err != nil {
			return nil, err
		}
	}
	if _, err := w.Write(out.Bytes()); err != nil {
		return nil, fmt.Errorf("failed to write backup: %w", err)
	}
	return h, nil
}

func encryptSection(dst *bytes.Buffer, payload []byte, rcpt []age.Recipient) error {
	aw := armor.NewWriter(dst)
	ew, err := age.Encrypt(aw, rcpt...)
	if err != nil {
		return fmt.Errorf("failed to encrypt backup: %w", err)
	}
	if _, err := ew.Write(payload); err != nil {
		return fmt.Errorf("failed to encrypt backup: %w", err)
	}
	if err := ew.Close(); err != nil {
		return fmt.Errorf("failed to encrypt backup: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("failed to armor backup: %w", err)
	}
	dst.WriteByte('\n')
	return nil
}

// File is a parsed backup: its header and its still encrypted sections.
type File struct {
	// Header is the plaintext header. It is not authenticated until Open
	// succeeds.
	Header   Header
	head     []byte   // the exact header bytes the sections bind
	sections [][]byte // armored age files, in header order
}

// Open decrypts the first section one of identities opens, checks it
// against the header, and returns every key version. It fails with
// ErrNoIdentity, ErrTampered or ErrMalformed.
func (f *File) Open(identities ...age.Identity) (*keystore.Export, error) {
	var noMatch error
	for i, sec := range f.sections {
		r, err := age.Decrypt(armor.NewReader(bytes.NewReader(sec)), identities...)
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			noMatch = err
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("failed to decrypt backup section %d (%s): %w", i+1, f.Header.sections[i], ErrTampered)
		}
		payload, err := io.ReadAll(io.LimitReader(r, maxSection+1))
		if err != nil || len(payload) > maxSection {
			return nil, fmt.Errorf("failed to decrypt backup section %d (%s): %w", i+1, f.Header.sections[i], ErrTampered)
		}
		defer clear(payload)
		return decodePayload(payload, f.head, &f.Header)
	}
	if noMatch == nil {
		return nil, fmt.Errorf("failed to open backup: no sections: %w", ErrMalformed)
	}
	return nil, fmt.Errorf("failed to open backup (recipients: %v): %w", f.Header.Recipients, ErrNoIdentity)
}

// SHA256 returns the hex SHA-256 of data, the digest `keys backup` prints
// and records so that a backup can be recognized before it is restored.
func SHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
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
