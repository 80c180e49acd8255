package pgcluster

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkStart measures a cold start (initdb, certificates, server start,
// first TLS + SCRAM login) and a restart of the same cluster.
func BenchmarkStart(b *testing.B) {
	ctx := context.Background()
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			c, err := Start(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("restart", func(b *testing.B) {
		c := StartTB(b)
		for b.Loop() {
			if err := c.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			if err := c.Start(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("create role", func(b *testing.B) {
		c := StartTB(b)
		i := 0
		for b.Loop() {
			i++
			if err := c.CreateRole(ctx, "role_"+strconv.Itoa(i), "pw", AuthMD5); err != nil {
				b.Fatal(err)
			}
		}
	})
}
