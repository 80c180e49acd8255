package main

import (
	"crypto/tls"

	"github.com/pgseal/pgseal/internal/certs"
)

func tlsConfig(leaf *certs.Leaf) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12}
}
