#!/usr/bin/env bash
# bench-reencrypt.sh measures `pgseal reencrypt` throughput on a table of
# BENCH_ROWS rows (default 1,000,000) with two encrypted columns (one
# deterministic, one randomized), once with no application workload and
# once under a pgbench workload through pgseal, and prints both rates side
# by side with their ratio.
#
# Setup, on a throwaway cluster with pgseal in front (internal/devtools/stack):
# a plaintext table filled with generate_series, brought under the policy
# with `pgseal encrypt-column --finish` for each column (its rates are
# printed too), then VACUUM FULL. Each run rotates the key set first (pgseal
# picks the keystore up by its file watch) and re-encrypts the whole table.
#
# The workload runs BENCH_CLIENTS pgbench clients through pgseal, throttled
# to BENCH_WORKLOAD_TPS transactions per second in total (an application,
# not a load test); each transaction reads one random row by primary key
# and rewrites its randomized column. Its achieved TPS during the run is
# printed beside the reencrypt figure.
#
# Environment: BENCH_ROWS (default 1000000), BENCH_BATCH (rows per page,
# default 1000), BENCH_WRITERS (default 2), BENCH_CLIENTS (default 4),
# BENCH_WORKLOAD_TPS (default 500), PGSEAL_BIN (a pgseal binary to use
# instead of building ./cmd/pgseal).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/lib/stack.sh

rows="${BENCH_ROWS:-1000000}"
batch="${BENCH_BATCH:-1000}"
writers="${BENCH_WRITERS:-2}"
clients="${BENCH_CLIENTS:-4}"
workload_tps="${BENCH_WORKLOAD_TPS:-500}"

scripts/install-deps.sh # PostgreSQL server, psql and pgbench

work="$(mktemp -d -t bench-reencrypt-XXXXXX)"
stack_pid=""
bench_pid=""
cleanup() {
	local pid
	for pid in "$bench_pid" "$stack_pid"; do
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

# Keys and policy first: pgseal serve starts with them.
keys=(--keystore "$work/keystore.json" --master-key "file:$work/master.key")
"$pgseal_bin" keys init "${keys[@]}" >/dev/null
"$pgseal_bin" keys add pii "${keys[@]}" >/dev/null
cat >"$work/policy.yaml" <<EOF
version: 1
tables:
  public.bench:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
EOF

start_stack bench-reencrypt -pgseal "$pgseal_bin" -db bench \
	-setting shared_buffers=512MB -setting max_wal_size=8GB -setting checkpoint_timeout=30min \
	-- --policy "$work/policy.yaml" "${keys[@]}" --reload-interval 100ms
direct="$STACK_PG_CONNINFO dbname=bench"
proxied="$STACK_PROXY_CONNINFO dbname=bench"
db=(--dsn "$direct" --policy "$work/policy.yaml" "${keys[@]}" --log-format json --progress none
	--batch-size "$batch" --writers "$writers")

sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$direct" "$@"; }

echo "bench-reencrypt: loading $rows plaintext rows" >&2
sql -c "CREATE TABLE bench (id int8 PRIMARY KEY, email text NOT NULL, ssn text, n int4 NOT NULL DEFAULT 0)"
sql -c "INSERT INTO bench (id, email, ssn) SELECT g, 'user' || g || '@example.com', lpad((g::int8 * 7919 % 1000000000)::text, 9, '0') FROM generate_series(1, $rows) g"
sql -c "VACUUM ANALYZE bench"

# rate_of OUTPUT: the rows/s figure of a reencrypt or encrypt-column summary.
rate_of() { sed -n 's/.*(\([0-9]*\) rows\/s)$/\1/p' <<<"$1" | head -n 1; }

declare -A enc_secs
for col in email ssn; do
	echo "bench-reencrypt: encrypt-column $col" >&2
	start=$(date +%s.%N)
	"$pgseal_bin" encrypt-column --table bench --column "$col" --finish "${db[@]}" >"$work/enc-$col.out" 2>>"$work/cli.log" || {
		cat "$work/enc-$col.out" "$work/cli.log" >&2
		exit 1
	}
	enc_secs[$col]=$(echo "$(date +%s.%N) - $start" | bc)
done
sql -c "VACUUM FULL ANALYZE bench"

# rotate: a new primary version, and wait until pgseal has loaded it.
rotations=0
rotate() {
	"$pgseal_bin" keys rotate pii "${keys[@]}" >/dev/null
	rotations=$((rotations + 1))
	for _ in $(seq 1 100); do
		if [ "$(grep -c '"source":"keystore"' "$work/stack.log" || true)" -ge "$rotations" ]; then
			return
		fi
		sleep 0.1
	done
	echo "bench-reencrypt: pgseal did not reload the keystore" >&2
	exit 1
}

# reencrypt NAME: one whole-table run; sets secs and rate.
reencrypt() {
	local out start
	start=$(date +%s.%N)
	out=$("$pgseal_bin" reencrypt --all "${db[@]}" 2>>"$work/cli.log") || {
		echo "$out" >&2
		cat "$work/cli.log" >&2
		echo "bench-reencrypt: reencrypt failed ($1)" >&2
		exit 1
	}
	secs=$(echo "$(date +%s.%N) - $start" | bc)
	rate=$(rate_of "$out")
	echo "$out" >"$work/reencrypt-$1.out"
}

echo "bench-reencrypt: run 1, no workload" >&2
rotate
reencrypt off
off_secs=$secs off_rate=$rate
sql -c "VACUUM bench"

echo "bench-reencrypt: run 2, $clients pgbench clients through pgseal at $workload_tps tps" >&2
rotate
cat >"$work/workload.sql" <<EOF
\set id random(1, $rows)
\set v random(100000000, 999999999)
BEGIN;
SELECT email, ssn FROM bench WHERE id = :id;
UPDATE bench SET ssn = :v, n = n + 1 WHERE id = :id;
COMMIT;
EOF
pgbench -n -M extended -c "$clients" -j 2 -R "$workload_tps" -T 3600 --progress 1 \
	-f "$work/workload.sql" "$proxied" >"$work/pgbench.out" 2>"$work/pgbench.log" &
bench_pid=$!
sleep 3 # warm-up: connections made and the rate reached before the run starts
if ! kill -0 "$bench_pid" 2>/dev/null; then
	cat "$work/pgbench.out" "$work/pgbench.log" >&2
	echo "bench-reencrypt: pgbench failed through pgseal" >&2
	exit 1
fi
skip=$(grep -c '^progress:' "$work/pgbench.log" || true)
reencrypt on
on_secs=$secs on_rate=$rate
kill -TERM "$bench_pid" 2>/dev/null || true
wait "$bench_pid" 2>/dev/null || true
bench_pid=""
# The workload during the run: pgbench's per-second progress lines.
read -r wl_tps wl_lat wl_failed < <(tail -n +"$((skip + 1))" "$work/pgbench.log" | awk '
	/^progress:/ { for (i = 1; i <= NF; i++) { if ($(i) == "tps,") t += $(i-1); if ($(i) == "lat") l += $(i+1); if ($(i) ~ /^failed/) f += $(i-1) } n++ }
	END { if (n) printf "%.0f %.1f %d\n", t / n, l / n, f; else print "0 0 0" }')

fmt_rate() { printf "%'d" "$1"; }
echo
echo "pgseal reencrypt, $rows rows x 2 encrypted columns (deterministic + randomized), batch $batch, $writers writers, $(nproc) CPUs"
printf "  %-13s %8.1f s  %10s rows/s\n" "workload off" "$off_secs" "$(fmt_rate "$off_rate")"
printf "  %-13s %8.1f s  %10s rows/s   (pgbench through pgseal: %s tps of %s asked, %s ms average latency, %s failed)\n" \
	"workload on" "$on_secs" "$(fmt_rate "$on_rate")" "$wl_tps" "$workload_tps" "$wl_lat" "$wl_failed"
printf "  ratio on/off  %.2f\n" "$(echo "$on_rate / $off_rate" | bc -l)"
echo "setup: encrypt-column email $(printf '%.1f' "${enc_secs[email]}") s, ssn $(printf '%.1f' "${enc_secs[ssn]}") s (backfill and switch, no workload)"
