package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/rewrite"
)

// loadSnapshot loads the policy and the keystore and checks that every key
// set the policy names exists. It is what serve loads at start and on
// reload.
func loadSnapshot(ctx context.Context, policyPath, keystorePath, masterKey string) (*datapath.Snapshot, error) {
	pol, err := policy.Load(policyPath)
	if err != nil {
		return nil, withCode(ExitConfig, err)
	}
	if keystorePath == "" || masterKey == "" {
		return nil, withCode(ExitConfig, errors.New("a policy needs keystore.path (--keystore) and keystore.master_key (--master-key)"))
	}
	src, err := keystore.ParseMasterKeySource(masterKey)
	if err != nil {
		return nil, withCode(ExitMasterKey, err)
	}
	ks, err := keystore.Open(ctx, keystorePath, src)
	if err != nil {
		return nil, keystoreExit(err)
	}
	if problems := pol.Validate(func(name string) bool { _, err := ks.KeySet(name); return err == nil }); len(problems) > 0 {
		return nil, withCode(ExitConfig, errors.Join(problems...))
	}
	return &datapath.Snapshot{
		Policy:   pol,
		Analyzer: datapath.RewriteAnalyzer{A: rewrite.New(pol)},
		Ciphers:  datapath.NewKeystoreCiphers(ks),
	}, nil
}

// keystoreExit attaches the exit code for a keystore error.
func keystoreExit(err error) error {
	switch {
	case errors.Is(err, keystore.ErrMasterKeySource), errors.Is(err, keystore.ErrInsecureKeyFile), errors.Is(err, keystore.ErrWeakPassphrase):
		return withCode(ExitMasterKey, err)
	default:
		return withCode(ExitKeystore, err)
	}
}

// newDataPath builds the data path for serve, or nil when no policy is set.
func newDataPath(ctx context.Context, cfg *serveConfig, log zerolog.Logger) (*datapath.DataPath, error) {
	if cfg.Policy == "" {
		return nil, nil
	}
	snap, err := loadSnapshot(ctx, cfg.Policy, cfg.KeystorePath, cfg.MasterKey)
	if err != nil {
		return nil, fmt.Errorf("failed to load policy and keys: %w", err)
	}
	return datapath.New(snap, datapath.WithLogger(log)), nil
}
