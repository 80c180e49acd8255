package cli

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgseal/pgseal/internal/auditlog"
	"github.com/pgseal/pgseal/keystore"
)

func newAuditCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the key audit log",
	}
	keystoreFlags(cmd)
	cmd.AddCommand(newAuditVerifyCmd(s))
	return cmd
}

func newAuditVerifyCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "verify [FILE]",
		Short: "Verify the HMAC chain of an audit log (default: the keystore's)",
		Long: `Verify every entry of an audit log: its HMAC, its sequence number and its link
to the entry before. The HMAC key comes from the keystore, so --keystore and
--master-key are needed. Entries cut off the end cannot be detected: compare
the printed count and last MAC with a copy kept elsewhere.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			path := e.auditPath
			if len(args) == 1 {
				path = args[0]
			}
			ks, err := keystore.Open(cmd.Context(), e.path, e.mk)
			if err != nil {
				return keystoreCode(err)
			}
			f, err := os.Open(path)
			if err != nil {
				return withCode(ExitFailure, fmt.Errorf("failed to open audit log: %w", err))
			}
			defer f.Close()
			sum, err := auditlog.Verify(f, ks.AuditLogKey())
			if err != nil {
				return withCode(ExitFailure, fmt.Errorf("%s: %w", path, err))
			}
			if sum.Entries == 0 {
				fmt.Fprintf(s.out, "%s: ok, no entries\n", path)
				return nil
			}
			fmt.Fprintf(s.out, "%s: ok, %d entries from %s to %s, last mac %s\n", path, sum.Entries,
				sum.First.Format(time.RFC3339), sum.Last.Format(time.RFC3339), sum.LastMAC)
			return nil
		},
	}
}
