package pgcluster

import (
	"context"
	"testing"
)

// StartTB starts a cluster for a test or benchmark and closes it when tb
// ends, failing tb (never skipping) if the cluster cannot start, including
// when no server is installed: `make test` installs one.
func StartTB(tb testing.TB, opts ...Option) *Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := Start(ctx, opts...)
	if err != nil {
		tb.Fatalf("failed to start cluster: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("failed to close %v: %v", c, err)
		}
	})
	return c
}
