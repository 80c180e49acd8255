// Command pgseal is a transparent column-encryption proxy for PostgreSQL.
// Everything lives in internal/cli; main only runs the root command and
// turns its error into an exit code.
package main

import (
	"os"
	// Session time zones (SET TIME ZONE 'Europe/Oslo') resolve even in images
	// without system tzdata, such as the distroless runtime.
	_ "time/tzdata"

	"github.com/pgseal/pgseal/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
