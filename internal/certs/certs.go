package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

const (
	// DefaultCAValidity is how long a CA made by NewCA is valid.
	DefaultCAValidity = 365 * 24 * time.Hour
	// DefaultLeafValidity is how long a leaf is valid when LeafOptions.Validity
	// is zero.
	DefaultLeafValidity = 90 * 24 * time.Hour
	// backdate moves NotBefore into the past so that a peer whose clock is a
	// little behind still accepts a certificate issued a moment ago.
	backdate = time.Hour
)

// ErrNoSubject is returned by (*CA).Issue when LeafOptions names no DNS
// name, no IP address and no common name: such a certificate identifies
// nobody.
var ErrNoSubject = errors.New("certs: leaf needs a DNS name, an IP address or a common name")

// Usage says what a leaf certificate may be used for.
type Usage int

const (
	// UsageServer marks a TLS server certificate (extended key usage
	// serverAuth). It is the zero value.
	UsageServer Usage = iota
	// UsageClient marks a TLS client certificate (clientAuth).
	UsageClient
	// UsageServerAndClient allows both.
	UsageServerAndClient
)

// String returns "server", "client" or "server+client".
func (u Usage) String() string {
	switch u {
	case UsageServer:
		return "server"
	case UsageClient:
		return "client"
	case UsageServerAndClient:
		return "server+client"
	}
	return fmt.Sprintf("Usage(%d)", int(u))
}

func (u Usage) extKeyUsage() ([]x509.ExtKeyUsage, error) {
	switch u {
	case UsageServer:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, nil
	case UsageClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil
	case UsageServerAndClient:
		return []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, nil
	}
	return nil, fmt.Errorf("certs: unknown usage %d", int(u))
}

// LeafOptions describes a leaf certificate for (*CA).Issue.
type LeafOptions struct {
	// CommonName is the subject common name. For a client certificate used
	// with PostgreSQL's cert authentication it must be the role name.
	CommonName string
	// DNSNames and IPs become subject alternative names, which is what TLS
	// clients check a server's identity against.
	DNSNames []string
	IPs      []net.IP
	// Usage is UsageServer when left zero.
	Usage Usage
	// Validity is DefaultLeafValidity when zero. The leaf never outlives its
	// CA: NotAfter is clipped to the CA's.
	Validity time.Duration
}

// CA is a throwaway certificate authority. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// Leaf is a certificate issued by a CA together with its private key. It is
// safe for concurrent use.
type Leaf struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewCA creates a self-signed CA named commonName, valid for
// DefaultCAValidity.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(DefaultCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// MaxPathLenZero: this CA signs leaves only.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("failed to create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse CA certificate: %w", err)
	}
	return &CA{cert: cert, key: key, certPEM: encodeCert(der)}, nil
}

// Issue creates a leaf certificate signed by the CA.
func (ca *CA) Issue(opts LeafOptions) (*Leaf, error) {
	if opts.CommonName == "" && len(opts.DNSNames) == 0 && len(opts.IPs) == 0 {
		return nil, ErrNoSubject
	}
	eku, err := opts.Usage.extKeyUsage()
	if err != nil {
		return nil, err
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultLeafValidity
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate leaf key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: opts.CommonName},
		DNSNames:              append([]string(nil), opts.DNSNames...),
		IPAddresses:           cloneIPs(opts.IPs),
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("failed to create leaf certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to parse leaf certificate: %w", err)
	}
	return &Leaf{cert: cert, key: key, certPEM: encodeCert(der)}, nil
}

// Certificate returns the CA certificate. The caller must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// PrivateKey returns the CA's private key.
func (ca *CA) PrivateKey() crypto.Signer { return ca.key }

// CertPEM returns the CA certificate in PEM form. The caller owns the
// returned slice.
func (ca *CA) CertPEM() []byte { return clone(ca.certPEM) }

// KeyPEM returns the CA private key as a PEM "PRIVATE KEY" (PKCS #8) block.
// The caller owns the returned slice and should wipe it when done.
func (ca *CA) KeyPEM() ([]byte, error) { return encodeKey(ca.key) }

// Pool returns a new certificate pool holding only this CA, for
// tls.Config.RootCAs or ClientCAs. The caller owns the pool.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// WriteFiles writes the CA certificate to dir/base.crt (mode 0644) and its
// key to dir/base.key (mode 0600), each atomically, and returns both paths.
func (ca *CA) WriteFiles(dir, base string) (certPath, keyPath string, err error) {
	return writePair(dir, base, ca.certPEM, ca.key)
}

// String describes the CA without its key.
func (ca *CA) String() string {
	return fmt.Sprintf("certs.CA{CN=%q, serial=%x}", ca.cert.Subject.CommonName, ca.cert.SerialNumber)
}

// Certificate returns the leaf certificate. The caller must not modify it.
func (l *Leaf) Certificate() *x509.Certificate { return l.cert }

// PrivateKey returns the leaf's private key.
func (l *Leaf) PrivateKey() crypto.Signer { return l.key }

// CertPEM returns the leaf certificate in PEM form. The caller owns the
// returned slice.
func (l *Leaf) CertPEM() []byte { return clone(l.certPEM) }

// KeyPEM returns the leaf private key as a PEM "PRIVATE KEY" (PKCS #8) block.
// The caller owns the returned slice and should wipe it when done.
func (l *Leaf) KeyPEM() ([]byte, error) { return encodeKey(l.key) }

// TLSCertificate returns the leaf and its key for tls.Config.Certificates
// or GetClientCertificate. The chain holds the leaf only: peers are
// expected to trust the CA directly.
func (l *Leaf) TLSCertificate() tls.Certificate {
	return tls.Certificate{
		Certificate: [][]byte{clone(l.cert.Raw)},
		PrivateKey:  l.key,
		Leaf:        l.cert,
	}
}

// WriteFiles writes the leaf certificate to dir/base.crt (mode 0644) and its
// key to dir/base.key (mode 0600), each atomically, and returns both paths.
func (l *Leaf) WriteFiles(dir, base string) (certPath, keyPath string, err error) {
	return writePair(dir, base, l.certPEM, l.key)
}

// String describes the leaf without its key.
func (l *Leaf) String() string {
	return fmt.Sprintf("certs.Leaf{CN=%q, DNS=%v, IP=%v, serial=%x}",
		l.cert.Subject.CommonName, l.cert.DNSNames, l.cert.IPAddresses, l.cert.SerialNumber)
}

// newSerial returns a random positive 128-bit serial number; RFC 5280 allows
// up to 20 octets and random serials keep two throwaway CAs from colliding.
func newSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("failed to generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("failed to marshal private key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	return out, nil
}

func cloneIPs(ips []net.IP) []net.IP {
	if len(ips) == 0 {
		return nil
	}
	out := make([]net.IP, len(ips))
	for i, ip := range ips {
		out[i] = clone(ip)
	}
	return out
}

func clone[S ~[]E, E any](s S) S {
	if s == nil {
		return nil
	}
	return append(S(nil), s...)
}
