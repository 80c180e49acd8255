package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/reencrypt"
)

// dbConfigKeys maps the configuration keys of the commands that work on
// the database directly (reencrypt, encrypt-column, decrypt-column) to
// their flags; PGSEAL_DSN, PGSEAL_POLICY, PGSEAL_KEYSTORE_PATH... in the
// environment.
var dbConfigKeys = map[string]string{
	"dsn":                 "dsn",
	"policy":              "policy",
	"keystore.path":       "keystore",
	"keystore.master_key": "master-key",
	"log.level":           "log-level",
	"log.format":          "log-format",
}

// dbFlags adds the flags shared by the commands that connect to PostgreSQL
// directly.
func dbFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("config", "", "YAML configuration file")
	f.String("dsn", "", "PostgreSQL to connect to directly, credentials included: libpq key=value string or postgres:// URL (PGSEAL_DSN)")
	f.String("policy", "", "policy YAML naming the encrypted columns")
	f.String("keystore", "", "keystore file")
	f.String("master-key", "", "master-key source: file:PATH, env:VAR or passphrase")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("log-format", "json", "json or console")
}

// dbEnv is what a database command needs, loaded once.
type dbEnv struct {
	db  *reencrypt.DB
	pol *policy.Policy
	ks  *keystore.Keystore
	log zerolog.Logger
}

// loadDBEnv reads the configuration, the policy and the keystore.
func loadDBEnv(cmd *cobra.Command, s streams) (*dbEnv, error) {
	v, err := commandViper(cmd, dbConfigKeys)
	if err != nil {
		return nil, err
	}
	e := &dbEnv{}
	if e.log, err = newLogger(s.err, v.GetString("log.level"), v.GetString("log.format")); err != nil {
		return nil, withCode(ExitConfig, err)
	}
	dsn := v.GetString("dsn")
	if dsn == "" {
		return nil, withCode(ExitUsage, errors.New("no database: pass --dsn or set PGSEAL_DSN"))
	}
	if e.db, err = reencrypt.ParseDSN(dsn); err != nil {
		return nil, withCode(ExitConfig, err)
	}
	if v.GetString("policy") == "" {
		return nil, withCode(ExitUsage, errors.New("no policy: pass --policy or set PGSEAL_POLICY"))
	}
	if e.pol, err = policy.Load(v.GetString("policy")); err != nil {
		return nil, withCode(ExitConfig, err)
	}
	path, spec := v.GetString("keystore.path"), v.GetString("keystore.master_key")
	if path == "" || spec == "" {
		return nil, withCode(ExitUsage, errors.New("pass --keystore and --master-key (or keystore.path and keystore.master_key)"))
	}
	mk, err := parseMasterKey(s, spec, "")
	if err != nil {
		return nil, err
	}
	if e.ks, err = keystore.Open(cmd.Context(), path, mk); err != nil {
		return nil, keystoreCode(err)
	}
	if problems := e.pol.Validate(func(name string) bool { _, err := e.ks.KeySet(name); return err == nil }); len(problems) > 0 {
		return nil, withCode(ExitConfig, errors.Join(problems...))
	}
	return e, nil
}

// cipher builds a policy column's cipher exactly as the proxy does, so that
// what the commands write opens in the proxy and the other way round.
func (e *dbEnv) cipher(col *policy.Column) (*envelope.ColumnCipher, error) {
	c, err := e.ks.Column(col.KeySet, datapath.ColumnTable(col), col.Name, datapath.EnvelopeMode(col.Mode))
	if err != nil {
		return nil, keystoreCode(err)
	}
	return c, nil
}

// policyColumns resolves --table, --column and --all into policy columns,
// grouped by table in policy order.
func (e *dbEnv) policyColumns(table, column string, all bool) ([][]*policy.Column, error) {
	switch {
	case all && (table != "" || column != ""):
		return nil, withCode(ExitUsage, errors.New("--all excludes --table and --column"))
	case all:
		var out [][]*policy.Column
		for _, t := range e.pol.Tables() {
			out = append(out, t.Columns())
		}
		return out, nil
	case table == "":
		return nil, withCode(ExitUsage, errors.New("pass --table (and optionally --column), or --all"))
	}
	qn, err := policy.ParseQualifiedName(table)
	if err != nil {
		return nil, withCode(ExitUsage, fmt.Errorf("--table %q: %w", table, err))
	}
	t, ok := e.pol.Table(qn.Schema, qn.Name)
	if !ok {
		return nil, withCode(ExitUsage, fmt.Errorf("table %s is not in the policy", qn))
	}
	if column == "" {
		return [][]*policy.Column{t.Columns()}, nil
	}
	name, err := policy.ParseIdentifier(column)
	if err != nil {
		return nil, withCode(ExitUsage, fmt.Errorf("--column %q: %w", column, err))
	}
	c, ok := t.Column(name)
	if !ok {
		return nil, withCode(ExitUsage, fmt.Errorf("column %s.%s is not in the policy", qn, policy.QuoteIdent(name)))
	}
	return [][]*policy.Column{{c}}, nil
}

// signalContext is cmd's context, cancelled by SIGINT and SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
}

func newReencryptCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reencrypt (--table T [--column C] | --all)",
		Short: "Re-encrypt policy columns under their key set's primary version, online",
		Long: `Rewrite every value of the chosen policy columns that is not under its key
set's primary version, while the application keeps running. Rows are walked by
primary key in short transactions; a row is only updated if it still holds the
value that was read, so no application write is lost. Safe to interrupt and run
again. Run it after 'pgseal keys rotate', once every pgseal instance has loaded
the rotated keystore (see docs/rotation.md).

Exit status 6 means values remain on another version (or did not open).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := loadDBEnv(cmd, s)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			table, _ := f.GetString("table")
			column, _ := f.GetString("column")
			all, _ := f.GetBool("all")
			groups, err := e.policyColumns(table, column, all)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd)
			defer stop()
			if dry, _ := f.GetBool("dry-run"); dry {
				return e.dryRun(ctx, s.out, groups)
			}
			var opts reencrypt.Options
			opts.BatchSize, _ = f.GetInt("batch-size")
			opts.MaxRate, _ = f.GetFloat64("max-rate")
			opts.Writers, _ = f.GetInt("writers")
			mode, _ := f.GetString("progress")
			every, _ := f.GetDuration("progress-interval")
			return e.reencrypt(ctx, s, groups, opts, mode, every)
		},
	}
	dbFlags(cmd)
	f := cmd.Flags()
	f.String("table", "", "policy table to re-encrypt (schema.table)")
	f.String("column", "", "only this policy column of --table")
	f.Bool("all", false, "every column of the policy")
	f.Int("batch-size", 1000, "rows per page (one read and one update statement)")
	f.Float64("max-rate", 0, "at most this many rows rewritten per second (0: no cap)")
	f.Int("writers", 2, "connections writing pages at once")
	f.Bool("dry-run", false, "only count the values per key version; change nothing")
	f.String("progress", "auto", "auto (a bar on a terminal, log lines otherwise), bar, log or none")
	f.Duration("progress-interval", 10*time.Second, "time between progress log lines")
	return cmd
}

// target builds the engine's target for one table's columns.
func (e *dbEnv) target(cols []*policy.Column) (reencrypt.Target, error) {
	t := reencrypt.Target{Table: cols[0].Table}
	for _, col := range cols {
		c, err := e.cipher(col)
		if err != nil {
			return t, err
		}
		t.Columns = append(t.Columns, reencrypt.Column{Name: col.Name, Cipher: c})
	}
	return t, nil
}

func columnNames(cols []*policy.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// dryRun prints the values per key version of each column.
func (e *dbEnv) dryRun(ctx context.Context, w io.Writer, groups [][]*policy.Column) error {
	conn, err := e.db.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var all []reencrypt.VersionCount
	for _, cols := range groups {
		counts, err := reencrypt.Count(ctx, conn, cols[0].Table, columnNames(cols))
		if errors.Is(err, reencrypt.ErrColumnType) && len(groups) > 1 {
			e.log.Warn().Err(err).Str("table", cols[0].Table.String()).Msg("dry run skipped a table")
			continue
		}
		if err != nil {
			return err
		}
		all = append(all, counts...)
	}
	return e.writeCounts(w, all)
}

// writeCounts prints one line per column and key version.
func (e *dbEnv) writeCounts(w io.Writer, counts []reencrypt.VersionCount) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tCOLUMN\tKEY SET\tVERSION\tSTATE\tVALUES")
	for _, vc := range counts {
		set, version, state := "-", "-", vc.Kind.String()
		if vc.Kind == reencrypt.KindEnvelope {
			set, version, state = hexID(vc.KeySetID), fmt.Sprint(vc.Version), "unknown"
			if info, err := e.ks.KeySetByID(vc.KeySetID); err == nil {
				set = info.Name
			}
			if st, err := e.ks.VersionState(vc.KeySetID, vc.Version); err == nil {
				state = st.String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", vc.Table, policy.QuoteIdent(vc.Column), set, version, state, vc.Count)
	}
	return tw.Flush()
}

// reencrypt runs the engine table by table and prints a summary of each.
func (e *dbEnv) reencrypt(ctx context.Context, s streams, groups [][]*policy.Column, opts reencrypt.Options, mode string, every time.Duration) error {
	var stale, failed, skipped int64
	for _, cols := range groups {
		target, err := e.target(cols)
		if err != nil {
			return err
		}
		prog, err := newProgress(s.err, mode, every, e.log, target.Table.String())
		if err != nil {
			return err
		}
		opts.Progress = prog.update
		res, err := reencrypt.Run(ctx, e.db, target, opts)
		prog.finish()
		if errors.Is(err, reencrypt.ErrColumnType) && len(groups) > 1 {
			// A column still plaintext (an encrypt-column migration that has
			// not switched) does not stop the other tables.
			e.log.Warn().Err(err).Str("table", target.Table.String()).Msg("reencrypt skipped a table")
			fmt.Fprintf(s.out, "%s: skipped: %v\n", target.Table, err)
			skipped++
			continue
		}
		if err != nil {
			return err
		}
		e.log.Info().Str("table", target.Table.String()).Int64("scanned", res.Scanned).Int64("rewritten", res.Rewritten).
			Int64("conflicts", res.Conflicts).Int64("unresolved", res.Unresolved).Int64("failed", res.Failed).
			Int64("duplicates", res.Duplicates).Dur("elapsed", res.Elapsed).Msg("reencrypt done")
		rate := 0.0
		if secs := res.Elapsed.Seconds(); secs > 0 {
			rate = float64(res.Rewritten) / secs
		}
		fmt.Fprintf(s.out, "%s: %d rows scanned, %d rewritten, %d conflicts re-read, %d unresolved, %d failed to open, %d duplicates, in %s (%.0f rows/s)\n",
			target.Table, res.Scanned, res.Rewritten, res.Conflicts, res.Unresolved, res.Failed, res.Duplicates,
			res.Elapsed.Round(time.Millisecond), rate)
		fmt.Fprintln(s.out, "before:")
		if err := e.writeCounts(s.out, res.Before); err != nil {
			return err
		}
		fmt.Fprintln(s.out, "after:")
		if err := e.writeCounts(s.out, res.After); err != nil {
			return err
		}
		stale += res.Stale(target)
		failed += res.Failed
	}
	if stale > 0 || failed > 0 || skipped > 0 {
		return withCode(ExitIncomplete, fmt.Errorf("%d values remain under another key version, %d did not open, %d tables were skipped; run reencrypt again once the application writes under the primary version", stale, failed, skipped))
	}
	return nil
}

// progress shows a run's progress as a bar on a terminal, or as log lines.
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	log   zerolog.Logger
	every time.Duration // between log lines; negative: none
	last  time.Duration // run time at the last log line
	table string
	p     reencrypt.Progress
}

func newProgress(w io.Writer, mode string, every time.Duration, log zerolog.Logger, table string) (*progress, error) {
	p := &progress{w: w, log: log, every: every, table: table}
	switch mode {
	case "auto":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		} else {
			mode = "log"
		}
	case "bar", "log", "none":
	default:
		return nil, withCode(ExitUsage, fmt.Errorf("--progress %q: want auto, bar, log or none", mode))
	}
	switch mode {
	case "bar":
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(table),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond))
	case "none":
		p.every = -1
	}
	return p, nil
}

// update is the engine's progress callback.
func (p *progress) update(pr reencrypt.Progress) {
	p.p = pr
	if p.bar != nil {
		if p.bar.GetMax64() != pr.Total && pr.Total > 0 {
			p.bar.ChangeMax64(pr.Total)
		}
		_ = p.bar.Set64(pr.Scanned)
		return
	}
	if p.every < 0 || pr.Elapsed-p.last < p.every {
		return
	}
	p.last = pr.Elapsed
	p.logLine("reencrypt progress")
}

func (p *progress) logLine(msg string) {
	pr := p.p
	ev := p.log.Info().Str("table", p.table).Int64("scanned", pr.Scanned).Int64("total", pr.Total).
		Int64("rewritten", pr.Rewritten).Int64("conflicts", pr.Conflicts)
	if secs := pr.Elapsed.Seconds(); secs > 0 && pr.Scanned > 0 {
		rate := float64(pr.Scanned) / secs
		ev = ev.Float64("rows_per_second", rate)
		if left := pr.Total - pr.Scanned; left > 0 {
			ev = ev.Dur("eta", time.Duration(float64(left)/rate*float64(time.Second)))
		}
	}
	ev.Msg(msg)
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

// checkDBFlags adds the flags of `keys disable --check-db`.
func checkDBFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.Bool("check-db", false, "refuse if the database still holds values under this version (needs --dsn and --policy)")
	f.String("dsn", "", "PostgreSQL to check, credentials included (PGSEAL_DSN)")
	f.String("policy", "", "policy YAML naming the columns to check (PGSEAL_POLICY)")
}

// checkVersionUnused counts, in every column of the policy, the values
// under version of keySet, and refuses (exit 6) when there are any.
func checkVersionUnused(cmd *cobra.Command, s streams, e *keysEnv, keySet string, version uint32) error {
	v, err := commandViper(cmd, map[string]string{"dsn": "dsn", "policy": "policy"})
	if err != nil {
		return err
	}
	if v.GetString("dsn") == "" || v.GetString("policy") == "" {
		return withCode(ExitUsage, errors.New("--check-db needs --dsn and --policy"))
	}
	pol, err := policy.Load(v.GetString("policy"))
	if err != nil {
		return withCode(ExitConfig, err)
	}
	ctx := cmd.Context()
	ks, err := keystore.Open(ctx, e.path, e.mk)
	if err != nil {
		return keystoreCode(err)
	}
	info, err := ks.KeySet(keySet)
	if err != nil {
		return keystoreCode(err)
	}
	db, err := reencrypt.ParseDSN(v.GetString("dsn"))
	if err != nil {
		return withCode(ExitConfig, err)
	}
	conn, err := db.Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	counts, err := reencrypt.CountPolicy(ctx, conn, pol)
	if err != nil {
		return fmt.Errorf("failed to check the database: %w", err)
	}
	var n int64
	var where []string
	for _, vc := range counts {
		if vc.Kind == reencrypt.KindEnvelope && vc.KeySetID == info.ID && vc.Version == version {
			n += vc.Count
			where = append(where, fmt.Sprintf("%s.%s: %d", vc.Table, policy.QuoteIdent(vc.Column), vc.Count))
		}
	}
	if n > 0 {
		return withCode(ExitIncomplete, fmt.Errorf("key set %s version %d still protects %d values (%s); run pgseal reencrypt first",
			keySet, version, n, strings.Join(where, ", ")))
	}
	fmt.Fprintf(s.out, "checked the database: no value of the policy's columns is under key set %s version %d\n", keySet, version)
	return nil
}
