// Command stack starts a throwaway PostgreSQL cluster with pgseal in front of
// it, prints how to reach both as shell assignments, and runs until SIGTERM
// or SIGINT, when it stops pgseal and removes the cluster. Benchmark and
// compatibility scripts (scripts/pgx-suite.sh, scripts/bench-proxy.sh) use it
// so that none of them has to know how a cluster or pgseal is set up.
//
// Usage:
//
//	stack [-pgseal BIN] [-setting name=value]... [-hba LINE]... [-db NAME]... [-- serve-flags...]
//
// With -pgseal, BIN is a built pgseal binary; stack runs `BIN serve` as
// production does, TLS on both hops (clients verify pgseal's certificate,
// pgseal verifies the server's with sslmode=verify-full), and passes any
// arguments after `--` on to serve. Without -pgseal only the cluster runs.
//
// Standard output carries only assignments of the form NAME='value', one a
// line, safe to eval in a POSIX shell, followed by the line "# ready" once
// every component accepts connections; nothing is written to it after that,
// so a reader may close it. Logs, including pgseal's, go to standard error.
// Arguments after `--` must leave pgseal's log at info or debug, in JSON,
// since stack waits for its ready line, and may not set --listen.
//
// The variables are:
//
//	STACK_DIR             directory of the files below (removed on exit)
//	STACK_PG_HOST, STACK_PG_PORT, STACK_PG_USER, STACK_PG_PASSWORD
//	                      the cluster and its superuser (SCRAM-SHA-256)
//	STACK_PG_CA_FILE      CA of the cluster's certificate (sslrootcert)
//	STACK_PG_BIN_DIR, STACK_PG_SOCKET_DIR, STACK_PG_DATA_DIR
//	STACK_PG_CONNINFO     superuser, database postgres, TLS verify-full
//	STACK_FRONT_CA_FILE   CA of the client-facing certificate below
//	STACK_FRONT_CERT_FILE, STACK_FRONT_KEY_FILE
//	                      certificate for localhost and 127.0.0.1 that pgseal
//	                      presents to clients; other front ends (PgBouncer)
//	                      may present it too
//	STACK_PROXY_HOST, STACK_PROXY_PORT
//	                      where pgseal listens (with -pgseal only)
//	STACK_PROXY_CONNINFO  superuser through pgseal, TLS verify-full
//
// The superuser's password is random per run and printed on purpose: the
// cluster is a throwaway that lives as long as the process. Should stack be
// killed outright, the postmaster and pgseal still get a signal from the
// kernel (parent-death signal); only the cluster directory may remain in
// the temporary directory.
//
// stack is a development tool: it is not built into pgseal and is not for
// long-lived databases.
package main
