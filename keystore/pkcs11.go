package keystore

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"
)

// KindPKCS11 is the master-key kind of a keystore wrapped inside a PKCS#11
// token with AES-256-GCM. The key never leaves the token.
const KindPKCS11 = "pkcs11-aes-256-gcm"

// PKCS11PINEnv is the environment variable the PKCS#11 source reads the
// user PIN from when its URI has no pin-source.
const PKCS11PINEnv = "PGSEAL_PKCS11_PIN"

// Sizes of the token-side AES-GCM wrap. A wrapped value is
// nonce (12 bytes) || ciphertext || tag (16 bytes).
//
// Why AES-GCM through C_Encrypt rather than CKM_AES_KEY_WRAP_PAD: RFC 5649
// has no associated data, so a wrapped key could be moved to another key
// set or version undetected, and tokens such as SoftHSM2 offer
// CKM_AES_KEY_WRAP_PAD only for C_WrapKey on key objects, which would put
// every data key into the token as an extractable object. GCM binds the
// same associated data as the software wrapper. Nonces are 96 random bits
// from crypto/rand; a keystore wraps one key per data key version per
// rewrap, far below the 2^32 wraps at which random GCM nonces become a
// concern.
const (
	p11NonceSize = 12
	p11TagSize   = 16
	p11KeyBits   = 256
)

// PKCS#11 session settings: a few sessions suffice, since wrapping happens
// only when a keystore is opened, edited or rewrapped; waiting for a
// session is bounded so that a wedged token cannot hang a reload forever.
const (
	p11MaxSessions = 4
	p11PoolWait    = 30 * time.Second
	maxPINFileSize = 256
)

// pkcs11Source is a master key inside a PKCS#11 token. It connects and
// logs in on first use and keeps the session for later Unlocks (a reload,
// an edit); Close ends it. It is safe for concurrent use.
type pkcs11Source struct {
	uri    *pkcs11URI
	lookup func(string) (string, bool)
	conn   *p11Conn
}

// p11Conn is the logged-in connection, kept apart from the source so that
// a cleanup attached to the source can close it.
type p11Conn struct {
	mu  sync.Mutex
	ctx *crypto11.Context
}

func (c *p11Conn) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		return nil
	}
	err := c.ctx.Close()
	c.ctx = nil
	return err
}

// newPKCS11Source parses a pkcs11: spec. It does not touch the token yet.
func newPKCS11Source(spec string, cfg *sourceConfig) (*pkcs11Source, error) {
	u, err := parsePKCS11URI(spec)
	if err != nil {
		return nil, err
	}
	s := &pkcs11Source{uri: u, lookup: cfg.lookupEnv, conn: &p11Conn{}}
	// A source dropped without Close (a CLI command that returns, a
	// replaced reload source) still logs out and unloads the module.
	runtime.AddCleanup(s, func(c *p11Conn) { _ = c.close() }, s.conn)
	return s, nil
}

func (s *pkcs11Source) String() string             { return s.uri.String() }
func (s *pkcs11Source) GoString() string           { return s.String() }
func (s *pkcs11Source) Format(f fmt.State, _ rune) { redacted(f, s.String()) }

// Close logs out of the token and releases the module when no other source
// uses it. Wrappers from Unlock stop working. Close is safe to call twice.
func (s *pkcs11Source) Close() error { return s.conn.close() }

// Unlock finds the master key in the token and returns a Wrapper that
// encrypts and decrypts inside it.
func (s *pkcs11Source) Unlock(ctx context.Context, params *MasterParams) (Wrapper, *MasterParams, error) {
	if params != nil && params.Kind != KindPKCS11 {
		return nil, nil, fmt.Errorf("failed to unlock: the keystore expects a %s master key, not %s: %w", params.Kind, KindPKCS11, ErrWrongMasterKey)
	}
	key, err := s.withKey(ctx, func(c *crypto11.Context) (*crypto11.SecretKey, error) {
		key, err := s.findKey(c)
		if err != nil {
			return nil, err
		}
		if key == nil {
			return nil, fmt.Errorf("failed to find the master key: no AES key matches %s (keys init or keys rewrap create it): %w", s.uri.describe(), ErrMasterKeySource)
		}
		return key, s.checkKey(c, key)
	})
	if err != nil {
		return nil, nil, err
	}
	aead, err := key.NewGCM()
	if err != nil {
		return nil, nil, fmt.Errorf("failed to use the master key in %s for AES-GCM: %w: %w", s.uri.describe(), ErrMasterKeySource, err)
	}
	return &pkcs11Wrapper{src: s, aead: aead}, &MasterParams{Kind: KindPKCS11}, nil
}

// Provision creates the master key in the token unless it exists: an
// AES-256 key that is sensitive and not extractable, so that no PKCS#11
// call returns its value or wraps it out of the token, and that may only
// encrypt and decrypt.
func (s *pkcs11Source) Provision(ctx context.Context) (bool, error) {
	created := false
	_, err := s.withKey(ctx, func(c *crypto11.Context) (*crypto11.SecretKey, error) {
		key, err := s.findKey(c)
		if err != nil || key != nil {
			return key, err
		}
		id := s.uri.id
		if len(id) == 0 {
			id = make([]byte, 16)
			_, _ = io.ReadFull(rand.Reader, id) // crypto/rand never fails
		}
		tmpl := crypto11.NewAttributeSet()
		_ = tmpl.Set(crypto11.CkaId, id) // Set fails only for unsupported value types
		if s.uri.object != "" {
			_ = tmpl.Set(crypto11.CkaLabel, []byte(s.uri.object))
		}
		tmpl.AddIfNotPresent([]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, false),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false),
		})
		key, err = c.GenerateSecretKeyWithAttributes(tmpl, p11KeyBits, crypto11.CipherAES)
		if err != nil {
			return nil, fmt.Errorf("failed to create the master key in %s: %w: %w", s.uri.describe(), ErrMasterKeySource, err)
		}
		created = true
		return key, nil
	})
	return created, err
}

// withKey runs f on the connection, connecting first if needed. A cached
// connection that fails (the token was reset, the daemon restarted) is
// dropped and f runs once more on a new one.
func (s *pkcs11Source) withKey(ctx context.Context, f func(*crypto11.Context) (*crypto11.SecretKey, error)) (*crypto11.SecretKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to reach the PKCS#11 token: %w", err)
	}
	s.conn.mu.Lock()
	defer s.conn.mu.Unlock()
	fresh := false
	if s.conn.ctx == nil {
		c, err := s.connect()
		if err != nil {
			return nil, err
		}
		s.conn.ctx, fresh = c, true
	}
	key, err := f(s.conn.ctx)
	var p11err pkcs11.Error
	if err == nil || fresh || !errors.As(err, &p11err) {
		return key, err
	}
	_ = s.conn.ctx.Close()
	s.conn.ctx = nil
	c, cerr := s.connect()
	if cerr != nil {
		return nil, cerr
	}
	s.conn.ctx = c
	return f(c)
}

// connect loads the module, opens the token and logs in.
func (s *pkcs11Source) connect() (*crypto11.Context, error) {
	u := s.uri
	if _, err := os.Stat(u.modulePath); err != nil {
		return nil, fmt.Errorf("failed to load PKCS#11 module %s: %w: %w", u.modulePath, ErrMasterKeySource, err)
	}
	pin, err := s.readPIN()
	if err != nil {
		return nil, err
	}
	cfg := &crypto11.Config{
		Path:            u.modulePath,
		TokenLabel:      u.token,
		TokenSerial:     u.serial,
		SlotNumber:      u.slotID,
		Pin:             pin,
		MaxSessions:     p11MaxSessions,
		PoolWaitTimeout: p11PoolWait,
		GCMIVLength:     p11NonceSize,
	}
	c, err := crypto11.Configure(cfg)
	if err != nil {
		var p11err pkcs11.Error
		if errors.As(err, &p11err) {
			switch p11err {
			case pkcs11.CKR_PIN_INCORRECT, pkcs11.CKR_PIN_LEN_RANGE:
				return nil, fmt.Errorf("failed to log in to PKCS#11 %s: wrong PIN: %w", u.describe(), ErrMasterKeySource)
			case pkcs11.CKR_PIN_LOCKED:
				return nil, fmt.Errorf("failed to log in to PKCS#11 %s: the PIN is locked: %w", u.describe(), ErrMasterKeySource)
			case pkcs11.CKR_PIN_EXPIRED:
				return nil, fmt.Errorf("failed to log in to PKCS#11 %s: the PIN has expired: %w", u.describe(), ErrMasterKeySource)
			}
		}
		return nil, fmt.Errorf("failed to open PKCS#11 %s through %s: %w: %w", u.describe(), u.modulePath, ErrMasterKeySource, err)
	}
	return c, nil
}

// readPIN reads the user PIN from the pin-source file or from
// PGSEAL_PKCS11_PIN. A PIN file must not be readable by group or others.
func (s *pkcs11Source) readPIN() (string, error) {
	if s.uri.pinFile == "" {
		v, ok := s.lookup(PKCS11PINEnv)
		if !ok || v == "" {
			return "", fmt.Errorf("failed to read the PKCS#11 PIN: set %s or add pin-source=file:PATH to the URI: %w", PKCS11PINEnv, ErrMasterKeySource)
		}
		return v, nil
	}
	f, err := os.Open(s.uri.pinFile)
	if err != nil {
		return "", fmt.Errorf("failed to open PIN file: %w: %w", ErrMasterKeySource, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("failed to stat PIN file: %w: %w", ErrMasterKeySource, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("failed to use PIN file %s: not a regular file: %w", s.uri.pinFile, ErrInsecureKeyFile)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("failed to use PIN file %s: mode %04o gives group or others access (want 0600 or 0400): %w", s.uri.pinFile, perm, ErrInsecureKeyFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPINFileSize+1))
	if err != nil {
		return "", fmt.Errorf("failed to read PIN file: %w: %w", ErrMasterKeySource, err)
	}
	defer clear(b)
	pin := bytes.TrimRight(b, "\r\n")
	if len(b) > maxPINFileSize || len(pin) == 0 {
		return "", fmt.Errorf("failed to read PIN file %s: empty or longer than %d bytes: %w", s.uri.pinFile, maxPINFileSize, ErrMasterKeySource)
	}
	return string(pin), nil
}

// findKey returns the one AES secret key the URI names, or nil if none.
func (s *pkcs11Source) findKey(c *crypto11.Context) (*crypto11.SecretKey, error) {
	tmpl := crypto11.NewAttributeSet()
	_ = tmpl.Set(crypto11.CkaKeyType, pkcs11.CKK_AES)
	if s.uri.object != "" {
		_ = tmpl.Set(crypto11.CkaLabel, []byte(s.uri.object))
	}
	if len(s.uri.id) > 0 {
		_ = tmpl.Set(crypto11.CkaId, s.uri.id)
	}
	keys, err := c.FindKeysWithAttributes(tmpl)
	if err != nil {
		return nil, fmt.Errorf("failed to search %s for the master key: %w: %w", s.uri.describe(), ErrMasterKeySource, err)
	}
	switch len(keys) {
	case 0:
		return nil, nil
	case 1:
		return keys[0], nil
	default:
		return nil, fmt.Errorf("failed to find the master key: %d AES keys match %s; name one by id: %w", len(keys), s.uri.describe(), ErrMasterKeySource)
	}
}

// checkKey refuses a master key that is not AES-256, that the token would
// reveal (not sensitive, or extractable), or that cannot encrypt and
// decrypt. An operator may have imported a key by hand; pgseal will not
// use one that can leave the token.
func (s *pkcs11Source) checkKey(c *crypto11.Context, key *crypto11.SecretKey) error {
	attrs, err := c.GetAttributes(key, []crypto11.AttributeType{
		pkcs11.CKA_VALUE_LEN, pkcs11.CKA_SENSITIVE, pkcs11.CKA_EXTRACTABLE, pkcs11.CKA_ENCRYPT, pkcs11.CKA_DECRYPT,
	})
	if err != nil {
		return fmt.Errorf("failed to read the attributes of the master key in %s: %w: %w", s.uri.describe(), ErrMasterKeySource, err)
	}
	bad := func(why string) error {
		return fmt.Errorf("failed to use the master key in %s: %s: %w", s.uri.describe(), why, ErrMasterKeySource)
	}
	switch {
	case p11Ulong(attrs[pkcs11.CKA_VALUE_LEN]) != p11KeyBits/8:
		return bad("not an AES-256 key")
	case !p11Bool(attrs[pkcs11.CKA_SENSITIVE]):
		return bad("the key is not CKA_SENSITIVE, so the token would reveal it")
	case p11Bool(attrs[pkcs11.CKA_EXTRACTABLE]):
		return bad("the key is CKA_EXTRACTABLE, so it can be wrapped out of the token")
	case !p11Bool(attrs[pkcs11.CKA_ENCRYPT]) || !p11Bool(attrs[pkcs11.CKA_DECRYPT]):
		return bad("the key may not encrypt and decrypt")
	}
	return nil
}

// p11Bool decodes a CK_BBOOL attribute; a missing one is false.
func p11Bool(a *pkcs11.Attribute) bool { return a != nil && len(a.Value) == 1 && a.Value[0] != 0 }

// p11Ulong decodes a CK_ULONG attribute, which a module returns in the
// host's byte order and word size.
func p11Ulong(a *pkcs11.Attribute) uint64 {
	switch {
	case a == nil:
		return 0
	case len(a.Value) == 8:
		return binary.NativeEndian.Uint64(a.Value)
	case len(a.Value) == 4:
		return uint64(binary.NativeEndian.Uint32(a.Value))
	default:
		return 0
	}
}

// pkcs11Wrapper encrypts and decrypts data keys inside the token.
type pkcs11Wrapper struct {
	src  *pkcs11Source // keeps the connection from being cleaned up
	aead cipher.AEAD
}

func (w *pkcs11Wrapper) String() string             { return "keystore.Wrapper(" + w.src.String() + ")" }
func (w *pkcs11Wrapper) GoString() string           { return w.String() }
func (w *pkcs11Wrapper) Format(f fmt.State, _ rune) { redacted(f, w.String()) }

func (w *pkcs11Wrapper) Wrap(ctx context.Context, plaintext, ad []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to wrap in the PKCS#11 token: %w", err)
	}
	out := make([]byte, p11NonceSize, p11NonceSize+len(plaintext)+p11TagSize)
	_, _ = io.ReadFull(rand.Reader, out) // crypto/rand never fails
	sealed, err := sealInToken(w.aead, out, out[:p11NonceSize], plaintext, ad)
	if err != nil {
		return nil, err
	}
	return sealed, nil
}

func (w *pkcs11Wrapper) Unwrap(ctx context.Context, wrapped, ad []byte) ([]byte, error) {
	if ctx.Err() != nil || len(wrapped) < p11NonceSize+p11TagSize {
		return nil, errUnwrap
	}
	pt, err := w.aead.Open(nil, wrapped[:p11NonceSize], wrapped[p11NonceSize:], ad)
	if err != nil {
		return nil, errUnwrap
	}
	return pt, nil
}

// sealInToken calls Seal, which crypto11 implements by panicking when the
// token fails (it has no error return), and turns that panic into an error.
// The panic value is a PKCS#11 return code, never key material.
func sealInToken(aead cipher.AEAD, dst, nonce, plaintext, ad []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("failed to wrap in the PKCS#11 token: %v: %w", r, ErrMasterKeySource)
		}
	}()
	return aead.Seal(dst, nonce, plaintext, ad), nil
}
