package datapath

import (
	"sync"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
)

// KeystoreCiphers builds column ciphers from a keystore, once per column,
// and keeps them. It is safe for concurrent use; a keystore reload builds a
// new one.
type KeystoreCiphers struct {
	ks *keystore.Keystore
	m  sync.Map // *policy.Column → *envelope.ColumnCipher
}

// NewKeystoreCiphers returns ciphers drawn from ks.
func NewKeystoreCiphers(ks *keystore.Keystore) *KeystoreCiphers {
	return &KeystoreCiphers{ks: ks}
}

// Column implements Ciphers.
func (k *KeystoreCiphers) Column(col *policy.Column) (*envelope.ColumnCipher, error) {
	if c, ok := k.m.Load(col); ok {
		return c.(*envelope.ColumnCipher), nil
	}
	c, err := k.ks.Column(col.KeySet, ColumnTable(col), col.Name, EnvelopeMode(col.Mode))
	if err != nil {
		return nil, err
	}
	// Two sessions may build the same cipher at once; either copy works.
	actual, _ := k.m.LoadOrStore(col, c)
	return actual.(*envelope.ColumnCipher), nil
}

// ColumnTable is the table name that enters a column's associated data:
// schema and table as PostgreSQL stores them, joined by a dot, unquoted.
func ColumnTable(col *policy.Column) string { return col.Table.Schema + "." + col.Table.Name }

// EnvelopeMode maps a policy mode to the envelope mode.
func EnvelopeMode(m policy.Mode) envelope.Mode {
	if m == policy.Deterministic {
		return envelope.Deterministic
	}
	return envelope.Randomized
}
