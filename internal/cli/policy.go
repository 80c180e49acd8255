package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
)

// policyCheckKeys maps the configuration keys of `policy check` to its
// flags; the environment variables are PGSEAL_POLICY,
// PGSEAL_KEYSTORE_PATH, PGSEAL_KEYSTORE_MASTER_KEY and PGSEAL_DSN.
var policyCheckKeys = map[string]string{
	"policy":              "policy",
	"keystore.path":       "keystore",
	"keystore.master_key": "master-key",
	"dsn":                 "dsn",
}

// errPolicyProblems is returned by `policy check` once it has printed the
// problems it found.
var errPolicyProblems = errors.New("policy check failed")

// policyCheckConfig is what `policy check` reads from flags, environment
// and the config file.
type policyCheckConfig struct {
	Policy       string
	KeystorePath string
	MasterKey    string
	DSN          string // libpq conninfo or URL; may hold a password: never print it
}

func newPolicyCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with policy files: check",
	}
	cmd.AddCommand(newPolicyCheckCmd(s))
	return cmd
}

func newPolicyCheckCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Validate a policy against the keystore and the database",
		Long: `Validate a policy file: its syntax, its key sets against the keystore
(--keystore, --master-key) and its tables against a live database (--dsn):
each table exists, each policy column exists and is bytea, has no default
and is not generated, no unique index covers a randomized column, and no
other table inherits policy columns (partitions, inheritance children).

Each problem is printed on its own line, as FILE:LINE:COLUMN: MESSAGE where
the position is known. The exit status is 3 when there is any problem.
Without --keystore or --dsn that part of the check is skipped and a note
says so on standard error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := commandViper(cmd, policyCheckKeys)
			if err != nil {
				return err
			}
			cfg := policyCheckConfig{
				Policy:       v.GetString("policy"),
				KeystorePath: v.GetString("keystore.path"),
				MasterKey:    v.GetString("keystore.master_key"),
				DSN:          v.GetString("dsn"),
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runPolicyCheck(ctx, s, cfg)
		},
	}
	f := cmd.Flags()
	f.String("config", "", "YAML configuration file")
	f.String("policy", "", "policy YAML to check (policy, PGSEAL_POLICY)")
	f.String("keystore", "", "keystore file (keystore.path, PGSEAL_KEYSTORE_PATH)")
	f.String("master-key", "", "master-key source: file:PATH, env:VAR or passphrase (keystore.master_key, PGSEAL_KEYSTORE_MASTER_KEY)")
	f.String("dsn", "", "PostgreSQL to check the tables in, as libpq conninfo or URL (dsn, PGSEAL_DSN)")
	return cmd
}

// runPolicyCheck checks the policy, prints one line per problem to s.out and
// returns an ExitConfig error when there is any.
func runPolicyCheck(ctx context.Context, s streams, cfg policyCheckConfig) error {
	if cfg.Policy == "" {
		return withCode(ExitUsage, errors.New("no policy: pass --policy, set policy or PGSEAL_POLICY"))
	}
	if (cfg.KeystorePath == "") != (cfg.MasterKey == "") {
		return withCode(ExitUsage, errors.New("checking key sets needs both --keystore and --master-key"))
	}
	data, err := readPolicyFile(cfg.Policy)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	pol, err := policy.Parse(data, cfg.Policy)
	if err != nil {
		if !errors.Is(err, policy.ErrInvalid) {
			return withCode(ExitConfig, err)
		}
		return reportProblems(s.out, cfg.Policy, unjoin(err))
	}
	pos := findPositions(data)
	var problems []error
	var checked []string
	if cfg.KeystorePath != "" {
		mk, err := parseMasterKey(s, cfg.MasterKey, "")
		if err != nil {
			return err
		}
		ks, err := keystore.Open(ctx, cfg.KeystorePath, mk)
		if err != nil {
			return keystoreCode(err)
		}
		problems = append(problems, checkKeystore(pol, ks, pos)...)
		checked = append(checked, "key sets")
	} else {
		fmt.Fprintln(s.err, "pgseal: note: key sets not checked (no --keystore)")
	}
	if cfg.DSN != "" {
		dbProblems, err := checkDatabase(ctx, cfg.DSN, pol, pos)
		if err != nil {
			return err
		}
		problems = append(problems, dbProblems...)
		checked = append(checked, "tables")
	} else {
		fmt.Fprintln(s.err, "pgseal: note: tables not checked against a database (no --dsn)")
	}
	if len(problems) > 0 {
		return reportProblems(s.out, cfg.Policy, problems)
	}
	ncols := 0
	for _, t := range pol.Tables() {
		ncols += len(t.Columns())
	}
	what := "syntax"
	for _, c := range checked {
		what += ", " + c
	}
	fmt.Fprintf(s.out, "%s: ok: %d tables, %d columns (checked: %s)\n", cfg.Policy, len(pol.Tables()), ncols, what)
	return nil
}

// readPolicyFile reads a policy file, bounded by policy.MaxFileSize (Parse
// refuses anything longer).
func readPolicyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, policy.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read policy: %w", err)
	}
	return data, nil
}

// reportProblems prints problems in file order, one a line, and returns
// the ExitConfig error that ends the command.
func reportProblems(w io.Writer, file string, problems []error) error {
	slices.SortStableFunc(problems, func(a, b error) int {
		pa, pb := positionOf(a), positionOf(b)
		return cmp.Or(cmp.Compare(pa[0], pb[0]), cmp.Compare(pa[1], pb[1]))
	})
	for _, p := range problems {
		fmt.Fprintln(w, p)
	}
	noun := "problems"
	if len(problems) == 1 {
		noun = "problem"
	}
	return withCode(ExitConfig, fmt.Errorf("%w: %s: %d %s", errPolicyProblems, file, len(problems), noun))
}

// positionOf returns the line and column of a *policy.Error, zeros
// otherwise (which sort first).
func positionOf(err error) [2]int {
	var pe *policy.Error
	if errors.As(err, &pe) {
		return [2]int{pe.Line, pe.Column}
	}
	return [2]int{}
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// checkKeystore reports key sets the keystore lacks (with the positions
// policy.Validate gives) and columns whose cipher cannot be built from
// their key set in their mode.
func checkKeystore(pol *policy.Policy, ks *keystore.Keystore, pos positions) []error {
	exists := func(name string) bool { _, err := ks.KeySet(name); return err == nil }
	problems := pol.Validate(exists)
	for _, t := range pol.Tables() {
		for _, c := range t.Columns() {
			if !exists(c.KeySet) {
				continue // reported by Validate
			}
			if _, err := ks.Column(c.KeySet, datapath.ColumnTable(c), c.Name, datapath.EnvelopeMode(c.Mode)); err != nil {
				problems = append(problems, pos.columnError(pol, c, "column %s: key set %q cannot encrypt in mode %s: %v", c, c.KeySet, c.Mode, err))
			}
		}
	}
	return problems
}

// positions are the places of table and column names in a policy file,
// found by walking its YAML again: the policy package keeps only the
// positions of key set names.
type positions struct {
	tables  map[policy.QualifiedName][2]int
	columns map[columnRef][2]int
}

type columnRef struct {
	table  policy.QualifiedName
	column string
}

// findPositions indexes the table and column keys of a policy document.
// It only runs on a document policy.Parse accepted; anything unexpected
// leaves a name without a position.
func findPositions(data []byte) positions {
	p := positions{tables: map[policy.QualifiedName][2]int{}, columns: map[columnRef][2]int{}}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return p
	}
	root := doc.Content[0]
	for i := 0; root.Kind == yaml.MappingNode && i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "tables" || root.Content[i+1].Kind != yaml.MappingNode {
			continue
		}
		tables := root.Content[i+1].Content
		for j := 0; j+1 < len(tables); j += 2 {
			name, err := policy.ParseQualifiedName(tables[j].Value)
			if err != nil {
				continue
			}
			p.tables[name] = [2]int{tables[j].Line, tables[j].Column}
			cols := tables[j+1].Content
			for k := 0; tables[j+1].Kind == yaml.MappingNode && k+1 < len(cols); k += 2 {
				if col, err := policy.ParseIdentifier(cols[k].Value); err == nil {
					p.columns[columnRef{name, col}] = [2]int{cols[k].Line, cols[k].Column}
				}
			}
		}
	}
	return p
}

// tableError is a problem with a policy table, at the table's name.
func (p positions) tableError(pol *policy.Policy, t policy.QualifiedName, format string, args ...any) error {
	at := p.tables[t]
	return &policy.Error{File: pol.File(), Line: at[0], Column: at[1], Msg: fmt.Sprintf(format, args...)}
}

// columnError is a problem with a policy column, at the column's name.
func (p positions) columnError(pol *policy.Policy, c *policy.Column, format string, args ...any) error {
	at := p.columns[columnRef{c.Table, c.Name}]
	return &policy.Error{File: pol.File(), Line: at[0], Column: at[1], Msg: fmt.Sprintf(format, args...)}
}

// checkDatabase connects to dsn and checks every policy table there. A
// failure to connect or to read the catalog is returned as an error, the
// problems found as the slice.
func checkDatabase(ctx context.Context, dsn string, pol *policy.Policy, pos positions) ([]error, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		// pgx redacts the password in connection errors.
		return nil, withCode(ExitFailure, fmt.Errorf("failed to connect to the database: %w", err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var problems []error
	for _, t := range pol.Tables() {
		ps, err := checkTable(ctx, conn, pol, t, pos)
		if err != nil {
			return nil, withCode(ExitFailure, fmt.Errorf("failed to check table %s: %w", t.Name, err))
		}
		problems = append(problems, ps...)
	}
	return problems, nil
}

// Catalog queries of `policy check`, all read-only. They see what the
// --dsn role may see.
const (
	checkRelationQuery = "SELECT c.oid, c.relkind::text FROM pg_catalog.pg_class c" +
		" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2"
	// A domain over bytea counts as bytea: RowDescription reports the base
	// type and bytea parameters coerce to it.
	checkAttributesQuery = "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)," +
		" a.atttypid = 'pg_catalog.bytea'::pg_catalog.regtype OR t.typbasetype = 'pg_catalog.bytea'::pg_catalog.regtype," +
		" a.attgenerated <> '', a.atthasdef, a.attnum" +
		" FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid" +
		" WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped"
	checkUniqueIndexQuery = "SELECT c.relname, i.indkey::pg_catalog.int2[] FROM pg_catalog.pg_index i" +
		" JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1 AND i.indisunique ORDER BY 1"
	// Inheritance children and partitions, at any depth.
	checkChildrenQuery = "WITH RECURSIVE kids(oid) AS (" +
		"SELECT inhrelid FROM pg_catalog.pg_inherits WHERE inhparent = $1" +
		" UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN kids k ON i.inhparent = k.oid)" +
		" SELECT n.nspname, c.relname FROM kids JOIN pg_catalog.pg_class c ON c.oid = kids.oid" +
		" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2"
)

// relkindNames names the relation kinds that cannot hold policy columns.
var relkindNames = map[string]string{
	"v": "a view", "m": "a materialized view", "i": "an index", "I": "a partitioned index",
	"S": "a sequence", "c": "a composite type", "t": "a TOAST table",
}

// dbAttribute is one column of a table as the catalog describes it.
type dbAttribute struct {
	typ       string
	bytea     bool
	generated bool
	hasDef    bool
	num       int16
}

// checkTable checks one policy table in the database.
func checkTable(ctx context.Context, conn *pgx.Conn, pol *policy.Policy, t *policy.Table, pos positions) ([]error, error) {
	var oid uint32
	var relkind string
	err := conn.QueryRow(ctx, checkRelationQuery, t.Name.Schema, t.Name.Name).Scan(&oid, &relkind)
	if errors.Is(err, pgx.ErrNoRows) {
		return []error{pos.tableError(pol, t.Name, "table %s does not exist in the database", t.Name)}, nil
	}
	if err != nil {
		return nil, err
	}
	if kind, bad := relkindNames[relkind]; bad {
		return []error{pos.tableError(pol, t.Name, "%s is %s, not a table: name the table that stores the values", t.Name, kind)}, nil
	}
	rows, err := conn.Query(ctx, checkAttributesQuery, oid)
	if err != nil {
		return nil, err
	}
	attrs := map[string]dbAttribute{}
	var name string
	var a dbAttribute
	_, err = pgx.ForEachRow(rows, []any{&name, &a.typ, &a.bytea, &a.generated, &a.hasDef, &a.num}, func() error {
		attrs[name] = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	var problems []error
	byNum := map[int16]*policy.Column{}
	for _, c := range t.Columns() {
		a, ok := attrs[c.Name]
		switch {
		case !ok:
			problems = append(problems, pos.columnError(pol, c, "column %s does not exist in the database", c))
			continue
		case !a.bytea:
			problems = append(problems, pos.columnError(pol, c, "column %s is %s in the database; encrypted columns must be bytea", c, a.typ))
		case a.generated:
			problems = append(problems, pos.columnError(pol, c, "column %s is a generated column: PostgreSQL computes it from plaintext and stores it unencrypted", c))
		case a.hasDef:
			problems = append(problems, pos.columnError(pol, c, "column %s has a default: values PostgreSQL fills in are stored unencrypted and do not decrypt", c))
		}
		byNum[a.num] = c
	}
	more, err := checkUniqueIndexes(ctx, conn, pol, oid, byNum, pos)
	if err != nil {
		return nil, err
	}
	problems = append(problems, more...)
	more, err = checkChildren(ctx, conn, pol, t, oid, byNum, pos)
	if err != nil {
		return nil, err
	}
	return append(problems, more...), nil
}

// checkUniqueIndexes reports unique indexes over randomized columns: equal
// values encrypt differently, so the index cannot enforce uniqueness.
func checkUniqueIndexes(ctx context.Context, conn *pgx.Conn, pol *policy.Policy, oid uint32, byNum map[int16]*policy.Column, pos positions) ([]error, error) {
	rows, err := conn.Query(ctx, checkUniqueIndexQuery, oid)
	if err != nil {
		return nil, err
	}
	var problems []error
	var index string
	var keys []int16
	_, err = pgx.ForEachRow(rows, []any{&index, &keys}, func() error {
		for _, k := range keys {
			if c := byNum[k]; c != nil && c.Mode == policy.Randomized {
				problems = append(problems, pos.columnError(pol, c,
					"column %s is randomized, so unique index %s cannot enforce uniqueness (equal values encrypt differently); use mode deterministic",
					c, policy.QuoteIdent(index)))
			}
		}
		return nil
	})
	return problems, err
}

// checkChildren reports tables that inherit policy columns: partitions and
// inheritance children. Statements that name such a table directly bypass
// the parent's policy entry, and listing the child in the policy does not
// help, since a value's ciphertext is bound to the table it was written
// through.
func checkChildren(ctx context.Context, conn *pgx.Conn, pol *policy.Policy, t *policy.Table, oid uint32, byNum map[int16]*policy.Column, pos positions) ([]error, error) {
	if len(byNum) == 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, checkChildrenQuery, oid)
	if err != nil {
		return nil, err
	}
	var problems []error
	var child policy.QualifiedName
	_, err = pgx.ForEachRow(rows, []any{&child.Schema, &child.Name}, func() error {
		how := "is not in the policy: values written through it directly are stored unencrypted"
		if _, listed := pol.Table(child.Schema, child.Name); listed {
			how = "is in the policy too: values written through one of the two do not decrypt through the other"
		}
		problems = append(problems, pos.tableError(pol, t.Name,
			"table %s inherits the policy columns of %s (partition or inheritance child) and %s", child, t.Name, how))
		return nil
	})
	return problems, err
}
