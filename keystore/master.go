package keystore

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Master-key kinds recorded in a keystore. The kind names how the key that
// wraps the keystore is obtained, not where it lives: a raw key may move
// from a file to an environment variable without a rewrap.
const (
	// KindRaw256 is a 256-bit key used as is (file:, env:, static).
	KindRaw256 = "raw-256"
	// KindArgon2id is a passphrase stretched with Argon2id.
	KindArgon2id = "argon2id"
)

// PassphraseEnv is the environment variable the passphrase source reads
// before it falls back to a prompt.
const PassphraseEnv = "PGSEAL_PASSPHRASE"

// MinPassphraseLength is the shortest passphrase accepted for a new
// keystore or a rewrap, in bytes.
const MinPassphraseLength = 12

// MasterParams are the master-key parameters a keystore records in the
// clear: the kind, and for a passphrase the Argon2id salt and costs.
type MasterParams struct {
	Kind     string
	Argon2id *Argon2idParams
}

// Argon2idParams are the salt and costs of a passphrase-derived master key.
type Argon2idParams struct {
	Salt      []byte
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// Wrapper is an unlocked master key: an AEAD that wraps and unwraps data
// keys under associated data. An HSM-backed source implements it with the
// HSM doing the encryption, so the master key never leaves the device.
// Implementations must be safe for concurrent use.
type Wrapper interface {
	// Wrap encrypts plaintext bound to ad and returns a new slice.
	Wrap(ctx context.Context, plaintext, ad []byte) ([]byte, error)
	// Unwrap reverses Wrap. Any failure is an error that says nothing about
	// the key or the plaintext.
	Unwrap(ctx context.Context, wrapped, ad []byte) ([]byte, error)
}

// MasterKeySource is where a master key comes from. Implementations must be
// safe for concurrent use.
type MasterKeySource interface {
	// Unlock returns the Wrapper for a keystore that recorded params. With
	// params nil (a new keystore, or the target of a rewrap) the source
	// creates fresh parameters and returns them for the keystore to record.
	// A source whose kind differs from params.Kind fails with
	// ErrWrongMasterKey.
	Unlock(ctx context.Context, params *MasterParams) (Wrapper, *MasterParams, error)
	// String describes the source without secrets, e.g. "file:/etc/k".
	String() string
}

// Provisioner is implemented by sources that can create their key material,
// such as a master-key file. keys init and keys rewrap call it.
type Provisioner interface {
	// Provision creates the key material if it does not exist yet and
	// reports whether it did. Existing material is never overwritten.
	Provision(ctx context.Context) (created bool, err error)
}

// SourceOption configures ParseMasterKeySource.
type SourceOption func(*sourceConfig)

type sourceConfig struct {
	lookupEnv func(string) (string, bool)
	passEnv   string
	prompt    func(prompt string) ([]byte, error)
	cost      Argon2idParams
}

// WithLookupEnv replaces os.LookupEnv for env: sources and for
// PGSEAL_PASSPHRASE.
func WithLookupEnv(lookup func(string) (string, bool)) SourceOption {
	return func(c *sourceConfig) { c.lookupEnv = lookup }
}

// WithPassphraseEnv makes the passphrase source read the named environment
// variable instead of PGSEAL_PASSPHRASE; a rewrap uses it to tell the new
// passphrase from the old.
func WithPassphraseEnv(name string) SourceOption {
	return func(c *sourceConfig) { c.passEnv = name }
}

// WithPrompt gives the passphrase source a way to ask for a passphrase,
// typically a terminal read without echo. Without it, and without
// PGSEAL_PASSPHRASE, the passphrase source fails.
func WithPrompt(prompt func(prompt string) ([]byte, error)) SourceOption {
	return func(c *sourceConfig) { c.prompt = prompt }
}

// WithArgon2idCost sets the Argon2id costs used when the passphrase source
// creates new parameters. The defaults are DefaultArgon2idCost. Opening an
// existing keystore always uses the costs it recorded.
func WithArgon2idCost(time, memoryKiB uint32, threads uint8) SourceOption {
	return func(c *sourceConfig) {
		c.cost = Argon2idParams{Time: time, MemoryKiB: memoryKiB, Threads: threads}
	}
}

// DefaultArgon2idCost is RFC 9106's second recommended option: 3 passes
// over 64 MiB with 4 lanes.
var DefaultArgon2idCost = Argon2idParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ParseMasterKeySource parses a master-key spec:
//
//	file:PATH    32 random bytes (raw, or base64) in a file of mode 0600
//	env:VAR      the base64 of 32 random bytes in an environment variable
//	passphrase   PGSEAL_PASSPHRASE, or a prompt, stretched with Argon2id
//	pkcs11:URI   an AES key inside a PKCS#11 token (RFC 7512, docs/hsm.md)
//
// A pkcs11 source also implements io.Closer. Errors wrap ErrMasterKeySource.
func ParseMasterKeySource(spec string, opts ...SourceOption) (MasterKeySource, error) {
	cfg := sourceConfig{lookupEnv: os.LookupEnv, passEnv: PassphraseEnv, cost: DefaultArgon2idCost}
	for _, o := range opts {
		o(&cfg)
	}
	scheme, rest, _ := strings.Cut(spec, ":")
	switch {
	case spec == "":
		return nil, fmt.Errorf("failed to parse master-key source: empty spec (want file:PATH, env:VAR or passphrase): %w", ErrMasterKeySource)
	case scheme == "file" && rest != "":
		return &fileSource{path: rest}, nil
	case scheme == "env" && envNameRE.MatchString(rest):
		return &envSource{name: rest, lookup: cfg.lookupEnv}, nil
	case spec == "passphrase":
		if err := checkArgon2idCost(cfg.cost); err != nil {
			return nil, err
		}
		return &passphraseSource{lookup: cfg.lookupEnv, envName: cfg.passEnv, prompt: cfg.prompt, cost: cfg.cost}, nil
	case scheme == "pkcs11":
		return newPKCS11Source(spec, &cfg)
	default:
		return nil, fmt.Errorf("failed to parse master-key source %q (want file:PATH, env:VAR or passphrase): %w", redactSpec(spec), ErrMasterKeySource)
	}
}

// redactSpec keeps the scheme of a spec that did not parse and drops the
// rest, in case someone pasted a key where a spec belongs.
func redactSpec(spec string) string {
	if scheme, _, ok := strings.Cut(spec, ":"); ok && len(scheme) <= 16 {
		return scheme + ":..."
	}
	return "..."
}

func checkArgon2idCost(p Argon2idParams) error {
	if p.Time < 1 || p.Time > maxArgon2Time || p.Threads < 1 ||
		p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > maxArgon2MemoryKiB {
		return fmt.Errorf("failed to use Argon2id costs t=%d m=%dKiB p=%d: out of range: %w",
			p.Time, p.MemoryKiB, p.Threads, ErrMasterKeySource)
	}
	return nil
}

// Bounds on recorded Argon2id costs, so that a crafted keystore cannot make
// Open allocate without limit.
const (
	maxArgon2Time      = 16
	maxArgon2MemoryKiB = 2 << 20 // 2 GiB
	minSaltLen         = 16
	maxSaltLen         = 64
)

// redacted implements fmt.Formatter for types that hold secrets.
func redacted(f fmt.State, s string) { _, _ = fmt.Fprint(f, s) }
