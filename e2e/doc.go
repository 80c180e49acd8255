// Package e2e holds pgseal's end-to-end tests: a throwaway PostgreSQL
// cluster, pgseal in front of it with TLS on both hops, and real clients
// talking through it — pgx, lib/pq, psql (libpq) and pgbench from Go, and,
// through scripts under drivers/, node-postgres, psycopg2, psycopg 3,
// asyncpg and pgjdbc. It has no non-test code.
package e2e
