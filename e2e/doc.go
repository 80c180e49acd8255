// Package e2e holds pgseal's end-to-end tests: a throwaway PostgreSQL
// cluster, pgseal in front of it with TLS on both hops, and real clients
// (pgx, lib/pq, psql, pgbench) talking through it. It has no non-test code.
package e2e
