// Package certs makes throwaway X.509 material for tests and for
// `pgseal dev`: a certificate authority and leaf certificates signed by it.
//
// Start with NewCA, then call (*CA).Issue for each server or client that
// needs a certificate. Pool gives the trust anchor for a tls.Config,
// TLSCertificate gives the leaf in the form crypto/tls wants, and WriteFiles
// puts PEM files on disk (keys with mode 0600, written atomically) for
// programs such as PostgreSQL that read them from files.
//
// All keys are ECDSA P-256: every TLS stack pgseal meets (Go, OpenSSL in
// libpq and PostgreSQL, Java, .NET) supports it, and keys are generated in
// microseconds, which keeps test start-up fast.
//
// It does not manage production certificates: there is no revocation, no
// renewal, no intermediate CA, and private keys live in memory unprotected.
package certs
