package softhsm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ConfEnv is the variable SoftHSM2 reads its configuration path from.
const ConfEnv = "SOFTHSM2_CONF"

// Known locations of the SoftHSM2 module on Debian and its derivatives.
var modulePaths = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// ErrNotInstalled means the SoftHSM2 module or softhsm2-util is missing.
var ErrNotInstalled = errors.New("softhsm: SoftHSM2 is not installed (run scripts/install-deps.sh, or apt-get install softhsm2)")

// Module returns the path of the SoftHSM2 PKCS#11 library.
func Module() (string, error) {
	for _, p := range modulePaths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("failed to find libsofthsm2.so in %v: %w", modulePaths, ErrNotInstalled)
}

// HSM is a SoftHSM2 configuration with its own token directory.
type HSM struct {
	// Dir holds the configuration file and the tokens.
	Dir string
	// Conf is the configuration file, the value of SOFTHSM2_CONF.
	Conf string
	// Module is the path of the PKCS#11 library.
	Module string
}

// New writes a SoftHSM2 configuration with an empty token directory under
// dir. It does not set SOFTHSM2_CONF.
func New(dir string) (*HSM, error) {
	mod, err := Module()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil {
		return nil, fmt.Errorf("failed to find softhsm2-util: %w", ErrNotInstalled)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create token directory: %w", err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	text := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, fmt.Errorf("failed to write SoftHSM2 configuration: %w", err)
	}
	return &HSM{Dir: dir, Conf: conf, Module: mod}, nil
}

// InitToken initializes a new token called label with a user PIN and a
// security officer PIN, using softhsm2-util.
func (h *HSM) InitToken(ctx context.Context, label, pin, soPIN string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "softhsm2-util", "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", soPIN)
	cmd.Env = append(os.Environ(), h.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to initialize token %q: %w: %s", label, err, out)
	}
	return nil
}

// Env returns the environment a process needs to see these tokens.
func (h *HSM) Env() []string { return []string{ConfEnv + "=" + h.Conf} }

// URI returns a PKCS#11 URI for the key labelled object in the token
// labelled token, with the given extra query attributes ("pin-source=...").
func (h *HSM) URI(token, object string, query ...string) string {
	u := "pkcs11:token=" + token + ";object=" + object + "?module-path=" + h.Module
	for _, q := range query {
		u += "&" + q
	}
	return u
}

// Token is one initialized token.
type Token struct {
	*HSM
	Label string
	PIN   string
}

// TestPIN and TestSOPIN are the PINs of tokens NewTB creates.
const (
	TestPIN   = "4716-2093"
	TestSOPIN = "so-9921-4410"
)

// NewTB creates a throwaway SoftHSM2 configuration for tb, points
// SOFTHSM2_CONF at it until tb ends, and initializes a token called label
// with TestPIN. It fails tb, never skips, when SoftHSM2 is missing.
func NewTB(tb testing.TB, label string) *Token {
	tb.Helper()
	h, err := New(tb.TempDir())
	if err != nil {
		tb.Fatalf("%v\n`make test` installs SoftHSM2 through scripts/install-deps.sh", err)
	}
	tb.Setenv(ConfEnv, h.Conf)
	if err := h.InitToken(context.Background(), label, TestPIN, TestSOPIN); err != nil {
		tb.Fatal(err)
	}
	return &Token{HSM: h, Label: label, PIN: TestPIN}
}
