package keystore

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// pkcs11URI is the part of an RFC 7512 PKCS#11 URI that names pgseal's
// master key:
//
//	pkcs11:token=pgseal;object=master?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin
//
// The token is chosen by exactly one of token (label), serial or slot-id;
// the key by object (CKA_LABEL), id (CKA_ID) or both. module-path is
// required. pin-value is refused: a PIN on a command line ends up in shell
// history and in the process list.
type pkcs11URI struct {
	token, serial string
	slotID        *int
	object        string
	id            []byte
	modulePath    string
	pinFile       string // from pin-source, "" if absent
}

// Attribute names used in parsing errors and in String.
const (
	p11Token      = "token"
	p11Serial     = "serial"
	p11SlotID     = "slot-id"
	p11Object     = "object"
	p11ID         = "id"
	p11Type       = "type"
	p11ModulePath = "module-path"
	p11PINSource  = "pin-source"
	p11PINValue   = "pin-value"
	p11ModuleName = "module-name"
)

// maxPKCS11URI bounds the spec; real URIs are a few hundred bytes.
const maxPKCS11URI = 4096

func p11Error(format string, args ...any) error {
	return fmt.Errorf("failed to parse PKCS#11 URI: "+format+": %w", append(args, ErrMasterKeySource)...)
}

// parsePKCS11URI parses spec, which starts with "pkcs11:". Errors never
// repeat attribute values, in case a PIN was pasted where it does not
// belong.
func parsePKCS11URI(spec string) (*pkcs11URI, error) {
	rest, ok := strings.CutPrefix(spec, "pkcs11:")
	if !ok {
		return nil, p11Error("want pkcs11:ATTR=VALUE;...")
	}
	if len(spec) > maxPKCS11URI {
		return nil, p11Error("longer than %d bytes", maxPKCS11URI)
	}
	path, query, _ := strings.Cut(rest, "?")
	u := &pkcs11URI{}
	seen := map[string]bool{}
	for _, part := range splitNonEmpty(path, ";") {
		name, value, err := p11Attr(part, seen)
		if err != nil {
			return nil, err
		}
		switch name {
		case p11Token:
			u.token = value
		case p11Serial:
			u.serial = value
		case p11SlotID:
			n, err := strconv.ParseUint(value, 10, 31)
			if err != nil {
				return nil, p11Error("slot-id is not a decimal number")
			}
			slot := int(n)
			u.slotID = &slot
		case p11Object:
			u.object = value
		case p11ID:
			u.id = []byte(value)
		case p11Type:
			if value != "secret-key" {
				return nil, p11Error("type must be secret-key: the master key is an AES key")
			}
		default:
			return nil, p11Error("unsupported path attribute %q (pgseal reads token, serial, slot-id, object, id and type)", name)
		}
	}
	for _, part := range splitNonEmpty(query, "&") {
		name, value, err := p11Attr(part, seen)
		if err != nil {
			return nil, err
		}
		switch name {
		case p11ModulePath:
			u.modulePath = value
		case p11PINSource:
			file, ok := strings.CutPrefix(value, "file:")
			if !ok {
				file = value
			}
			if !filepath.IsAbs(file) {
				return nil, p11Error("pin-source must be file:/ABSOLUTE/PATH")
			}
			u.pinFile = file
		case p11PINValue:
			return nil, p11Error("pin-value is refused: put the PIN in a file named by pin-source, or in %s", PKCS11PINEnv)
		case p11ModuleName:
			return nil, p11Error("module-name is not supported: name the module's file with module-path")
		default:
			return nil, p11Error("unsupported query attribute %q (pgseal reads module-path and pin-source)", name)
		}
	}
	selectors := 0
	for _, set := range []bool{u.token != "", u.serial != "", u.slotID != nil} {
		if set {
			selectors++
		}
	}
	switch {
	case selectors != 1:
		return nil, p11Error("name the token with exactly one of token, serial or slot-id")
	case u.object == "" && len(u.id) == 0:
		return nil, p11Error("name the master key with object (its label), id, or both")
	case u.modulePath == "":
		return nil, p11Error("module-path is required (the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so)")
	case !filepath.IsAbs(u.modulePath):
		return nil, p11Error("module-path must be absolute")
	}
	return u, nil
}

func splitNonEmpty(s, sep string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, sep)
}

// p11Attr splits and unescapes one name=value attribute.
func p11Attr(part string, seen map[string]bool) (name, value string, err error) {
	name, raw, ok := strings.Cut(part, "=")
	if !ok || name == "" {
		return "", "", p11Error("attribute without a name=value form")
	}
	if seen[name] {
		return "", "", p11Error("attribute %q appears twice", name)
	}
	seen[name] = true
	value, err = url.PathUnescape(raw)
	if err != nil {
		return "", "", p11Error("attribute %q has a bad percent-encoding", name)
	}
	if value == "" {
		return "", "", p11Error("attribute %q is empty", name)
	}
	return name, value, nil
}

// String writes the URI back in a canonical form. It holds no secret: the
// PIN is never part of it.
func (u *pkcs11URI) String() string {
	var path []string
	switch {
	case u.token != "":
		path = append(path, p11Token+"="+p11Escape(u.token, false))
	case u.serial != "":
		path = append(path, p11Serial+"="+p11Escape(u.serial, false))
	case u.slotID != nil:
		path = append(path, p11SlotID+"="+strconv.Itoa(*u.slotID))
	}
	if u.object != "" {
		path = append(path, p11Object+"="+p11Escape(u.object, false))
	}
	if len(u.id) > 0 {
		path = append(path, p11ID+"="+p11Escape(string(u.id), false))
	}
	query := []string{p11ModulePath + "=" + p11Escape(u.modulePath, true)}
	if u.pinFile != "" {
		query = append(query, p11PINSource+"=file:"+p11Escape(u.pinFile, true))
	}
	return "pkcs11:" + strings.Join(path, ";") + "?" + strings.Join(query, "&")
}

// describe names the token and key for messages: `token "pgseal" key "master"`.
func (u *pkcs11URI) describe() string {
	var b strings.Builder
	switch {
	case u.token != "":
		fmt.Fprintf(&b, "token %q", u.token)
	case u.serial != "":
		fmt.Fprintf(&b, "token with serial %q", u.serial)
	default:
		fmt.Fprintf(&b, "token in slot %d", *u.slotID)
	}
	if u.object != "" {
		fmt.Fprintf(&b, " key %q", u.object)
	}
	if len(u.id) > 0 {
		fmt.Fprintf(&b, " key id %x", u.id)
	}
	return b.String()
}

// p11Escape percent-encodes everything but RFC 3986 unreserved characters,
// and in query values also '/' and ':', which paths need.
func p11Escape(s string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		case query && (c == '/' || c == ':'):
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
