#!/usr/bin/env bash
# pgx-suite.sh runs pgx's own test suite (`go test ./...` of the
# github.com/jackc/pgx/v5 version in go.mod) twice against one throwaway
# database: once directly, once through pgseal (TLS verify-full on both
# hops). It prints pass/fail/skip counts for both runs and every test whose
# outcome differs, and exits 1 when any does.
#
# The database is prepared as pgx's CI prepares its own (testsetup/ in pgx's
# source): database pgx_test, extensions hstore and ltree, domain uint64, the
# pgx_* roles with their pg_hba methods. Both runs get the same PGX_TEST_*
# variables, differing only in host, port and CA:
#   PGX_TEST_DATABASE, PGX_TEST_TCP_CONN_STRING, PGX_TEST_MD5_PASSWORD_CONN_STRING
#                         pgx_md5 (md5)
#   PGX_TEST_PLAIN_PASSWORD_CONN_STRING   pgx_pw (password)
#   PGX_TEST_SCRAM_PASSWORD_CONN_STRING   pgx_scram (scram-sha-256)
#   PGX_TEST_TLS_CONN_STRING              pgx_ssl (hostssl, scram-sha-256)
# A few pgx tests dial without TLS on purpose (they wrap the raw socket).
# The database accepts such clients, so pgseal runs with --tls-require=false
# to apply the same policy; everything else still uses TLS on both hops.
# Left unset, so those tests skip in both runs: the Unix-socket, client-
# certificate and SCRAM-SHA-256-PLUS strings (none can cross a TCP, TLS-
# terminating proxy: pgseal withdraws channel binding by design), PgBouncer,
# CrateDB and OAuth.
#
# Environment: PGX_SUITE_TIMEOUT (go test -timeout per run, default 8m),
# PGX_SUITE_P (go test -p, default 2), PGX_SUITE_RUN (go test -run filter),
# PGX_SUITE_RERUNS (reruns of a test whose outcome differs, default 3),
# PGSEAL_BIN (a pgseal binary to use instead of building ./cmd/pgseal),
# PGX_SUITE_KEEP=1 keeps the work directory (JSON results) for inspection.
set -euo pipefail
export LC_ALL=C # sort and join must agree on the order

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/lib/stack.sh

timeout="${PGX_SUITE_TIMEOUT:-8m}"
par="${PGX_SUITE_P:-2}"
run_filter="${PGX_SUITE_RUN:-}"

pgx_version="$(go list -m -f '{{.Version}}' github.com/jackc/pgx/v5)"
go mod download github.com/jackc/pgx/v5 >/dev/null
pgx_src="$(go list -m -f '{{.Dir}}' github.com/jackc/pgx/v5)"

work="$(mktemp -d -t pgx-suite-XXXXXX)"
stack_pid=""
cleanup() {
	if [ -n "$stack_pid" ]; then
		kill -TERM "$stack_pid" 2>/dev/null || true
		wait "$stack_pid" 2>/dev/null || true
	fi
	if [ "${PGX_SUITE_KEEP:-}" = 1 ]; then
		echo "pgx-suite: kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "pgx-suite: pgx $pgx_version, work directory $work" >&2
cp -r "$pgx_src" "$work/pgx"
chmod -R u+w "$work/pgx"

build_stack_bins

# Start the cluster and pgseal; read their coordinates from the stack's
# standard output up to its ready marker.
start_stack pgx-suite -pgseal "$pgseal_bin" -db pgx_test \
	-hba 'host all pgx_md5 127.0.0.1/32 md5' \
	-hba 'host all pgx_scram 127.0.0.1/32 scram-sha-256' \
	-hba 'host all pgx_pw 127.0.0.1/32 password' \
	-hba 'hostssl all pgx_ssl 127.0.0.1/32 scram-sha-256' \
	-- --tls-require=false

# The database as pgx's CI prepares it.
(cd "$work/pgx/testsetup" &&
	psql -X -q -v ON_ERROR_STOP=1 "$STACK_PG_CONNINFO dbname=pgx_test" -f postgresql_setup.sql >/dev/null)

# conn HOST PORT CA USER [extra...]: a keyword/value string, TLS verified.
conn() {
	local host=$1 port=$2 ca=$3 user=$4
	shift 4
	echo "host=$host port=$port user=$user password=secret dbname=pgx_test sslmode=verify-full sslrootcert='$ca'${*:+ $*}"
}

# target NAME: "HOST PORT CA" of the direct or the pgseal run.
target() {
	case "$1" in
	direct) echo "$STACK_PG_HOST $STACK_PG_PORT $STACK_PG_CA_FILE" ;;
	pgseal) echo "$STACK_PROXY_HOST $STACK_PROXY_PORT $STACK_FRONT_CA_FILE" ;;
	esac
}

# run_suite TARGET OUT [go test args...]: one go test -json run against
# TARGET, events to OUT.json.
run_suite() {
	local name=$1 out=$2 host port ca start
	shift 2
	read -r host port ca <<<"$(target "$name")"
	start=$(date +%s)
	(
		cd "$work/pgx"
		export GOWORK=off GOFLAGS=-mod=mod
		export PGX_TEST_DATABASE="$(conn "$host" "$port" "$ca" pgx_md5)"
		export PGX_TEST_TCP_CONN_STRING="$PGX_TEST_DATABASE"
		export PGX_TEST_MD5_PASSWORD_CONN_STRING="$PGX_TEST_DATABASE"
		export PGX_TEST_PLAIN_PASSWORD_CONN_STRING="$(conn "$host" "$port" "$ca" pgx_pw)"
		export PGX_TEST_SCRAM_PASSWORD_CONN_STRING="$(conn "$host" "$port" "$ca" pgx_scram)"
		export PGX_TEST_TLS_CONN_STRING="$(conn "$host" "$port" "$ca" pgx_ssl)"
		unset PGX_TEST_UNIX_SOCKET_CONN_STRING PGX_TEST_TLS_CLIENT_CONN_STRING \
			PGX_TEST_SCRAM_PLUS_CONN_STRING PGX_TEST_PGBOUNCER_CONN_STRING \
			PGX_TEST_CRATEDB_CONN_STRING PGX_TEST_OAUTH PGX_SSL_PASSWORD
		go test -json -p "$par" -timeout "$timeout" "$@" >"$work/$out.json" 2>"$work/$out.stderr" || true
	)
	echo "pgx-suite: $out: $(($(date +%s) - start))s" >&2
}

# outcomes FILE: "package|test outcome" for every test and subtest, plus
# "package|- fail" for a package that failed with no failing test (build
# error, panic or timeout outside a test). Long digit runs (temporary
# directory names in subtest names) become N so that runs line up.
outcomes() {
	jq -r 'select(.Action == "pass" or .Action == "fail" or .Action == "skip")
		| "\(.Package)|\(.Test // "-") \(.Action)"' "$1" |
		sed -E 's/[0-9]{6,}/N/g' | sort -u |
		awk '{ split($1, k, "|"); if (k[2] == "-") { if ($2 == "fail") pkgfail[k[1]] = 1; next }
		       if ($2 == "fail") testfail[k[1]] = 1; print }
		     END { for (p in pkgfail) if (!(p in testfail)) print p "|- fail" }' | sort
}

count() { awk -v a="$2" '$1 !~ /\|-$/ && $2 == a' "$1" | wc -l; }

# Build the test binaries once, outside the timed runs.
(cd "$work/pgx" && GOWORK=off GOFLAGS=-mod=mod go test -count=1 -run '^$' ./... >/dev/null)

for name in direct pgseal; do
	echo "pgx-suite: running pgx's tests $name ($(target "$name" | cut -d' ' -f1,2 | tr ' ' :))..." >&2
	run_suite "$name" "$name" -count=1 ${run_filter:+-run "$run_filter"} ./...
	outcomes "$work/$name.json" >"$work/$name.out"
done

printf '\n%-8s %8s %8s %8s\n' run passed failed skipped
for name in direct pgseal; do
	printf '%-8s %8d %8d %8d\n' "$name" \
		"$(count "$work/$name.out" pass)" "$(count "$work/$name.out" fail)" "$(count "$work/$name.out" skip)"
done
for name in direct pgseal; do
	if grep -q '|- fail$' "$work/$name.out"; then
		echo "pgx-suite: $name: packages failed outside any test:" $(awk -F'|' '$2 == "- fail" {print $1}' "$work/$name.out")
	fi
done

# Tests whose outcome differs, including ones that ran in one run only.
join -a1 -a2 -e missing -o 0,1.2,2.2 "$work/direct.out" "$work/pgseal.out" |
	awk '$2 != $3' >"$work/diff.out"
if [ ! -s "$work/diff.out" ]; then
	echo
	echo "pgx-suite: every test has the same outcome directly and through pgseal"
	exit 0
fi
echo
echo "tests whose outcome differs (direct -> pgseal):"
sed 's/^github.com\/jackc\/pgx\/v5/pgx/; s/|/ /' "$work/diff.out" | awk '{printf "  %s %s: %s -> %s\n", $1, $2, $3, $4}'

# A difference counts only if it repeats: some pgx tests are stress tests
# with millisecond deadlines that now and then fail on a busy machine,
# directly as well as through pgseal. Rerun each top-level test involved
# RERUNS times both ways.
reruns="${PGX_SUITE_RERUNS:-3}"
echo
echo "rerunning each test involved $reruns times both ways:"
confirmed=0
if grep -q '|- ' "$work/diff.out"; then
	confirmed=1 # a package failed outside its tests in one run only
fi
while read -r pkg top; do
	dir=".${pkg#github.com/jackc/pgx/v5}"
	for name in direct pgseal; do
		run_suite "$name" "rerun-$name" -count="$reruns" -run "^${top}\$" "$dir" 2>/dev/null
	done
	fails() {
		jq -r --arg t "$top" 'select(.Test == $t and (.Action == "pass" or .Action == "fail")) | .Action' \
			"$work/rerun-$1.json" | grep -c fail || true
	}
	runs() {
		jq -r --arg t "$top" 'select(.Test == $t and (.Action == "pass" or .Action == "fail")) | .Action' \
			"$work/rerun-$1.json" | wc -l
	}
	df=$(fails direct) dn=$(runs direct) pf=$(fails pgseal) pn=$(runs pgseal)
	verdict="same on rerun"
	if [ "$df" -eq 0 ] && [ "$pf" -gt 0 ]; then
		verdict="FAILS THROUGH PGSEAL ONLY"
		confirmed=1
	elif [ "$df" -gt 0 ] && [ "$pf" -eq 0 ]; then
		verdict="FAILS DIRECTLY ONLY"
		confirmed=1
	elif [ "$df" -gt 0 ]; then
		verdict="fails both ways: timing-sensitive"
	fi
	printf '  %s %s: direct %d/%d failed, pgseal %d/%d failed: %s\n' \
		"${pkg#github.com/jackc/pgx/}" "$top" "$df" "$dn" "$pf" "$pn" "$verdict"
done < <(awk '{split($1, k, "|"); split(k[2], t, "/"); if (t[1] != "-") print k[1], t[1]}' "$work/diff.out" | sort -u)

echo
if [ "$confirmed" -ne 0 ]; then
	echo "pgx-suite: outcomes differ between direct and pgseal"
	exit 1
fi
echo "pgx-suite: the differences did not repeat: same outcomes directly and through pgseal"
