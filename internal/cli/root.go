package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// streams are the standard streams a command writes to, injected so tests
// can capture them.
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// Main runs pgseal with args and returns the process exit code.
func Main(args []string, in io.Reader, out, errw io.Writer) int {
	root := newRootCmd(streams{in: in, out: out, err: errw})
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		fmt.Fprintf(errw, "pgseal: %v\n", err)
		return codeOf(err)
	}
	return ExitOK
}

func newRootCmd(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "pgseal",
		Short:         "Transparent column encryption proxy for PostgreSQL",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(ExitUsage, err) })
	root.AddCommand(
		newVersionCmd(s),
		newServeCmd(s),
		newDevCmd(s),
		newKeysCmd(s),
		newAuditCmd(s),
		newPolicyCmd(s),
		newReencryptCmd(s),
		newEncryptColumnCmd(s),
		newDecryptColumnCmd(s),
	)
	return root
}
