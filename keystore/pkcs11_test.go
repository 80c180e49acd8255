package keystore

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/internal/softhsm"
)

// These tests run against SoftHSM2 with a throwaway token each; they fail,
// never skip, when SoftHSM2 is missing. They cannot be parallel: SoftHSM2
// reads SOFTHSM2_CONF when its module is initialized.

// hsmSource parses uri with pin as PGSEAL_PKCS11_PIN and closes the source
// when tb ends, before the next test initializes the module again.
func hsmSource(tb testing.TB, uri, pin string) MasterKeySource {
	tb.Helper()
	src, err := ParseMasterKeySource(uri, WithLookupEnv(func(name string) (string, bool) {
		return pin, name == PKCS11PINEnv && pin != ""
	}))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := src.(io.Closer).Close(); err != nil {
			tb.Errorf("close %v: %v", src, err)
		}
	})
	return src
}

// provisioned is a fresh token with the master key "master" created by
// Provision, and a source for it.
func provisioned(tb testing.TB) (*softhsm.Token, MasterKeySource) {
	tb.Helper()
	tok := softhsm.NewTB(tb, "pgseal")
	src := hsmSource(tb, tok.URI(tok.Label, "master"), tok.PIN)
	created, err := src.(Provisioner).Provision(context.Background())
	if err != nil || !created {
		tb.Fatalf("Provision = %v, %v; want true, nil", created, err)
	}
	return tok, src
}

func TestPKCS11KeystoreLifecycle(t *testing.T) {
	ctx := context.Background()
	_, src := provisioned(t)
	if created, err := src.(Provisioner).Provision(ctx); err != nil || created {
		t.Fatalf("second Provision = %v, %v; want false, nil", created, err)
	}
	path := newKeystore(t, src)
	ks, err := Open(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	if ks.MasterKind() != KindPKCS11 {
		t.Errorf("MasterKind = %q, want %q", ks.MasterKind(), KindPKCS11)
	}
	env := seal(t, ks, "pii", envelope.Randomized, "alice@example.com")
	e, err := Edit(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Rotate(ctx, "pii"); err != nil {
		t.Fatal(err)
	}
	if err := e.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	ks, err = Open(ctx, path, src)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(t, ks, "pii", envelope.Randomized, env); err != nil || got != "alice@example.com" {
		t.Fatalf("open after rotate = %q, %v", got, err)
	}
	// The file records the kind and no secret of the token.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"`+KindPKCS11+`"`) || strings.Contains(string(data), softhsm.TestPIN) {
		t.Errorf("keystore file does not record the kind, or records the PIN")
	}
}

// TestPKCS11MasterKeyNotExportable tries every PKCS#11 way to get the key
// out of the token, logged in as the user who owns it, and fails.
func TestPKCS11MasterKeyNotExportable(t *testing.T) {
	tok, src := provisioned(t)
	if err := src.(io.Closer).Close(); err != nil { // release the module for raw access
		t.Fatal(err)
	}
	p := pkcs11.New(tok.Module)
	if p == nil {
		t.Fatalf("failed to load %s", tok.Module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	var session pkcs11.SessionHandle
	found := false
	for _, slot := range slots {
		ti, err := p.GetTokenInfo(slot)
		if err != nil || ti.Label != tok.Label {
			continue
		}
		if session, err = p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	if !found {
		t.Fatalf("token %q not found", tok.Label)
	}
	defer p.CloseSession(session)
	if err := p.Login(session, pkcs11.CKU_USER, tok.PIN); err != nil {
		t.Fatal(err)
	}
	defer p.Logout(session)
	if err := p.FindObjectsInit(session, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "master")}); err != nil {
		t.Fatal(err)
	}
	handles, _, err := p.FindObjects(session, 10)
	_ = p.FindObjectsFinal(session)
	if err != nil || len(handles) != 1 {
		t.Fatalf("found %d master keys, %v", len(handles), err)
	}
	master := handles[0]

	tests := []struct {
		name string
		try  func() error
		want pkcs11.Error
	}{
		{"C_GetAttributeValue(CKA_VALUE)", func() error {
			_, err := p.GetAttributeValue(session, master, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			return err
		}, pkcs11.CKR_ATTRIBUTE_SENSITIVE},
		{"C_WrapKey under an AES key of the caller's", func() error {
			kek, err := p.GenerateKey(session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.WrapKey(session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, kek, master)
			return err
		}, pkcs11.CKR_KEY_UNEXTRACTABLE},
		{"C_SetAttributeValue(CKA_EXTRACTABLE=true)", func() error {
			return p.SetAttributeValue(session, master, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true)})
		}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
		{"C_SetAttributeValue(CKA_SENSITIVE=false)", func() error {
			return p.SetAttributeValue(session, master, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false)})
		}, pkcs11.CKR_ATTRIBUTE_READ_ONLY},
		{"C_WrapKey with the master key itself (CKA_WRAP=false)", func() error {
			k, err := p.GenerateKey(session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.WrapKey(session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, master, k)
			return err
		}, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.try()
			if err == nil {
				t.Fatal("the token let the call through")
			}
			var got pkcs11.Error
			if !errors.As(err, &got) {
				t.Fatalf("error = %v, want a PKCS#11 error", err)
			}
			t.Logf("refused: %v", err)
			if got != tt.want {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPKCS11WrongPIN(t *testing.T) {
	ctx := context.Background()
	tok, src := provisioned(t)
	path := newKeystore(t, src)
	// PKCS#11 login belongs to the process, not the session: close the
	// logged-in source so that the next one must log in itself.
	if err := src.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	bad := hsmSource(t, tok.URI(tok.Label, "master"), "0000-0000")
	_, err := Open(ctx, path, bad)
	if !errors.Is(err, ErrMasterKeySource) || errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("error = %v, want ErrMasterKeySource only", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "wrong PIN") || strings.Contains(msg, "0000-0000") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line saying wrong PIN, without the PIN", msg)
	}
}

func TestPKCS11PINSources(t *testing.T) {
	ctx := context.Background()
	tok, src := provisioned(t)
	path := newKeystore(t, src)
	if err := src.(io.Closer).Close(); err != nil { // each case logs in itself
		t.Fatal(err)
	}
	pinFile := func(mode os.FileMode, content string) string {
		p := filepath.Join(t.TempDir(), "pin")
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		query   string
		env     string
		wantErr error
	}{
		{"file with newline", "pin-source=file:" + pinFile(0o600, tok.PIN+"\n"), "", nil},
		{"file wins over env", "pin-source=file:" + pinFile(0o400, tok.PIN), "wrong", nil},
		{"env", "", tok.PIN, nil},
		{"wrong PIN in file", "pin-source=file:" + pinFile(0o600, "1111-1111"), tok.PIN, ErrMasterKeySource},
		{"no PIN", "", "", ErrMasterKeySource},
		{"file readable by others", "pin-source=file:" + pinFile(0o644, tok.PIN), "", ErrInsecureKeyFile},
		{"empty file", "pin-source=file:" + pinFile(0o600, "\n"), "", ErrMasterKeySource},
		{"missing file", "pin-source=file:/nonexistent/pin", "", ErrMasterKeySource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri := tok.URI(tok.Label, "master")
			if tt.query != "" {
				uri += "&" + tt.query
			}
			_, err := Open(ctx, path, hsmSource(t, uri, tt.env))
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestPKCS11Refusals(t *testing.T) {
	ctx := context.Background()
	tok, src := provisioned(t)
	hsmPath := newKeystore(t, src)
	filePath := newKeystore(t, staticKey(t, 7))
	tests := []struct {
		name    string
		path    string
		src     MasterKeySource
		wantErr error
	}{
		{"file keystore, HSM key", filePath, src, ErrWrongMasterKey},
		{"HSM keystore, file key", hsmPath, staticKey(t, 7), ErrWrongMasterKey},
		{"HSM keystore, passphrase", hsmPath, cheapPassphrase(t, "a long passphrase"), ErrWrongMasterKey},
		{"no such key", hsmPath, hsmSource(t, tok.URI(tok.Label, "other"), tok.PIN), ErrMasterKeySource},
		{"no such token", hsmPath, hsmSource(t, tok.URI("nosuchtoken", "master"), tok.PIN), ErrMasterKeySource},
		{"no such module", hsmPath, hsmSource(t, "pkcs11:token=pgseal;object=master?module-path=/nonexistent/p11.so", tok.PIN), ErrMasterKeySource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(ctx, tt.path, tt.src)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// TestPKCS11RefusesExportableKey puts an extractable key under the label
// pgseal looks for, as a careless import would, and expects Unlock to
// refuse it.
func TestPKCS11RefusesExportableKey(t *testing.T) {
	tok := softhsm.NewTB(t, "pgseal")
	raw := hsmSource(t, tok.URI(tok.Label, "careless"), tok.PIN).(*pkcs11Source)
	_, err := raw.withKey(context.Background(), func(c *crypto11.Context) (*crypto11.SecretKey, error) {
		tmpl := crypto11.NewAttributeSet()
		for k, v := range map[crypto11.AttributeType]any{
			pkcs11.CKA_LABEL: []byte("careless"), pkcs11.CKA_ID: []byte{1},
			pkcs11.CKA_EXTRACTABLE: true, pkcs11.CKA_SENSITIVE: true,
		} {
			if err := tmpl.Set(k, v); err != nil {
				return nil, err
			}
		}
		return c.GenerateSecretKeyWithAttributes(tmpl, 256, crypto11.CipherAES)
	})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = raw.Unlock(context.Background(), nil)
	if !errors.Is(err, ErrMasterKeySource) || !strings.Contains(err.Error(), "EXTRACTABLE") {
		t.Fatalf("Unlock = %v, want a refusal of an extractable key", err)
	}
}

// TestPKCS11Rewrap moves one keystore file → HSM → another token →
// passphrase and opens values sealed before the first move after the last.
func TestPKCS11Rewrap(t *testing.T) {
	ctx := context.Background()
	// Both tokens exist before the module is loaded: SoftHSM2 lists the
	// tokens it finds when it is initialized.
	tok := softhsm.NewTB(t, "pgseal")
	if err := tok.InitToken(ctx, "second", "2222-3333", "so-2222"); err != nil {
		t.Fatal(err)
	}
	hsm1 := hsmSource(t, tok.URI(tok.Label, "master"), tok.PIN)
	hsm2 := hsmSource(t, tok.URI("second", "master", "pin-source=file:"+writeKeyFile(t, []byte("2222-3333"), 0o600)), tok.PIN)
	for _, src := range []MasterKeySource{hsm1, hsm2} {
		if _, err := src.(Provisioner).Provision(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fileKey := staticKey(t, 9)
	path := newKeystore(t, fileKey)
	ks, err := Open(ctx, path, fileKey)
	if err != nil {
		t.Fatal(err)
	}
	env := seal(t, ks, "finance", envelope.Deterministic, "12345.67")
	pass := cheapPassphrase(t, "correct horse battery staple")
	from := fileKey
	for _, to := range []MasterKeySource{hsm1, hsm2, pass} {
		e, err := Edit(ctx, path, from)
		if err != nil {
			t.Fatalf("edit with %v: %v", from, err)
		}
		if err := e.Rewrap(ctx, to); err != nil {
			t.Fatalf("rewrap %v → %v: %v", from, to, err)
		}
		if err := e.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(ctx, path, from); !errors.Is(err, ErrWrongMasterKey) {
			t.Errorf("old key %v still opens the keystore: %v", from, err)
		}
		from = to
	}
	ks, err = Open(ctx, path, pass)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := open(t, ks, "finance", envelope.Deterministic, env); err != nil || got != "12345.67" {
		t.Fatalf("open after file → HSM → HSM → passphrase = %q, %v", got, err)
	}
}

// TestPKCS11ClosedSource checks that a wrapper whose source was closed
// fails with an error rather than a panic.
func TestPKCS11ClosedSource(t *testing.T) {
	ctx := context.Background()
	_, src := provisioned(t)
	w, _, err := src.Unlock(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wrap(ctx, make([]byte, 32), []byte("ad")); !errors.Is(err, ErrMasterKeySource) {
		t.Errorf("Wrap after Close = %v, want ErrMasterKeySource", err)
	}
	if _, err := w.Unwrap(ctx, make([]byte, 60), []byte("ad")); err == nil {
		t.Error("Unwrap after Close succeeded")
	}
	// The source reconnects on the next Unlock.
	if _, _, err := src.Unlock(ctx, &MasterParams{Kind: KindPKCS11}); err != nil {
		t.Errorf("Unlock after Close = %v", err)
	}
}

// BenchmarkOpenPKCS11 is BenchmarkOpen with the master key in SoftHSM2: a
// reload costs a key lookup and one C_Decrypt per active version.
func BenchmarkOpenPKCS11(b *testing.B) {
	ctx := context.Background()
	_, mk := provisioned(b)
	path := newKeystore(b, mk)
	e, _ := Edit(ctx, path, mk)
	for range 3 {
		if _, err := e.Rotate(ctx, "pii"); err != nil {
			b.Fatal(err)
		}
	}
	if err := e.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(ctx, path, mk); err != nil {
			b.Fatal(err)
		}
	}
}
