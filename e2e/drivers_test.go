package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The driver tests run one client script per mainstream driver (the scripts
// live in drivers/) through pgseal: parameterised inserts into a table whose
// policy columns cover several declared types in both modes, a read-back
// compared in the script, equality lookups with parameters, explicit
// prepared statements, a refused statement (0A000) followed by a valid one on
// the same connection, and COPY where the driver has it. The test then checks
// at rest that no marker plaintext reached the database.
//
// When a script fails through pgseal, the test runs it once more straight
// against PostgreSQL, on a table with the declared types, and prints both
// outputs: a failure in both is a driver setup problem, a failure through
// pgseal only is pgseal's. PGSEAL_DRIVERS_BASELINE=1 runs the baseline
// every time.

// driverPolicyTmpl is the policy of every driver table; %[1]s is the table.
const driverPolicyTmpl = `version: 1
tables:
  public.%[1]s:
    email:  {type: text, mode: deterministic, key: pii}
    note:   {type: text, mode: randomized, key: pii}
    age:    {type: int4, mode: deterministic, key: pii}
    salary: {type: numeric, mode: randomized, key: finance}
    born:   {type: timestamptz, mode: randomized, key: pii}
    active: {type: bool, mode: deterministic, key: pii}
    token:  {type: uuid, mode: deterministic, key: pii}
    doc:    {type: jsonb, mode: randomized, key: pii}
    blob:   {type: bytea, mode: deterministic, key: finance}
`

// driverPolicyColumns are the policy columns in table order.
var driverPolicyColumns = []string{"email", "note", "age", "salary", "born", "active", "token", "doc", "blob"}

// driverDDL is the table through pgseal (policy columns are bytea).
func driverDDL(table string) string {
	return fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, name text, email bytea, note bytea, age bytea, salary bytea,
		born bytea, active bytea, token bytea, doc bytea, blob bytea)`, table)
}

// driverPlainDDL is the same table with the declared types, for the direct
// baseline run.
func driverPlainDDL(table string) string {
	return fmt.Sprintf(`CREATE TABLE %s (id int PRIMARY KEY, name text, email text, note text, age int4, salary numeric,
		born timestamptz, active bool, token uuid, doc jsonb, blob bytea)`, table)
}

// driverMarker appears in every text, jsonb and bytea value the scripts
// write to a policy column; it must never be found at rest.
const driverMarker = "MARKER"

// driverCase is one driver: how to find it, how to run its script, and the
// ids its script leaves in the table.
type driverCase struct {
	name  string
	table string
	// missing says what is not installed, or "" when the driver is usable.
	missing func() string
	// command builds the script's command line; dir is the subtest's temp
	// dir, the same for the run through pgseal and the baseline.
	command func(tb testing.TB, ctx context.Context, dir string) *exec.Cmd
	ids     []int
	// known are the ids of the script's checks that fail through pgseal for
	// a reported incompatibility: the script prints them as xfail, and as
	// XPASS (a failure) once they pass, so the entry goes when it is fixed.
	known []string
}

// systemPython is Debian's python3, which has the Debian driver packages;
// the python3 first on PATH may be another one.
const systemPython = "/usr/bin/python3"

// pgJDBCJar is where Debian's libpostgresql-jdbc-java puts the driver.
const pgJDBCJar = "/usr/share/java/postgresql.jar"

func driversDir(tb testing.TB) string {
	tb.Helper()
	d, err := filepath.Abs("drivers")
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// Known incompatibilities, by the id of the script check that shows them,
// go in a driverCase's known list. There are none at present: the eight
// this test found are fixed (binary parameters in another integer type,
// ParameterDescription of declared types, = ANY($1) with an array, FETCH
// through the extended protocol, an error before the client's Sync in a
// pipeline, = ANY of an array literal in both spellings, and decrypted text
// for a client_encoding other than UTF-8, now refused with 22021).

func pythonCase(name, table, module, script string, ids []int, known ...string) driverCase {
	return driverCase{
		name:  name,
		table: table,
		missing: func() string {
			if err := exec.Command(systemPython, "-c", "import "+module).Run(); err != nil {
				return fmt.Sprintf("%s cannot import %s (%v)", systemPython, module, err)
			}
			return ""
		},
		command: func(tb testing.TB, ctx context.Context, _ string) *exec.Cmd {
			return exec.CommandContext(ctx, systemPython, filepath.Join(driversDir(tb), "python", script))
		},
		ids:   ids,
		known: known,
	}
}

var driverCases = []driverCase{
	{
		name:  "node-postgres",
		table: "drv_node",
		missing: func() string {
			if _, err := exec.LookPath("node"); err != nil {
				return "node is not installed"
			}
			if _, err := os.Stat(filepath.Join("drivers", "node", "node_modules", "pg", "package.json")); err != nil {
				return "e2e/drivers/node/node_modules lacks pg (npm ci there)"
			}
			return ""
		},
		command: func(tb testing.TB, ctx context.Context, _ string) *exec.Cmd {
			return exec.CommandContext(ctx, "node", filepath.Join(driversDir(tb), "node", "driver.js"))
		},
		ids: []int{1, 2, 3, 4, 10, 11},
	},
	pythonCase("psycopg2", "drv_psycopg2", "psycopg2", "psycopg2_driver.py", []int{1, 2, 3, 4, 10, 11, 20, 21}),
	pythonCase("psycopg3", "drv_psycopg3", "psycopg", "psycopg3_driver.py", []int{1, 2, 3, 4, 5, 10, 11, 20, 21}),
	pythonCase("asyncpg", "drv_asyncpg", "asyncpg", "asyncpg_driver.py", []int{1, 2, 3, 4, 10, 11, 20, 21}),
	{
		name:  "jdbc",
		table: "drv_jdbc",
		missing: func() string {
			for _, tool := range []string{"javac", "java"} {
				if _, err := exec.LookPath(tool); err != nil {
					return tool + " is not installed"
				}
			}
			if _, err := os.Stat(pgJDBCJar); err != nil {
				return pgJDBCJar + " is missing (libpostgresql-jdbc-java)"
			}
			return ""
		},
		command: func(tb testing.TB, ctx context.Context, dir string) *exec.Cmd {
			if _, err := os.Stat(filepath.Join(dir, "JdbcDriver.class")); err != nil {
				src := filepath.Join(driversDir(tb), "java", "JdbcDriver.java")
				out, err := exec.CommandContext(ctx, "javac", "-d", dir, "-cp", pgJDBCJar, src).CombinedOutput()
				if err != nil {
					tb.Fatalf("javac: %v\n%s", err, out)
				}
			}
			return exec.CommandContext(ctx, "java", "-cp", dir+string(os.PathListSeparator)+pgJDBCJar, "JdbcDriver")
		},
		ids: []int{1, 2, 3, 4, 10, 11, 20, 21},
	},
}

func TestDrivers(t *testing.T) {
	for _, dc := range driverCases {
		t.Run(dc.name, func(t *testing.T) {
			t.Parallel()
			if why := dc.missing(); why != "" {
				// make test installs every driver (scripts/install-deps.sh),
				// so CI must not pass by skipping.
				if os.Getenv("CI") != "" {
					t.Fatalf("%s: %s; run scripts/install-deps.sh", dc.name, why)
				}
				t.Skipf("%s: %s; run scripts/install-deps.sh", dc.name, why)
			}
			env := startEncrypting(t, fmt.Sprintf(driverPolicyTmpl, dc.table), driverDDL(dc.table))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			dir := t.TempDir()
			out, err := runDriver(t, ctx, dc, dir, map[string]string{
				"PGSEAL_HOST":     env.host,
				"PGSEAL_PORT":     env.port,
				"PGSEAL_USER":     shared.SuperUser(),
				"PGSEAL_PASSWORD": shared.Password(),
				"PGSEAL_DB":       "postgres",
				"PGSEAL_CA":       env.caFile,
				"PGSEAL_TABLE":    dc.table,
				"PGSEAL_KNOWN":    strings.Join(dc.known, ","),
			})
			if err != nil {
				base := driverBaseline(t, ctx, dc, dir)
				t.Fatalf("%s through pgseal: %v\n%s\n--- the same script straight against PostgreSQL (declared types, no refusal check):\n%s",
					dc.name, err, out, base)
			}
			t.Logf("%s:\n%s", dc.name, out)
			if os.Getenv("PGSEAL_DRIVERS_BASELINE") != "" {
				t.Logf("%s straight against PostgreSQL:\n%s", dc.name, driverBaseline(t, ctx, dc, dir))
			}
			checkDriverAtRest(t, dc)
		})
	}
}

// runDriver runs dc's script with env added to the environment and returns
// its combined output.
func runDriver(tb testing.TB, ctx context.Context, dc driverCase, dir string, env map[string]string) (string, error) {
	tb.Helper()
	cmd := dc.command(tb, ctx, dir)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// driverBaseline runs dc's script straight against PostgreSQL on a table
// with the declared types and returns its output, to tell driver setup
// problems from pgseal's.
func driverBaseline(tb testing.TB, ctx context.Context, dc driverCase, dir string) string {
	tb.Helper()
	table := dc.table + "_direct"
	if _, err := direct(tb).Exec(ctx, driverPlainDDL(table)); err != nil {
		return "baseline table: " + err.Error()
	}
	out, err := runDriver(tb, ctx, dc, dir, map[string]string{
		"PGSEAL_HOST":     shared.Host(),
		"PGSEAL_PORT":     fmt.Sprint(shared.Port()),
		"PGSEAL_USER":     shared.SuperUser(),
		"PGSEAL_PASSWORD": shared.Password(),
		"PGSEAL_DB":       "postgres",
		"PGSEAL_CA":       shared.CACertFile(),
		"PGSEAL_TABLE":    table,
		"PGSEAL_DIRECT":   "1",
	})
	if err != nil {
		return fmt.Sprintf("%s(exit: %v)", out, err)
	}
	return out + "(baseline passed)"
}

// checkDriverAtRest checks that the script left exactly dc.ids and that no
// policy column holds the marker, or anything short enough to be plaintext.
func checkDriverAtRest(tb testing.TB, dc driverCase) {
	tb.Helper()
	ctx := testCtx(tb)
	rows, err := direct(tb).Query(ctx, fmt.Sprintf(`SELECT id, %s FROM %s ORDER BY id`, strings.Join(driverPolicyColumns, ", "), dc.table))
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var ids []int
	for rows.Next() {
		vals := make([][]byte, 1+len(driverPolicyColumns))
		ptrs := make([]any, len(vals))
		var id int
		ptrs[0] = &id
		for i := range driverPolicyColumns {
			ptrs[i+1] = &vals[i+1]
		}
		if err := rows.Scan(ptrs...); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
		for i, col := range driverPolicyColumns {
			v := vals[i+1]
			if v == nil {
				continue
			}
			if bytes.Contains(v, []byte(driverMarker)) {
				tb.Errorf("%s id %d: %s holds plaintext at rest", dc.table, id, col)
			}
			// Every envelope carries a header, a key name and a tag: no
			// ciphertext is as short as a plaintext int, bool or uuid.
			if len(v) <= 16 {
				tb.Errorf("%s id %d: %s is %d bytes at rest, too short to be ciphertext", dc.table, id, col, len(v))
			}
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	if !slices.Equal(ids, dc.ids) {
		tb.Errorf("%s holds ids %v, want %v", dc.table, ids, dc.ids)
	}
}
