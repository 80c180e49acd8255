package keystore

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParsePKCS11URI(t *testing.T) {
	tests := []struct {
		name     string
		spec     string
		want     string // String(); "" when parsing must fail
		describe string
	}{
		{"label", "pkcs11:token=pgseal;object=master?module-path=/usr/lib/softhsm/libsofthsm2.so",
			"pkcs11:token=pgseal;object=master?module-path=/usr/lib/softhsm/libsofthsm2.so", `token "pgseal" key "master"`},
		{"pin file", "pkcs11:object=master;token=pgseal?pin-source=file:/run/secrets/hsm-pin&module-path=/usr/lib/p11.so",
			"pkcs11:token=pgseal;object=master?module-path=/usr/lib/p11.so&pin-source=file:/run/secrets/hsm-pin", `token "pgseal" key "master"`},
		{"pin path without scheme", "pkcs11:token=t;object=m?module-path=/m.so&pin-source=/etc/pin",
			"pkcs11:token=t;object=m?module-path=/m.so&pin-source=file:/etc/pin", `token "t" key "m"`},
		{"serial and id", "pkcs11:serial=abc123;id=%01%ff?module-path=/m.so",
			"pkcs11:serial=abc123;id=%01%FF?module-path=/m.so", `token with serial "abc123" key id 01ff`},
		{"slot", "pkcs11:slot-id=3;object=k;type=secret-key?module-path=/m.so",
			"pkcs11:slot-id=3;object=k?module-path=/m.so", `token in slot 3 key "k"`},
		{"escapes", "pkcs11:token=My%20Token;object=a%3Bb?module-path=/m.so",
			"pkcs11:token=My%20Token;object=a%3Bb?module-path=/m.so", `token "My Token" key "a;b"`},
		{"pin-value refused", "pkcs11:token=t;object=m?module-path=/m.so&pin-value=8765309", "", ""},
		{"no token", "pkcs11:object=m?module-path=/m.so", "", ""},
		{"two selectors", "pkcs11:token=t;serial=s;object=m?module-path=/m.so", "", ""},
		{"no key", "pkcs11:token=t?module-path=/m.so", "", ""},
		{"no module", "pkcs11:token=t;object=m", "", ""},
		{"relative module", "pkcs11:token=t;object=m?module-path=m.so", "", ""},
		{"relative pin file", "pkcs11:token=t;object=m?module-path=/m.so&pin-source=pin", "", ""},
		{"command pin source", "pkcs11:token=t;object=m?module-path=/m.so&pin-source=|/bin/echo", "", ""},
		{"module-name", "pkcs11:token=t;object=m?module-path=/m.so&module-name=softhsm2", "", ""},
		{"duplicate", "pkcs11:token=t;token=u;object=m?module-path=/m.so", "", ""},
		{"unknown path attribute", "pkcs11:token=t;object=m;slot=0?module-path=/m.so", "", ""},
		{"unknown query attribute", "pkcs11:token=t;object=m?module-path=/m.so&x-foo=1", "", ""},
		{"wrong type", "pkcs11:token=t;object=m;type=private?module-path=/m.so", "", ""},
		{"bad escape", "pkcs11:token=%zz;object=m?module-path=/m.so", "", ""},
		{"empty value", "pkcs11:token=;object=m?module-path=/m.so", "", ""},
		{"bad slot", "pkcs11:slot-id=-1;object=m?module-path=/m.so", "", ""},
		{"no equals", "pkcs11:token;object=m?module-path=/m.so", "", ""},
		{"too long", "pkcs11:token=" + strings.Repeat("a", maxPKCS11URI) + ";object=m?module-path=/m.so", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ParseMasterKeySource(tt.spec)
			if tt.want == "" {
				if !errors.Is(err, ErrMasterKeySource) {
					t.Fatalf("error = %v, want ErrMasterKeySource", err)
				}
				if strings.Contains(err.Error(), "8765309") {
					t.Errorf("error repeats the PIN: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = src.(interface{ Close() error }).Close() })
			if got := src.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
			if got := src.(*pkcs11Source).uri.describe(); got != tt.describe {
				t.Errorf("describe = %q, want %q", got, tt.describe)
			}
		})
	}
}

// FuzzParsePKCS11URI checks that parsing never panics and that a parsed
// URI's canonical form parses to itself.
func FuzzParsePKCS11URI(f *testing.F) {
	file, err := os.Open("testdata/pkcs11-uris.txt")
	if err != nil {
		f.Fatal(err)
	}
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f.Add(sc.Text())
	}
	file.Close()
	f.Fuzz(func(t *testing.T, spec string) {
		u, err := parsePKCS11URI(spec)
		if err != nil {
			if !errors.Is(err, ErrMasterKeySource) {
				t.Fatalf("error without ErrMasterKeySource: %v", err)
			}
			return
		}
		if len(u.String()) > maxPKCS11URI {
			// Percent-encoding may grow an accepted URI past the length
			// limit, which applies to what pgseal is given; the
			// canonical form is only for display.
			return
		}
		again, err := parsePKCS11URI(u.String())
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", u.String(), err)
		}
		if again.String() != u.String() {
			t.Fatalf("canonical form changes: %q then %q", u.String(), again.String())
		}
	})
}
