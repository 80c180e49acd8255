#!/usr/bin/env bash
# bench-datapath.sh measures what encryption costs in pgseal's data path, in
# one run, on one throwaway cluster behind one pgseal with a policy:
#
#   enc    pgbench ──TLS──▶ pgseal ──TLS──▶ bench_enc   (email deterministic,
#                                                        note randomized: bytea)
#   plain  pgbench ──TLS──▶ pgseal ──TLS──▶ bench_plain (the same columns as
#                                                        text, no policy)
#
# Each pgbench transaction INSERTs a row with both columns, then SELECTs it
# by equality on email (an index lookup), with -M prepared and -M simple. It
# prints TPS side by side with the ratio enc/plain (goal: 0.80 or more),
# then the statement analysis cost per statement on a plan-cache hit and
# miss (go test ./rewrite -bench Analyze).
#
# Environment: BENCH_DURATION (seconds per run, default 15), BENCH_CLIENTS
# (default 8), BENCH_THREADS (default 2), BENCH_ROUNDS (runs of each table
# and mode, interleaved, each round starting with the other table; the
# median TPS is reported; default 1), BENCH_WARMUP (seconds of an uncounted
# run of each case first, default 5), BENCH_CPUPROFILE (write a CPU profile
# of pgseal serve over the whole run to this file and print its top
# functions), PGSEAL_BIN (a pgseal binary to use instead of building
# ./cmd/pgseal; serve runs from source with BENCH_CPUPROFILE).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
. scripts/lib/stack.sh

duration="${BENCH_DURATION:-15}"
clients="${BENCH_CLIENTS:-8}"
threads="${BENCH_THREADS:-2}"
rounds="${BENCH_ROUNDS:-1}"
warmup="${BENCH_WARMUP:-5}"
cpuprofile="${BENCH_CPUPROFILE:-}"
if [ -n "$cpuprofile" ]; then
	cpuprofile="$(cd "$(dirname "$cpuprofile")" && pwd)/$(basename "$cpuprofile")"
fi

scripts/install-deps.sh # PostgreSQL server and pgbench

work="$(mktemp -d -t bench-datapath-XXXXXX)"
stack_pid=""
cleanup() {
	if [ -n "$stack_pid" ]; then
		kill -TERM "$stack_pid" 2>/dev/null || true
		wait "$stack_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/bin"
pgseal_cli="${PGSEAL_BIN:-}"
if [ -z "$pgseal_cli" ]; then
	pgseal_cli="$work/bin/pgseal"
	go build -o "$pgseal_cli" ./cmd/pgseal
fi
pgseal_bin="$pgseal_cli"
if [ -n "$cpuprofile" ]; then
	# pgseal serve under a CPU profiler: a development build of the same
	# command, started through a wrapper because stack runs `BIN serve ...`.
	go build -o "$work/bin/pgsealprof" ./internal/devtools/pgsealprof
	pgseal_bin="$work/bin/pgseal-profiled"
	printf '#!/usr/bin/env bash\nexec %q -cpuprofile %q "$@"\n' "$work/bin/pgsealprof" "$cpuprofile" >"$pgseal_bin"
	chmod +x "$pgseal_bin"
fi
go build -o "$work/bin/stack" ./internal/devtools/stack

# The keystore, its master key and the policy.
keys=(--keystore "$work/keystore.json" --master-key "file:$work/master.key")
"$pgseal_cli" keys "${keys[@]}" init >/dev/null
"$pgseal_cli" keys "${keys[@]}" add pii >/dev/null
cat >"$work/policy.yaml" <<-'EOF'
	version: 1
	tables:
	  public.bench_enc:
	    email: {type: text, mode: deterministic, key: pii}
	    note:  {type: text, mode: randomized,    key: pii}
EOF

# The cluster and pgseal; their coordinates come on the stack's standard
# output, up to its ready marker.
start_stack bench-datapath -pgseal "$pgseal_bin" -db bench -setting shared_buffers=256MB \
	-- --policy "$work/policy.yaml" "${keys[@]}"

direct="$STACK_PG_CONNINFO dbname=bench"
proxied="$STACK_PROXY_CONNINFO dbname=bench"
psql -X -q -v ON_ERROR_STOP=1 "$direct" <<-'EOF'
	CREATE TABLE bench_enc (email bytea NOT NULL, note bytea);
	CREATE INDEX ON bench_enc (email);
	CREATE TABLE bench_plain (email text NOT NULL, note text);
	CREATE INDEX ON bench_plain (email);
EOF
"$pgseal_cli" policy check --policy "$work/policy.yaml" "${keys[@]}" --dsn "$direct" >&2

# pgbench scripts, one per protocol: in simple mode pgbench pastes a
# variable's value into the text, so the values are quoted there; in
# prepared mode they become parameters. Both send the same values.
for table in enc plain; do
	cat >"$work/prepared-$table.sql" <<-EOF
		\set id random(1, 1000000000000)
		INSERT INTO bench_$table (email, note) VALUES (:id, :note);
		SELECT email, note FROM bench_$table WHERE email = :id;
	EOF
	cat >"$work/simple-$table.sql" <<-EOF
		\set id random(1, 1000000000000)
		INSERT INTO bench_$table (email, note) VALUES (':id', ':note');
		SELECT email, note FROM bench_$table WHERE email = ':id';
	EOF
done
note="note-0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"

# run_bench TABLE MODE [SECONDS]: the TPS of one pgbench run.
run_bench() {
	local out
	out=$(pgbench -n -f "$work/$2-$1.sql" -D "note=$note" -M "$2" -c "$clients" -j "$threads" -T "${3:-$duration}" "$proxied" 2>&1) || {
		echo "$out" >&2
		echo "bench-datapath: pgbench failed against $1 ($2)" >&2
		exit 1
	}
	if grep -q 'number of failed transactions: [1-9]' <<<"$out"; then
		echo "$out" >&2
		echo "bench-datapath: failed transactions against $1 ($2)" >&2
		exit 1
	fi
	sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' <<<"$out"
}

# A warm-up run of each case, not counted: the first statements of a run
# pay for cold caches (shared buffers, the table's first pages, pgseal's
# plan cache), which would otherwise fall on whichever case runs first.
for mode in prepared simple; do
	for t in enc plain; do
		echo "bench-datapath: warm-up, $mode, $t (${warmup}s)..." >&2
		run_bench "$t" "$mode" "$warmup" >/dev/null
	done
done

# Rounds alternate which table goes first.
declare -A samples
for round in $(seq 1 "$rounds"); do
	order="enc plain"
	if [ $((round % 2)) -eq 0 ]; then
		order="plain enc"
	fi
	for mode in prepared simple; do
		for t in $order; do
			echo "bench-datapath: round $round/$rounds, $mode, $t (${duration}s)..." >&2
			tps=$(run_bench "$t" "$mode")
			samples[$mode,$t]="${samples[$mode,$t]:-} $tps"
		done
	done
done

# What the runs wrote: through pgseal every note reads back as written and
# a lookup by email finds its row; directly, no note is in plaintext.
notes=$(psql -X -At -v ON_ERROR_STOP=1 "$proxied" -c "SELECT note FROM bench_enc" | sort -u)
email=$(psql -X -At -v ON_ERROR_STOP=1 "$proxied" -c "SELECT email FROM bench_enc LIMIT 1")
found=$(psql -X -At -v ON_ERROR_STOP=1 "$proxied" -c "SELECT count(*) FROM bench_enc WHERE email = '$email'")
leak=$(psql -X -At -v ON_ERROR_STOP=1 "$direct" -c \
	"SELECT count(*) FROM bench_enc WHERE position(convert_to('$note', 'UTF8') IN note) > 0")
rows_enc=$(psql -X -At "$direct" -c "SELECT count(*) FROM bench_enc")
rows_plain=$(psql -X -At "$direct" -c "SELECT count(*) FROM bench_plain")
if [ "$notes" != "$note" ] || [ "$found" -lt 1 ] || [ "$leak" != 0 ]; then
	echo "bench-datapath: bench_enc does not read back (notes: ${notes:0:200}; rows found by email: $found) or holds plaintext ($leak rows)" >&2
	exit 1
fi

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo
echo "pgbench: INSERT (email, note) + SELECT by email, $clients clients, $threads threads, ${duration}s per run, median of $rounds round(s); through pgseal, TLS on both hops"
printf '%-9s %12s %12s %10s\n' mode enc plain enc/plain
for mode in prepared simple; do
	e=$(median <<<"${samples[$mode,enc]}")
	p=$(median <<<"${samples[$mode,plain]}")
	awk -v m="$mode" -v e="$e" -v p="$p" \
		'BEGIN { printf "%-9s %12.0f %12.0f %10.3f%s\n", m, e, p, e / p, (e / p >= 0.80) ? "" : "  (below the goal of 0.80)" }'
done
if [ "$rounds" -gt 1 ]; then
	echo
	echo "every run's TPS, in run order:"
	for mode in prepared simple; do
		for t in enc plain; do
			printf '  %-9s %-6s%s\n' "$mode" "$t" "${samples[$mode,$t]}"
		done
	done
fi
echo "rows written: bench_enc $rows_enc (notes read back through pgseal, ciphertext at rest), bench_plain $rows_plain"

echo
echo "statement analysis per statement (go test ./rewrite -run '^\$' -bench Analyze -benchmem):"
go test ./rewrite -run '^$' -bench Analyze -benchmem | grep '^Benchmark' | sed 's/^/  /'

if [ -n "$cpuprofile" ]; then
	# pgseal writes its profile when it stops.
	kill -TERM "$stack_pid" 2>/dev/null || true
	wait "$stack_pid" 2>/dev/null || true
	stack_pid=""
	echo
	echo "CPU profile of pgseal serve: $cpuprofile (go tool pprof -top $cpuprofile)"
	go tool pprof -top -nodecount=30 "$cpuprofile" 2>/dev/null | sed 's/^/  /'
fi
