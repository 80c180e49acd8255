package cli

import "strings"

// envReplacer maps configuration keys to environment variable suffixes:
// tls.client_ca → PGSEAL_TLS_CLIENT_CA.
var envReplacer = strings.NewReplacer(".", "_", "-", "_")
