#!/usr/bin/env bash
# Installs what pgseal's tests need when it is missing: PostgreSQL server
# binaries (initdb, postgres), client tools (psql, pgbench), and SoftHSM2
# (the PKCS#11 module and softhsm2-util) for the HSM master-key tests.
# Idempotent.
set -euo pipefail

have_server() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
have_client() { command -v psql >/dev/null 2>&1 && command -v pgbench >/dev/null 2>&1; }
have_softhsm() { ls /usr/lib/softhsm/libsofthsm2.so >/dev/null 2>&1 && command -v softhsm2-util >/dev/null 2>&1; }

need=()
have_server || need+=(postgresql)
have_client || need+=(postgresql-client postgresql-contrib)
have_softhsm || need+=(softhsm2)
if [ "${#need[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need ${need[*]} but not root; install them and retry" >&2
		exit 1
	fi
	echo "install-deps: installing ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	# The Debian package starts a cluster of its own; the tests never use it.
	if command -v pg_ctlcluster >/dev/null 2>&1; then
		for c in $(pg_lsclusters -h 2>/dev/null | awk '{print $1"/"$2}'); do
			pg_ctlcluster "${c%/*}" "${c#*/}" stop >/dev/null 2>&1 || true
		done
	fi
fi
# When running as root, the throwaway clusters run as this user.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
	useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

# Client drivers for the end-to-end driver tests (e2e/drivers_test.go):
# psycopg2, psycopg 3 and asyncpg for Debian's python3, pgjdbc and a JDK,
# and node-postgres with pg-copy-streams from e2e/drivers/node's lockfile.
drivers_need=()
/usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1 || drivers_need+=(python3-psycopg2)
/usr/bin/python3 -c 'import psycopg' >/dev/null 2>&1 || drivers_need+=(python3-psycopg)
/usr/bin/python3 -c 'import asyncpg' >/dev/null 2>&1 || drivers_need+=(python3-asyncpg)
[ -f /usr/share/java/postgresql.jar ] || drivers_need+=(libpostgresql-jdbc-java)
{ command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1; } || drivers_need+=(default-jdk-headless)
command -v node >/dev/null 2>&1 || drivers_need+=(nodejs npm)
if [ "${#drivers_need[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: the driver tests need ${drivers_need[*]} but not root; they skip until installed" >&2
	else
		echo "install-deps: installing ${drivers_need[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${drivers_need[@]}" >/dev/null
	fi
fi
node_dir="$(cd "$(dirname "$0")/.." && pwd)/e2e/drivers/node"
if command -v npm >/dev/null 2>&1 && ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.pgseal-lock"; then
	echo "install-deps: npm ci in e2e/drivers/node" >&2
	(cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	cp "$node_dir/package-lock.json" "$node_dir/node_modules/.pgseal-lock"
fi
