#!/usr/bin/env bash
# bench-proxy.sh compares pgbench -S throughput against PostgreSQL directly,
# through pgseal and through PgBouncer (session mode), in one run, on one
# throwaway cluster, and prints TPS side by side with the ratios.
#
# Every path uses TLS with certificate verification and SCRAM-SHA-256:
#   direct     pgbench ──TLS──▶ PostgreSQL
#   pgseal     pgbench ──TLS──▶ pgseal serve ──TLS verify-full──▶ PostgreSQL
#   pgbouncer  pgbench ──TLS──▶ PgBouncer ──TLS verify-full──▶ PostgreSQL
# pgseal runs as `pgseal serve` runs in production (info-level JSON log);
# PgBouncer presents the same certificate as pgseal, pools in session mode
# and runs as the postgres user.
#
# Environment: BENCH_DURATION (seconds per run, default 15), BENCH_CLIENTS
# (default 8), BENCH_THREADS (default 2), BENCH_SCALE (default 10),
# BENCH_ROUNDS (runs of each target and mode, interleaved; the median TPS
# and the median of the per-round ratios are reported; default 1; on a
# shared machine use 3 or more), PGSEAL_BIN (a pgseal binary to use instead of
# building ./cmd/pgseal).
set -euo pipefail
export LC_ALL=C # numbers with a decimal point in printf and awk

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/lib/stack.sh

duration="${BENCH_DURATION:-15}"
clients="${BENCH_CLIENTS:-8}"
threads="${BENCH_THREADS:-2}"
scale="${BENCH_SCALE:-10}"
rounds="${BENCH_ROUNDS:-1}"

if ! command -v pgbouncer >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "bench-proxy: pgbouncer is missing and only root can install it" >&2
		exit 1
	fi
	echo "bench-proxy: installing pgbouncer" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
	# The package may start a system-wide PgBouncer; this script runs its own.
	if [ -x /etc/init.d/pgbouncer ]; then
		/etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
	fi
fi
scripts/install-deps.sh # PostgreSQL server and pgbench
if ! id postgres >/dev/null 2>&1; then
	echo "bench-proxy: PgBouncer must run as the postgres user, which does not exist" >&2
	exit 1
fi

work="$(mktemp -d -t bench-proxy-XXXXXX)"
stack_pid=""
bouncer_pid=""
cleanup() {
	local pid
	for pid in "$bouncer_pid" "$stack_pid"; do
		if [ -n "$pid" ]; then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

build_stack_bins

# The cluster and pgseal; their coordinates come on the stack's standard
# output, up to its ready marker.
start_stack bench-proxy -pgseal "$pgseal_bin" -db bench -setting shared_buffers=256MB

# PgBouncer: its own directory, readable only by the postgres user, who
# may traverse (not list) the work directory to reach it.
chmod 0711 "$work"
bdir="$work/pgbouncer"
install -d -m 0700 -o postgres -g postgres "$bdir"
install -m 0644 -o postgres -g postgres "$STACK_FRONT_CERT_FILE" "$bdir/client.crt"
install -m 0600 -o postgres -g postgres "$STACK_FRONT_KEY_FILE" "$bdir/client.key"
install -m 0644 -o postgres -g postgres "$STACK_PG_CA_FILE" "$bdir/server-ca.crt"
(umask 077 && printf '"%s" "%s"\n' "$STACK_PG_USER" "$STACK_PG_PASSWORD" >"$bdir/userlist.txt")
chown postgres:postgres "$bdir/userlist.txt"

# port_free PORT: nothing accepts connections on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_bouncer() {
	local port=$1
	cat >"$bdir/pgbouncer.ini" <<-EOF
		[databases]
		bench = host=$STACK_PG_HOST port=$STACK_PG_PORT dbname=bench

		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $port
		unix_socket_dir =
		pool_mode = session
		max_client_conn = 100
		default_pool_size = $((clients + 2))
		auth_type = scram-sha-256
		auth_file = $bdir/userlist.txt
		client_tls_sslmode = require
		client_tls_cert_file = $bdir/client.crt
		client_tls_key_file = $bdir/client.key
		server_tls_sslmode = verify-full
		server_tls_ca_file = $bdir/server-ca.crt
		ignore_startup_parameters = extra_float_digits
		logfile = $bdir/pgbouncer.log
		pidfile = $bdir/pgbouncer.pid
	EOF
	chown postgres:postgres "$bdir/pgbouncer.ini"
	setpriv --reuid=postgres --regid=postgres --init-groups pgbouncer -q "$bdir/pgbouncer.ini" &
	bouncer_pid=$!
}

# PgBouncer has no readiness signal: try to connect until it answers.
bouncer_conninfo=""
for attempt in 1 2 3 4 5; do
	port=$((20000 + RANDOM % 20000))
	port_free "$port" || continue
	start_bouncer "$port"
	conninfo="host=127.0.0.1 port=$port user=$STACK_PG_USER password=$STACK_PG_PASSWORD dbname=bench sslmode=verify-full sslrootcert=$STACK_FRONT_CA_FILE"
	for _ in $(seq 1 50); do
		if ! kill -0 "$bouncer_pid" 2>/dev/null; then
			break
		fi
		if psql -X -q -c 'select 1' "$conninfo" >/dev/null 2>&1; then
			bouncer_conninfo=$conninfo
			break
		fi
		sleep 0.2
	done
	[ -n "$bouncer_conninfo" ] && break
	kill -TERM "$bouncer_pid" 2>/dev/null || true
	wait "$bouncer_pid" 2>/dev/null || true
	bouncer_pid=""
done
if [ -z "$bouncer_conninfo" ]; then
	echo "bench-proxy: PgBouncer did not start:" >&2
	cat "$bdir/pgbouncer.log" >&2 2>/dev/null || true
	exit 1
fi

declare -A conninfo_of=(
	[direct]="$STACK_PG_CONNINFO dbname=bench"
	[pgseal]="$STACK_PROXY_CONNINFO dbname=bench"
	[pgbouncer]="$bouncer_conninfo"
)
for t in direct pgseal pgbouncer; do
	if ! psql -X -q -v ON_ERROR_STOP=1 -c 'select 1' "${conninfo_of[$t]}" >/dev/null; then
		echo "bench-proxy: cannot connect to $t" >&2
		exit 1
	fi
done

echo "bench-proxy: pgbench -i -s $scale" >&2
pgbench -i -q -s "$scale" "${conninfo_of[direct]}" >"$work/init.log" 2>&1 || {
	cat "$work/init.log" >&2
	exit 1
}

# run_bench TARGET MODE: the TPS of one pgbench -S run.
run_bench() {
	local out
	out=$(pgbench -n -S -M "$2" -c "$clients" -j "$threads" -T "$duration" "${conninfo_of[$1]}" 2>&1) || {
		echo "$out" >&2
		echo "bench-proxy: pgbench failed against $1 ($2)" >&2
		exit 1
	}
	if grep -q 'number of failed transactions: [1-9]' <<<"$out"; then
		echo "$out" >&2
		echo "bench-proxy: failed transactions against $1 ($2)" >&2
		exit 1
	fi
	local tps
	tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out")
	if [ -z "$tps" ]; then
		echo "$out" >&2
		echo "bench-proxy: no TPS in pgbench's output against $1 ($2); a busy machine needs a longer BENCH_DURATION" >&2
		exit 1
	fi
	echo "$tps"
}

declare -A samples
for round in $(seq 1 "$rounds"); do
	for mode in simple prepared; do
		for t in direct pgseal pgbouncer; do
			echo "bench-proxy: round $round/$rounds, $mode, $t (${duration}s)..." >&2
			tps=$(run_bench "$t" "$mode")
			samples[$mode,$t]="${samples[$mode,$t]:-} $tps"
		done
	done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
# ratios A B: the per-round ratios of two space-separated sample lists.
ratios() { awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " "); for (i = 1; i <= n; i++) printf " %.4f", x[i] / y[i] }'; }

echo
echo "pgbench -S, scale $scale, $clients clients, $threads threads, ${duration}s per run, $rounds round(s); TLS and SCRAM on every hop"
echo "TPS: median over rounds; ratios: median of the per-round ratios (runs of one round are closest in time)"
printf '%-9s %12s %12s %12s %15s %18s\n' mode direct pgseal pgbouncer pgseal/direct pgseal/pgbouncer
for mode in simple prepared; do
	d=${samples[$mode,direct]} s=${samples[$mode,pgseal]} b=${samples[$mode,pgbouncer]}
	printf '%-9s %12.0f %12.0f %12.0f %15.2f %18.2f\n' "$mode" \
		"$(median <<<"$d")" "$(median <<<"$s")" "$(median <<<"$b")" \
		"$(median <<<"$(ratios "$s" "$d")")" "$(median <<<"$(ratios "$s" "$b")")"
done
if [ "$rounds" -gt 1 ]; then
	echo
	echo "every run's TPS, in run order:"
	for mode in simple prepared; do
		for t in direct pgseal pgbouncer; do
			printf '  %-9s %-10s%s\n' "$mode" "$t" "${samples[$mode,$t]}"
		done
	done
fi
