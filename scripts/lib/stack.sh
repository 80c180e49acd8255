# Sourced by the benchmark and compatibility scripts, which share this setup.
# They define $work (a directory removed at exit) before calling these.

# build_stack_bins builds pgseal (unless PGSEAL_BIN names one) and the stack
# command into $work/bin, and sets pgseal_bin.
build_stack_bins() {
	pgseal_bin="${PGSEAL_BIN:-}"
	if [ -z "$pgseal_bin" ]; then
		pgseal_bin="$work/bin/pgseal"
		go build -o "$pgseal_bin" ./cmd/pgseal
	fi
	go build -o "$work/bin/stack" ./internal/devtools/stack
}

# start_stack NAME ARGS... runs internal/devtools/stack with ARGS in the
# background, sets stack_pid, and reads its STACK_* assignments up to the
# "# ready" line. If the stack does not come up it prints its log and exits.
start_stack() {
	local name="$1" line ready=""
	shift
	mkfifo "$work/stack.fifo"
	"$work/bin/stack" "$@" >"$work/stack.fifo" 2>"$work/stack.log" &
	stack_pid=$!
	while IFS= read -r line; do
		case "$line" in
		"# ready") ready=1; break ;;
		STACK_*=*) eval "$line" ;;
		esac
	done <"$work/stack.fifo"
	if [ -z "$ready" ]; then
		echo "$name: the stack did not start:" >&2
		cat "$work/stack.log" >&2
		exit 1
	fi
}
