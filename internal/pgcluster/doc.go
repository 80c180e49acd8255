// Package pgcluster starts throwaway PostgreSQL clusters from the system's
// server binaries, for tests and for `pgseal dev`.
//
// Tests call StartTB, which fails the test when no server is installed and
// closes the cluster when the test ends. Other callers use Start and must
// call (*Cluster).Close. A cluster listens on 127.0.0.1 on a free port,
// requires TLS-capable clients to verify its certificate against a
// throwaway CA (CACertFile, CAPool), accepts both TLS and plain TCP
// connections, and authenticates its superuser with SCRAM-SHA-256.
// CreateRole adds roles that log in with trust, cleartext password, MD5 or
// SCRAM, so the proxy's authentication relay can be tested against each.
//
// The cluster trades durability for speed (fsync=off, wal_level=minimal,
// no autovacuum): it is for data nobody needs tomorrow.
//
// When the calling process runs as root, initdb and postgres run as the
// unprivileged "postgres" OS user, because PostgreSQL refuses to run as
// root; the cluster directory is handed to that user.
//
// The postmaster is a child of the calling process in its own process group
// and gets SIGQUIT (immediate shutdown) if the caller dies, so no server
// outlives a crashed `go test`. The cluster directory (under os.TempDir,
// named pgcluster-*) does survive such a crash and may be deleted by hand.
// Linux delivers that signal when the OS thread that started the server
// exits, which Go only does for a goroutine that exits while locked to its
// thread: do not call Start from such a goroutine.
//
// It does not manage long-lived or production databases, replication, or
// servers on other hosts.
package pgcluster
