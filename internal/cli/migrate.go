package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/reencrypt"
)

func newEncryptColumnCmd(s streams) *cobra.Command {
	return newMigrateCmd(s, reencrypt.Encrypt, &cobra.Command{
		Use:   "encrypt-column --table T --column C [--finish | --abort | --status]",
		Short: "Bring an existing plaintext column under the policy, online",
		Long: `Encrypt a plaintext column in place while the application keeps running.

Add the column to the policy file first (type, mode, key), but do not let the
serving pgseal load that entry yet. Then:

  1. encrypt-column --table T --column C
     adds a bytea shadow column C__pgseal and a trigger that empties it when
     the application changes C, and fills it in compare-and-swap batches.
     Resumable: run it again after an interruption.
  2. encrypt-column --table T --column C --finish
     fills the last rows and swaps the columns in one short transaction under
     an ACCESS EXCLUSIVE lock: C is dropped and C__pgseal becomes C.
  3. reload every pgseal with the policy entry at once.

--abort undoes steps 1 (the plaintext column was never touched). The steps,
their locks and the switch-over are described in docs/migration.md.`,
	})
}

func newDecryptColumnCmd(s streams) *cobra.Command {
	cmd := newMigrateCmd(s, reencrypt.Decrypt, &cobra.Command{
		Use:   "decrypt-column --table T --column C [--finish | --abort | --status]",
		Short: "Turn an encrypted policy column back into plaintext, online (rollback of encrypt-column)",
		Long: `Decrypt a policy column in place while the application keeps running: the
rollback of encrypt-column. The column stays in the policy until the switch.

  1. decrypt-column --table T --column C
     adds a plaintext shadow column C__pgseal_plain of the column's original
     type (or --type) and fills it in compare-and-swap batches.
  2. decrypt-column --table T --column C --finish
     fills the last rows and swaps the columns under a short ACCESS EXCLUSIVE
     lock.
  3. remove the column from the policy and reload every pgseal at once.

See docs/migration.md.`,
	})
	cmd.Flags().String("type", "", "SQL type of the plaintext column (default: its type before encrypt-column, else the declared type)")
	return cmd
}

// newMigrateCmd fills in the flags and the run of encrypt-column and
// decrypt-column.
func newMigrateCmd(s streams, dir reencrypt.Direction, cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		e, err := loadDBEnv(cmd, s)
		if err != nil {
			return err
		}
		f := cmd.Flags()
		table, _ := f.GetString("table")
		column, _ := f.GetString("column")
		if table == "" || column == "" {
			return withCode(ExitUsage, errors.New("--table and --column are required"))
		}
		groups, err := e.policyColumns(table, column, false)
		if err != nil {
			return err
		}
		col := groups[0][0]
		c, err := e.cipher(col)
		if err != nil {
			return err
		}
		m := reencrypt.Migration{Column: col, Cipher: c}
		if dir == reencrypt.Decrypt {
			m.SQLType, _ = f.GetString("type")
		}
		var opts reencrypt.MigrateOptions
		opts.BatchSize, _ = f.GetInt("batch-size")
		opts.MaxRate, _ = f.GetFloat64("max-rate")
		opts.Writers, _ = f.GetInt("writers")
		opts.Passes, _ = f.GetInt("passes")
		opts.LockTimeout, _ = f.GetDuration("lock-timeout")
		opts.LockAttempts, _ = f.GetInt("lock-attempts")
		opts.Finish, _ = f.GetBool("finish")
		abort, _ := f.GetBool("abort")
		status, _ := f.GetBool("status")
		if n := btoi(abort) + btoi(status) + btoi(opts.Finish); n > 1 {
			return withCode(ExitUsage, errors.New("--finish, --abort and --status exclude each other"))
		}
		ctx, stop := signalContext(cmd)
		defer stop()
		name := fmt.Sprintf("%s-column %s", dir, col)
		switch {
		case status:
			d, step, err := reencrypt.MigrationState(ctx, e.db, col)
			if err != nil {
				return err
			}
			if step == reencrypt.StepNone {
				fmt.Fprintf(s.out, "%s: no migration recorded\n", col)
				return nil
			}
			fmt.Fprintf(s.out, "%s: %s-column, step %s\n", col, d, step)
			return nil
		case abort:
			if err := reencrypt.Abort(ctx, e.db, dir, m, opts); err != nil {
				return migrateCode(err)
			}
			fmt.Fprintf(s.out, "%s: aborted; the shadow column and its trigger are gone, %s is as it was\n", name, col)
			return nil
		}
		mode, _ := f.GetString("progress")
		every, _ := f.GetDuration("progress-interval")
		prog, err := newProgress(s.err, mode, every, e.log, col.Table.String())
		if err != nil {
			return err
		}
		opts.Progress = prog.update
		rep, err := reencrypt.Migrate(ctx, e.db, dir, m, opts)
		prog.finish()
		e.log.Info().Str("column", col.String()).Str("direction", dir.String()).Str("step", string(rep.Step)).
			Int("passes", rep.Passes).Int64("filled", rep.Filled).Int64("conflicts", rep.Conflicts).
			Int64("remaining", rep.Remaining).Int64("failed", rep.Failed).Int64("switch_rows", rep.SwitchRows).
			Dur("lock_held", rep.LockHeld).Msg("migration step done")
		if err != nil {
			return migrateCode(err)
		}
		fmt.Fprintf(s.out, "%s: %d rows filled in %d passes (%d conflicts re-read), %d rows still to fill, %d values that do not convert\n",
			name, rep.Filled, rep.Passes, rep.Conflicts, rep.Remaining, rep.Failed)
		switch {
		case rep.Step == reencrypt.StepDone && dir == reencrypt.Encrypt:
			fmt.Fprintf(s.out, "switched: %s now holds ciphertext (%d rows filled under an ACCESS EXCLUSIVE lock held %s)\n",
				col, rep.SwitchRows, rep.LockHeld.Round(time.Microsecond))
			fmt.Fprintf(s.out, "now reload every pgseal with this policy entry:\n  %s:\n    %s: {type: %s, mode: %s, key: %s}\n",
				col.Table, policy.QuoteIdent(col.Name), col.Type, col.Mode, col.KeySet)
		case rep.Step == reencrypt.StepDone:
			fmt.Fprintf(s.out, "switched: %s holds plaintext again (%d rows filled under an ACCESS EXCLUSIVE lock held %s)\n",
				col, rep.SwitchRows, rep.LockHeld.Round(time.Microsecond))
			fmt.Fprintf(s.out, "now remove %s from the policy and reload every pgseal\n", col)
		default:
			fmt.Fprintf(s.out, "step %s; run again with --finish to switch (or --abort to undo)\n", rep.Step)
		}
		return nil
	}
	dbFlags(cmd)
	f := cmd.Flags()
	f.String("table", "", "table of the column (schema.table)")
	f.String("column", "", "the column, as named in the policy")
	f.Bool("finish", false, "after the backfill, switch the columns (short ACCESS EXCLUSIVE lock)")
	f.Bool("abort", false, "undo a migration that has not switched")
	f.Bool("status", false, "print the recorded step and exit")
	f.Int("batch-size", 1000, "rows per page (one read and one update statement)")
	f.Float64("max-rate", 0, "at most this many rows filled per second (0: no cap)")
	f.Int("writers", 2, "connections writing pages at once")
	f.Int("passes", 5, "most backfill passes per run")
	f.Duration("lock-timeout", 2*time.Second, "longest wait for a table lock per attempt")
	f.Int("lock-attempts", 5, "attempts at the switch's lock")
	f.String("progress", "auto", "auto (a bar on a terminal, log lines otherwise), bar, log or none")
	f.Duration("progress-interval", 10*time.Second, "time between progress log lines")
	return cmd
}

// migrateCode attaches the exit code of a migration error: a lock that
// could not be taken leaves the work undone (6).
func migrateCode(err error) error {
	switch {
	case errors.Is(err, reencrypt.ErrLockTimeout):
		return withCode(ExitIncomplete, err)
	case errors.Is(err, reencrypt.ErrMigrationState), errors.Is(err, reencrypt.ErrColumnType),
		errors.Is(err, reencrypt.ErrNoPrimaryKey), errors.Is(err, reencrypt.ErrNoColumn), errors.Is(err, reencrypt.ErrNoTable):
		return withCode(ExitUsage, err)
	default:
		return err
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
