package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/pgseal/pgseal/internal/cli"
)

func main() {
	fs := flag.NewFlagSet("pgsealprof", flag.ContinueOnError)
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(cli.ExitUsage)
	}
	if *cpuprofile == "" {
		fmt.Fprintln(os.Stderr, "pgsealprof: -cpuprofile is required")
		os.Exit(cli.ExitUsage)
	}
	os.Exit(run(*cpuprofile, fs.Args()))
}

// run runs pgseal with args under the CPU profiler and returns its exit
// code.
func run(profile string, args []string) int {
	f, err := os.Create(profile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgsealprof: %v\n", err)
		return cli.ExitFailure
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "pgsealprof: %v\n", err)
		return cli.ExitFailure
	}
	code := cli.Main(args, os.Stdin, os.Stdout, os.Stderr)
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "pgsealprof: failed to write the profile: %v\n", err)
		return cli.ExitFailure
	}
	return code
}
