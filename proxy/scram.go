package proxy

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// SCRAM mechanism names (RFC 7677, RFC 5802).
const (
	mechSCRAM     = "SCRAM-SHA-256"
	mechSCRAMPlus = "SCRAM-SHA-256-PLUS"
)

// errServerSignature is returned when the server's final SCRAM message does
// not prove it knows the password's verifier.
var errServerSignature = errors.New("SCRAM server signature does not match")

// scramClient is the client side of one SCRAM-SHA-256 exchange, used when
// pgseal authenticates to PostgreSQL with a password it received from the
// client (AuthPassword mode).
type scramClient struct {
	password    []byte
	mechanism   string
	gs2         string
	cbData      []byte
	nonce       string
	firstBare   string
	authMessage string
	salted      []byte
}

// newSCRAMClient prepares an exchange. It uses SCRAM-SHA-256-PLUS with
// tls-server-end-point channel binding when the server offers it and the
// upstream connection is TLS.
func newSCRAMClient(password string, offered []string, state *tls.ConnectionState) (*scramClient, error) {
	c := &scramClient{password: []byte(password)}
	plus, plain := false, false
	for _, m := range offered {
		switch m {
		case mechSCRAMPlus:
			plus = true
		case mechSCRAM:
			plain = true
		}
	}
	switch {
	case plus && state != nil && len(state.PeerCertificates) > 0:
		cb, err := tlsServerEndPoint(state.PeerCertificates[0])
		if err != nil {
			return nil, err
		}
		c.mechanism, c.gs2, c.cbData = mechSCRAMPlus, "p=tls-server-end-point,,", cb
	case plain:
		c.mechanism, c.gs2 = mechSCRAM, "n,,"
	default:
		return nil, fmt.Errorf("server offers no SASL mechanism pgseal supports (%s)", strings.Join(offered, ", "))
	}
	raw := make([]byte, 18)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	c.nonce = base64.StdEncoding.EncodeToString(raw)
	c.firstBare = "n=,r=" + c.nonce
	return c, nil
}

// first returns the client-first-message.
func (c *scramClient) first() []byte { return []byte(c.gs2 + c.firstBare) }

// final consumes the server-first-message and returns the
// client-final-message.
func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	attrs := parseSCRAMAttrs(string(serverFirst))
	nonce, saltB64, iterStr := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, errors.New("invalid SCRAM server nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("invalid SCRAM salt")
	}
	iter, err := strconv.Atoi(iterStr)
	if err != nil || iter < 1 || iter > 10_000_000 {
		return nil, errors.New("invalid SCRAM iteration count")
	}
	c.salted, err = pbkdf2.Key(sha256.New, string(c.password), salt, iter, 32)
	if err != nil {
		return nil, err
	}
	clientKey := hmacSHA256(c.salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	cbind := base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...))
	withoutProof := "c=" + cbind + ",r=" + nonce
	c.authMessage = c.firstBare + "," + string(serverFirst) + "," + withoutProof
	sig := hmacSHA256(storedKey[:], c.authMessage)
	proof := make([]byte, len(clientKey))
	subtle.XORBytes(proof, clientKey, sig)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server-final-message.
func (c *scramClient) verify(serverFinal []byte) error {
	attrs := parseSCRAMAttrs(string(serverFinal))
	if e, ok := attrs["e"]; ok {
		return fmt.Errorf("SCRAM server error: %s", e)
	}
	got, err := base64.StdEncoding.DecodeString(attrs["v"])
	if err != nil {
		return errServerSignature
	}
	want := hmacSHA256(hmacSHA256(c.salted, "Server Key"), c.authMessage)
	if !hmac.Equal(got, want) {
		return errServerSignature
	}
	return nil
}

func parseSCRAMAttrs(s string) map[string]string {
	m := make(map[string]string)
	for _, part := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(part, "="); ok && len(k) == 1 {
			m[k] = v
		}
	}
	return m
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// tlsServerEndPoint computes RFC 5929 tls-server-end-point channel-binding
// data: the certificate hashed with its signature's hash, SHA-256 standing
// in for MD5 and SHA-1.
func tlsServerEndPoint(cert *x509.Certificate) ([]byte, error) {
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		h = sha512.New()
	case x509.PureEd25519:
		return nil, errors.New("channel binding is undefined for Ed25519 certificates")
	default:
		h = sha256.New()
	}
	h.Write(cert.Raw)
	return h.Sum(nil), nil
}

// md5Response computes PostgreSQL's MD5 password response:
// "md5" + md5(md5(password + user) + salt), in hex.
func md5Response(user, password string, salt [4]byte) string {
	inner := md5.Sum([]byte(password + user))
	innerHex := hex.EncodeToString(inner[:])
	outer := md5.Sum(append([]byte(innerHex), salt[:]...))
	return "md5" + hex.EncodeToString(outer[:])
}
