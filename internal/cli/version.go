package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// Version is set at link time with -ldflags "-X github.com/pgseal/pgseal/internal/cli.Version=...".
var Version = "dev"

func newVersionCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pgseal's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(s.out, "pgseal %s\n", Version)
			return err
		},
	}
}
