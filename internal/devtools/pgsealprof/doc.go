// Command pgsealprof is pgseal with a CPU profiler around it, for finding
// hot spots in `pgseal serve` under load (scripts/bench-datapath.sh uses it
// when BENCH_CPUPROFILE is set).
//
// Usage:
//
//	pgsealprof -cpuprofile FILE pgseal-arguments...
//
// It runs the same command line interface as cmd/pgseal in-process, with
// Go's CPU profiler on from start to exit, and writes the profile to FILE
// when the command returns: for `serve`, after SIGTERM or SIGINT and the
// graceful shutdown. Read it with `go tool pprof`.
//
// pgsealprof is a development tool: it is not built into pgseal, and the
// production binary has no profiling flag.
package main
