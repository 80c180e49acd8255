package datapath

import (
	"slices"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// Refresher is an optional interface of Ciphers whose keys can be reloaded.
// When a stored value names a version of its column's key set that the
// column's cipher does not hold (another replica may have rotated the key
// before this one saw the new keystore), the data path calls Refresh once
// and retries with the cipher it returns. Implementations decide whether a
// reload is worth trying (rate limits, versions known to be disabled) and
// return ok=false when not. Refresh must be safe for concurrent use.
type Refresher interface {
	Refresh(col *policy.Column, keySetID, version uint32) (c *envelope.ColumnCipher, ok bool)
}

// refreshed returns the cipher to retry env with after c failed to open it,
// or nil when a reload cannot help: the envelope names another key set, or
// a version c already holds, or ciphers cannot reload.
func refreshed(ciphers Ciphers, col *policy.Column, c *envelope.ColumnCipher, env []byte) *envelope.ColumnCipher {
	r, ok := ciphers.(Refresher)
	if !ok {
		return nil
	}
	h, err := envelope.Peek(env)
	if err != nil || h.KeySetID != c.Spec().KeySetID || slices.Contains(c.Versions(), h.KeyVersion) {
		return nil
	}
	nc, ok := r.Refresh(col, h.KeySetID, h.KeyVersion)
	if !ok {
		return nil
	}
	return nc
}
