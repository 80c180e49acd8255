package proxy

import (
	"context"
	"fmt"
)

// Probe checks that the upstream accepts a connection as sessions make it
// (TCP, then TLS with the configured verification), and closes it before
// any startup message: PostgreSQL does not log a connection that ends
// there. Readiness checks use it.
func (u *Upstream) Probe(ctx context.Context) error {
	c, err := u.dial(ctx)
	if err != nil {
		return fmt.Errorf("failed to reach upstream %s: %w", u.display, err)
	}
	return c.Close()
}
