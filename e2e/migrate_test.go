package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/envelope"
)

// The policy pgseal serves before encrypt-column switches (and after
// decrypt-column has): another table only.
const migratePolicyPlain = `version: 1
tables:
  public.mig_other:
    secret: {type: text, mode: randomized, key: pii}
`

// The policy with the migrated column.
const migratePolicyEncrypted = migratePolicyPlain + `  public.mig_load:
    email: {type: text, mode: deterministic, key: pii}
`

func migEmail(id, gen int64) string { return fmt.Sprintf("m%d.g%d@example.com", id, gen) }

// migWorker is one application connection of the migration workload; like
// rotWorker it owns the rows whose id is congruent to its number.
type migWorker struct {
	connect func() *pgx.Conn
	conn    *pgx.Conn
	rng     *rand.Rand
	gens    map[int64]int64
	ids     []int64
	next    int64
	step    int64
	ops     int64
	errs    []error
}

// run does operations until stop is closed. Each operation holds gate for
// reading, so the test can pause the application at the switch.
func (w *migWorker) run(ctx context.Context, stop <-chan struct{}, gate *sync.RWMutex, b *opsBarrier) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		gate.RLock()
		err := w.op(ctx)
		gate.RUnlock()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.errs = append(w.errs, err)
		}
		w.ops++
		b.add()
	}
}

func (w *migWorker) op(ctx context.Context) error {
	id := w.ids[w.rng.IntN(len(w.ids))]
	switch op := w.rng.IntN(10); {
	case op < 4:
		gen := w.gens[id] + 1
		tag, err := w.conn.Exec(ctx, `UPDATE mig_load SET email = $1, gen = $2 WHERE id = $3`, migEmail(id, gen), gen, id)
		if err != nil {
			return fmt.Errorf("update of row %d: %w", id, err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("update of row %d changed %d rows", id, tag.RowsAffected())
		}
		w.gens[id] = gen
	case op < 5:
		id = w.next
		if _, err := w.conn.Exec(ctx, `INSERT INTO mig_load (id, email, gen) VALUES ($1, $2, 1)`, id, migEmail(id, 1)); err != nil {
			return fmt.Errorf("insert of row %d: %w", id, err)
		}
		w.gens[id], w.next = 1, w.next+w.step
		w.ids = append(w.ids, id)
	case op < 8:
		var email string
		var gen int64
		if err := w.conn.QueryRow(ctx, `SELECT email, gen FROM mig_load WHERE id = $1`, id).Scan(&email, &gen); err != nil {
			return fmt.Errorf("read of row %d: %w", id, err)
		}
		if gen != w.gens[id] || email != migEmail(id, gen) {
			return fmt.Errorf("row %d reads generation %d (%q), last written %d", id, gen, email, w.gens[id])
		}
	default:
		var got int64
		if err := w.conn.QueryRow(ctx, `SELECT id FROM mig_load WHERE email = $1`, migEmail(id, w.gens[id])).Scan(&got); err != nil || got != id {
			return fmt.Errorf("lookup of row %d: found %d, %v", id, got, err)
		}
	}
	return nil
}

// migChecksum is the checksum of the rows as the workload last wrote them,
// computed as the SQL of directChecksum computes it.
func migChecksum(gens map[int64]int64) string {
	ids := make([]int64, 0, len(gens))
	for id := range gens {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d:%s:%d", id, migEmail(id, gens[id]), gens[id])
	}
	sum := md5.Sum([]byte(strings.Join(parts, ",")))
	return hex.EncodeToString(sum[:])
}

// directChecksum reads the plaintext table directly.
func directChecksum(tb testing.TB) string {
	tb.Helper()
	var sum string
	err := direct(tb).QueryRow(testCtx(tb), `SELECT md5(string_agg(id || ':' || email || ':' || gen, ',' ORDER BY id)) FROM mig_load`).Scan(&sum)
	if err != nil {
		tb.Fatal(err)
	}
	return sum
}

// proxyChecksum reads the table through pgseal, decrypted.
func proxyChecksum(tb testing.TB, conn *pgx.Conn) string {
	tb.Helper()
	rows, err := conn.Query(testCtx(tb), `SELECT id, email, gen FROM mig_load`)
	if err != nil {
		tb.Fatal(err)
	}
	got := map[int64]int64{}
	for rows.Next() {
		var id, gen int64
		var email string
		if err := rows.Scan(&id, &email, &gen); err != nil {
			tb.Fatal(err)
		}
		if email != migEmail(id, gen) {
			tb.Fatalf("row %d: %q at generation %d", id, email, gen)
		}
		got[id] = gen
	}
	if rows.Err() != nil {
		tb.Fatal(rows.Err())
	}
	return migChecksum(got)
}

// TestMigrateUnderLoad is the migration acceptance test: encrypt-column on
// a plaintext table while an application writes to it through pgseal,
// then decrypt-column, each switched with the application paused for the
// moment of the switch and the policy reload. The data after each step
// equals the original plus the workload's writes (checksums), and the
// application saw no error.
//
// PGSEAL_E2E_MIGRATE_ROWS sets the table size (default 20000).
func TestMigrateUnderLoad(t *testing.T) {
	rows := envInt(t, "PGSEAL_E2E_MIGRATE_ROWS", 20000)
	bin := buildPgseal(t)
	s := startServe(t, serveOptions{policy: migratePolicyPlain, ddl: []string{
		`CREATE TABLE mig_other (id int PRIMARY KEY, secret bytea)`,
		`CREATE TABLE mig_load (id int8 PRIMARY KEY, email text NOT NULL, gen int8 NOT NULL)`,
		fmt.Sprintf(`INSERT INTO mig_load SELECT g, 'm' || g || '.g1@example.com', 1 FROM generate_series(1, %d) g`, rows),
		`CREATE INDEX mig_load_email ON mig_load (email)`,
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cliPolicy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(cliPolicy, []byte(migratePolicyEncrypted), 0o644); err != nil {
		t.Fatal(err)
	}
	dbArgs := []string{"--dsn", shared.ConnString("postgres"), "--policy", cliPolicy, "--keystore", s.keystore,
		"--master-key", s.masterKey, "--log-format", "json", "--progress", "none", "--table", "mig_load", "--column", "email"}

	const workers = 4
	stop := make(chan struct{})
	var gate sync.RWMutex
	barrier := newOpsBarrier()
	ws := make([]*migWorker, workers)
	var wg sync.WaitGroup
	for i := range ws {
		w := &migWorker{connect: func() *pgx.Conn { return s.connect(t) }, rng: rand.New(rand.NewPCG(uint64(i), 7)),
			gens: map[int64]int64{}, next: int64(rows + 1 + i), step: workers}
		w.conn = w.connect()
		for id := int64(1 + i); id <= int64(rows); id += workers {
			w.gens[id] = 1
			w.ids = append(w.ids, id)
		}
		ws[i] = w
		wg.Add(1)
		// Each worker belongs to the test: it stops when stop is closed.
		go func() {
			defer wg.Done()
			w.run(ctx, stop, &gate, barrier)
		}()
	}
	stopped := false
	stopWorkload := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer stopWorkload()
	expected := func() string {
		all := map[int64]int64{}
		for _, w := range ws {
			for id, gen := range w.gens {
				all[id] = gen
			}
		}
		return migChecksum(all)
	}
	// switchOver pauses the application, runs the switch and the policy
	// reload, checks the data, and lets the application go on with new
	// connections (see docs/migration.md: prepared statements planned for
	// the old column type must not survive the switch).
	reloads := 0
	switchOver := func(step, policy string, check func()) time.Duration {
		gate.Lock()
		defer gate.Unlock()
		start := time.Now()
		r := runCLI(t, bin, append([]string{step, "--finish"}, dbArgs...)...).must(t, 0, step+" --finish")
		t.Logf("%s --finish:\n%s", step, r.stdout)
		s.writePolicy(t, policy)
		reloads++
		s.logs.waitForNth(t, s.done, reloads, reloadLine("policy", "file changed", false))
		paused := time.Since(start)
		for _, w := range ws {
			w.conn.Close(ctx)
			w.conn = w.connect()
		}
		check()
		return paused
	}
	waitOps(t, barrier, 300)

	// encrypt-column: backfill under load, then the switch.
	r := runCLI(t, bin, append([]string{"encrypt-column", "--batch-size", "500"}, dbArgs...)...).must(t, 0, "encrypt-column")
	t.Logf("encrypt-column:\n%s", r.stdout)
	// The index that lookups use after the switch, built on the shadow
	// beforehand without blocking writers (docs/migration.md).
	if _, err := direct(t).Exec(ctx, `CREATE INDEX CONCURRENTLY mig_load_email_enc ON mig_load (email__pgseal)`); err != nil {
		t.Fatal(err)
	}
	waitOps(t, barrier, 300)
	pausedEnc := switchOver("encrypt-column", migratePolicyEncrypted, func() {
		if got, want := proxyChecksum(t, s.connect(t)), expected(); got != want {
			t.Fatalf("after encrypt-column: checksum %s, want %s", got, want)
		}
		var raw []byte
		if err := direct(t).QueryRow(ctx, `SELECT email FROM mig_load WHERE id = 1`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if h, err := envelope.Peek(raw); err != nil || h.Mode != envelope.Deterministic || strings.Contains(string(raw), "@example.com") {
			t.Fatalf("not encrypted at rest: %v", err)
		}
	})
	waitOps(t, barrier, 500)

	// decrypt-column: the rollback, under load too.
	r = runCLI(t, bin, append([]string{"decrypt-column", "--batch-size", "500"}, dbArgs...)...).must(t, 0, "decrypt-column")
	t.Logf("decrypt-column:\n%s", r.stdout)
	waitOps(t, barrier, 300)
	pausedDec := switchOver("decrypt-column", migratePolicyPlain, func() {
		if got, want := directChecksum(t), expected(); got != want {
			t.Fatalf("after decrypt-column: checksum %s, want %s", got, want)
		}
	})
	waitOps(t, barrier, 300)
	stopWorkload()

	var errs []error
	var ops int64
	for _, w := range ws {
		errs = append(errs, w.errs...)
		ops += w.ops
	}
	t.Logf("workload: %d operations, %d errors; application paused %s at the encrypt switch, %s at the decrypt switch",
		ops, len(errs), pausedEnc.Round(time.Millisecond), pausedDec.Round(time.Millisecond))
	if len(errs) > 0 {
		t.Fatalf("the application saw %d errors:\n%s", len(errs), fmtErrs(errs))
	}
	if got, want := directChecksum(t), expected(); got != want {
		t.Fatalf("final checksum %s, want %s", got, want)
	}
	var typ string
	var notNull bool
	err := direct(t).QueryRow(ctx, `SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute
		WHERE attrelid = 'mig_load'::regclass AND attname = 'email'`).Scan(&typ, &notNull)
	if err != nil || typ != "text" || !notNull {
		t.Fatalf("email is %s not null %v after the round trip (%v)", typ, notNull, err)
	}
	var extra int
	if err := direct(t).QueryRow(ctx, `SELECT count(*) FROM pg_attribute WHERE attrelid = 'mig_load'::regclass AND attnum > 0 AND NOT attisdropped`).Scan(&extra); err != nil || extra != 3 {
		t.Fatalf("%d columns left (%v)", extra, err)
	}
}
