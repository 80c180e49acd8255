package reload

import (
	"context"
	"errors"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
)

// ciphers are a snapshot's column ciphers: those of one keystore, plus the
// way back to the Reloader for a key version that keystore does not know.
type ciphers struct {
	*datapath.KeystoreCiphers
	r  *Reloader
	ks *keystore.Keystore
}

func newCiphers(r *Reloader, ks *keystore.Keystore) *ciphers {
	return &ciphers{KeystoreCiphers: datapath.NewKeystoreCiphers(ks), r: r, ks: ks}
}

// Refresh implements datapath.Refresher: it reloads the keystore when this
// keystore does not know the version, at most once per refresh interval,
// and returns col's cipher from the keystore then in force.
func (c *ciphers) Refresh(col *policy.Column, keySetID, version uint32) (*envelope.ColumnCipher, bool) {
	if !unknown(c.ks, keySetID, version) {
		return nil, false // a disabled version: a reload would not help
	}
	snap, ok := c.r.refresh(keySetID, version)
	if !ok {
		return nil, false
	}
	cc, err := snap.Ciphers.Column(col)
	if err != nil {
		return nil, false
	}
	return cc, true
}

// unknown reports whether ks has never heard of the key version.
func unknown(ks *keystore.Keystore, keySetID, version uint32) bool {
	_, err := ks.VersionState(keySetID, version)
	return errors.Is(err, keystore.ErrUnknownVersion) || errors.Is(err, keystore.ErrUnknownKeySet)
}

// refresh reloads the keystore for a version the caller's keystore does not
// know, and returns the snapshot in force if its keystore knows it.
func (r *Reloader) refresh(keySetID, version uint32) (*datapath.Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ks != nil && !unknown(r.ks, keySetID, version) {
		return r.snap.Load(), true // another value got it loaded meanwhile
	}
	now := r.opts.now()
	if !r.lastRefresh.IsZero() && now.Sub(r.lastRefresh) < r.opts.refreshInterval {
		return nil, false
	}
	r.lastRefresh = now
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.refreshTimeout)
	defer cancel()
	ks, ka := r.loadKeystore(ctx, true)
	_ = r.install(CauseUnknownVersion, nil, attempt{}, ks, ka)
	if r.ks == nil || unknown(r.ks, keySetID, version) {
		return nil, false
	}
	return r.snap.Load(), true
}

var _ datapath.Refresher = (*ciphers)(nil)
