// Package examples holds the example schema and policy that `pgseal dev`
// loads, embedded so the binary needs no files beside it.
package examples

import _ "embed"

// Schema is the example schema (schema.sql).
//
//go:embed schema.sql
var Schema string

// Policy is the example policy (policy.yaml).
//
//go:embed policy.yaml
var Policy []byte
