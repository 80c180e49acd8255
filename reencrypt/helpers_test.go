package reencrypt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
)

// shared is the cluster of the package's tests; each test uses its own
// tables.
var shared *pgcluster.Cluster

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c, err := pgcluster.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "reencrypt: failed to start PostgreSQL: %v\n", err)
		os.Exit(1)
	}
	shared = c
	code := m.Run()
	if err := c.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "reencrypt: failed to stop PostgreSQL: %v\n", err)
	}
	os.Exit(code)
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// testDB is the engine's view of the shared cluster.
func testDB(tb testing.TB) *DB {
	tb.Helper()
	db, err := ParseDSN(shared.ConnString("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	return db
}

// conn opens a direct connection that plays the application or the
// operator.
func conn(tb testing.TB) *pgx.Conn {
	tb.Helper()
	c, err := shared.Connect(testCtx(tb), "postgres")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func exec(tb testing.TB, c *pgx.Conn, sql string, args ...any) {
	tb.Helper()
	if _, err := c.Exec(testCtx(tb), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// keys is a keystore on disk with the key set "pii".
type keys struct {
	path string
	mk   keystore.MasterKeySource
}

func newKeys(tb testing.TB) *keys {
	tb.Helper()
	ctx := testCtx(tb)
	mk, err := keystore.NewStaticMasterKey(make([]byte, 32))
	if err != nil {
		tb.Fatal(err)
	}
	k := &keys{path: filepath.Join(tb.TempDir(), "keystore.json"), mk: mk}
	if _, err := keystore.Create(ctx, k.path, mk); err != nil {
		tb.Fatal(err)
	}
	k.edit(tb, func(ed *keystore.Editor) error { _, err := ed.AddKeySet(ctx, "pii"); return err })
	return k
}

func (k *keys) edit(tb testing.TB, f func(*keystore.Editor) error) {
	tb.Helper()
	ctx := testCtx(tb)
	ed, err := keystore.Edit(ctx, k.path, k.mk)
	if err != nil {
		tb.Fatal(err)
	}
	if err := f(ed); err != nil {
		tb.Fatal(err)
	}
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}

func (k *keys) rotate(tb testing.TB) {
	k.edit(tb, func(ed *keystore.Editor) error { _, err := ed.Rotate(testCtx(tb), "pii"); return err })
}

// cipher builds the cipher of public.table.column from the keystore as it
// stands.
func (k *keys) cipher(tb testing.TB, table, column string, mode envelope.Mode) *envelope.ColumnCipher {
	tb.Helper()
	ks, err := keystore.Open(testCtx(tb), k.path, k.mk)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ks.Column("pii", "public."+table, column, mode)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func seal(tb testing.TB, c *envelope.ColumnCipher, pt string) []byte {
	tb.Helper()
	ct, err := c.Seal(nil, []byte(pt))
	if err != nil {
		tb.Fatal(err)
	}
	return ct
}

func open(tb testing.TB, c *envelope.ColumnCipher, ct []byte) string {
	tb.Helper()
	pt, err := c.Open(nil, ct)
	if err != nil {
		tb.Fatalf("value does not open: %v", err)
	}
	return string(pt)
}

// countOf sums the counts of column col under (kind, version).
func countOf(counts []VersionCount, col string, kind Kind, version uint32) int64 {
	var n int64
	for _, vc := range counts {
		if vc.Column == col && vc.Kind == kind && (kind != KindEnvelope || vc.Version == version) {
			n += vc.Count
		}
	}
	return n
}

// policyColumn parses a one-column policy for public.table.
func policyColumn(tb testing.TB, table, column, typ, mode string) *policy.Column {
	tb.Helper()
	yaml := fmt.Sprintf("version: 1\ntables:\n  public.%s:\n    %s: {type: %s, mode: %s, key: pii}\n", table, column, typ, mode)
	p, err := policy.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	t, _ := p.Table("public", table)
	c, _ := t.Column(column)
	return c
}
