package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/reencrypt"
)

const rotationPolicy = `version: 1
tables:
  public.rot_load:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
`

const rotationDDL = `CREATE TABLE rot_load (id int8 PRIMARY KEY, email bytea, ssn bytea, gen int8 NOT NULL)`

func rotEmail(id, gen int64) string { return fmt.Sprintf("u%d.g%d@example.com", id, gen) }
func rotSSN(id, gen int64) string   { return fmt.Sprintf("ssn-%d-%d", id, gen) }

// rotWorker is one application connection of the rotation workload. It
// owns the rows whose id is congruent to its number, so that the last
// value it wrote to each is the row's last value.
type rotWorker struct {
	conn *pgx.Conn
	rng  *rand.Rand
	gens map[int64]int64 // owned row → generation last written
	ids  []int64
	next int64 // next id to insert
	step int64 // ids between two of its rows
	ops  [4]int64
	errs []error
}

// run does operations until stop is closed: updates, inserts, reads by
// primary key and deterministic lookups by email, each checked against
// what the worker last wrote.
func (w *rotWorker) run(ctx context.Context, stop <-chan struct{}, b *opsBarrier) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		op := w.rng.IntN(20)
		id := w.ids[w.rng.IntN(len(w.ids))]
		var err error
		switch {
		case op < 8: // update
			gen := w.gens[id] + 1
			var tag pgconn.CommandTag
			tag, err = w.conn.Exec(ctx, `UPDATE rot_load SET email = $1, ssn = $2, gen = $3 WHERE id = $4`, rotEmail(id, gen), rotSSN(id, gen), gen, id)
			if err == nil && tag.RowsAffected() != 1 {
				err = fmt.Errorf("update of row %d changed %d rows", id, tag.RowsAffected())
			}
			if err == nil {
				w.gens[id] = gen
			}
			w.ops[0]++
		case op < 10: // insert
			id = w.next
			_, err = w.conn.Exec(ctx, `INSERT INTO rot_load (id, email, ssn, gen) VALUES ($1, $2, $3, 1)`, id, rotEmail(id, 1), rotSSN(id, 1))
			if err == nil {
				w.gens[id], w.next = 1, w.next+w.step
				w.ids = append(w.ids, id)
			}
			w.ops[1]++
		case op < 15: // read by primary key
			var email, ssn string
			var gen int64
			err = w.conn.QueryRow(ctx, `SELECT email, ssn, gen FROM rot_load WHERE id = $1`, id).Scan(&email, &ssn, &gen)
			if err == nil && (gen != w.gens[id] || email != rotEmail(id, gen) || ssn != rotSSN(id, gen)) {
				err = fmt.Errorf("row %d reads generation %d (%q, %q), last written %d", id, gen, email, ssn, w.gens[id])
			}
			w.ops[2]++
		default: // deterministic lookup
			var got, gen int64
			err = w.conn.QueryRow(ctx, `SELECT id, gen FROM rot_load WHERE email = $1`, rotEmail(id, w.gens[id])).Scan(&got, &gen)
			if err == nil && (got != id || gen != w.gens[id]) {
				err = fmt.Errorf("lookup of row %d found row %d generation %d", id, got, gen)
			}
			if err != nil {
				err = fmt.Errorf("deterministic lookup of row %d: %w", id, err)
			}
			w.ops[3]++
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.errs = append(w.errs, err)
		}
		b.add()
	}
}

// buildPgseal builds cmd/pgseal into a temporary directory, for tests that
// must run the CLI as its own process (to kill it, for one).
func buildPgseal(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "pgseal")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/pgseal/pgseal/cmd/pgseal")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cliRun is one finished run of the pgseal CLI.
type cliRun struct {
	stdout, stderr string
	code           int
}

// runCLI runs the pgseal binary to completion.
func runCLI(tb testing.TB, bin string, args ...string) cliRun {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		tb.Fatalf("pgseal %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// must fails tb unless the run exited with code want.
func (r cliRun) must(tb testing.TB, want int, what string) cliRun {
	tb.Helper()
	if r.code != want {
		tb.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", what, r.code, want, r.stdout, r.stderr)
	}
	return r
}

// versionCounts parses the table `reencrypt --dry-run` prints into
// "column/version/state" → values (version "-" for NULL and malformed).
func versionCounts(tb testing.TB, out string) map[string]int64 {
	tb.Helper()
	m := map[string]int64{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] == "TABLE" {
			continue
		}
		n, err := strconv.ParseInt(f[5], 10, 64)
		if err != nil {
			continue
		}
		m[f[1]+"/"+f[3]+"/"+f[4]] += n
	}
	return m
}

// progressKiller runs the CLI with its JSON log on a pipe and kills it
// with SIGKILL once a progress line says at least half of the rows were
// scanned.
type progressKiller struct {
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	scanned int64 // at the kill
	total   int64
}

// runUntilHalf starts bin and returns once it has been killed, or fails tb
// if it ended on its own first.
func runUntilHalf(tb testing.TB, bin string, args ...string) *progressKiller {
	tb.Helper()
	k := &progressKiller{cmd: exec.Command(bin, args...)}
	pipe, err := k.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	k.cmd.Stdout = io.Discard
	if err := k.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	killed := false
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Bytes()
		k.stderr.Write(line)
		k.stderr.WriteByte('\n')
		var l struct {
			Message string `json:"message"`
			Scanned int64  `json:"scanned"`
			Total   int64  `json:"total"`
		}
		if json.Unmarshal(line, &l) != nil || l.Message != "reencrypt progress" || l.Total == 0 || 2*l.Scanned < l.Total {
			continue
		}
		once.Do(func() {
			k.scanned, k.total = l.Scanned, l.Total
			killed = k.cmd.Process.Kill() == nil // SIGKILL
		})
	}
	err = k.cmd.Wait()
	if !killed {
		tb.Fatalf("pgseal ended before it could be killed half way (%v)\n%s", err, k.stderr.String())
	}
	if k.cmd.ProcessState.ExitCode() != -1 {
		tb.Fatalf("pgseal was not killed by the signal: %v", k.cmd.ProcessState)
	}
	return k
}

// envInt reads a positive integer from the environment, or def.
func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// opsBarrier lets a test wait until the workload has done n operations
// without polling.
type opsBarrier struct {
	mu      sync.Mutex
	n       int64
	waiters map[int64][]chan struct{}
}

func newOpsBarrier() *opsBarrier { return &opsBarrier{waiters: map[int64][]chan struct{}{}} }

// add records one operation.
func (b *opsBarrier) add() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	for at, chs := range b.waiters {
		if b.n >= at {
			for _, ch := range chs {
				close(ch)
			}
			delete(b.waiters, at)
		}
	}
}

// after returns a channel closed once n more operations than now are done.
func (b *opsBarrier) after(n int64) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := make(chan struct{})
	at := b.n + n
	b.waiters[at] = append(b.waiters[at], ch)
	return ch
}

// waitOps waits for n more operations, or fails tb after a minute.
func waitOps(tb testing.TB, b *opsBarrier, n int64) {
	tb.Helper()
	select {
	case <-b.after(n):
	case <-time.After(time.Minute):
		tb.Fatalf("the workload did not do %d operations in a minute", n)
	}
}

func fmtErrs(errs []error) string {
	var b strings.Builder
	for i, err := range errs {
		if i == 10 {
			fmt.Fprintf(&b, "... and %d more\n", len(errs)-10)
			break
		}
		fmt.Fprintf(&b, "%v\n", err)
	}
	return b.String()
}

// loadRotationRows inserts rows 1..n at generation 1 through pgseal.
func loadRotationRows(tb testing.TB, conn *pgx.Conn, n int) {
	tb.Helper()
	ctx := testCtx(tb)
	for from := 1; from <= n; from += 1000 {
		b := &pgx.Batch{}
		for id := int64(from); id < int64(min(from+1000, n+1)); id++ {
			b.Queue(`INSERT INTO rot_load (id, email, ssn, gen) VALUES ($1, $2, $3, 1)`, id, rotEmail(id, 1), rotSSN(id, 1))
		}
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			tb.Fatal(err)
		}
	}
}

// rotationCounts counts the values of rot_load per key version, directly.
func rotationCounts(tb testing.TB) map[string]int64 {
	tb.Helper()
	counts, err := reencrypt.Count(testCtx(tb), direct(tb), policy.QualifiedName{Schema: "public", Name: "rot_load"}, []string{"email", "ssn"})
	if err != nil {
		tb.Fatal(err)
	}
	m := map[string]int64{}
	for _, vc := range counts {
		m[fmt.Sprintf("%s/%s/%d", vc.Column, vc.Kind, vc.Version)] += vc.Count
	}
	return m
}

// TestRotationUnderLoad is the rotation acceptance test: an application
// workload through pgseal (pgx, several connections) inserts, updates,
// reads by key and looks rows up by a deterministic column while `keys
// rotate` and `reencrypt` run; reencrypt is killed with SIGKILL half way
// and started again. Afterwards every row decrypts, every value is under
// the new version, no row is missing or extra, every row holds the last
// value the workload wrote, and no operation of the workload failed.
//
// PGSEAL_E2E_ROTATION_ROWS sets the table size: 20000 by default so that
// `make test` stays quick; the acceptance figure is 100000.
func TestRotationUnderLoad(t *testing.T) {
	rows := envInt(t, "PGSEAL_E2E_ROTATION_ROWS", 20000)
	bin := buildPgseal(t)
	s := startServe(t, serveOptions{policy: rotationPolicy, ddl: []string{rotationDDL}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	loadRotationRows(t, s.connect(t), rows)
	dbArgs := []string{"--dsn", shared.ConnString("postgres"), "--policy", s.policy, "--keystore", s.keystore, "--master-key", s.masterKey, "--log-format", "json"}
	keysArgs := []string{"--keystore", s.keystore, "--master-key", s.masterKey}

	const workers = 4
	stop := make(chan struct{})
	barrier := newOpsBarrier()
	ws := make([]*rotWorker, workers)
	var wg sync.WaitGroup
	for i := range ws {
		w := &rotWorker{conn: s.connect(t), rng: rand.New(rand.NewPCG(uint64(i), 42)), gens: map[int64]int64{},
			next: int64(rows + 1 + i), step: workers}
		for id := int64(1 + i); id <= int64(rows); id += workers {
			w.gens[id] = 1
			w.ids = append(w.ids, id)
		}
		ws[i] = w
		wg.Add(1)
		// Each worker belongs to the test: it stops when stop is closed.
		go func() {
			defer wg.Done()
			w.run(ctx, stop, barrier)
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
	waitOps(t, barrier, 500)

	// Rotate; pgseal picks the new keystore up by itself (file watch).
	runCLI(t, bin, append([]string{"keys", "rotate", "pii"}, keysArgs...)...).must(t, 0, "keys rotate")
	s.logs.waitFor(t, s.done, reloadLine("keystore", "file changed", false))
	waitOps(t, barrier, 500)

	// Re-encrypt at a capped rate, and kill it half way.
	rate := strconv.Itoa(max(rows/4, 1000)) // about four seconds for the whole table
	k := runUntilHalf(t, bin, append([]string{"reencrypt", "--all", "--batch-size", "500", "--max-rate", rate,
		"--progress", "log", "--progress-interval", "10ms"}, dbArgs...)...)
	mid := rotationCounts(t)
	t.Logf("killed at %d of %d rows scanned; values then: %v", k.scanned, k.total, mid)
	if mid["email/envelope/1"] == 0 || mid["email/envelope/2"] == 0 {
		t.Fatalf("the kill did not land half way: %v", mid)
	}
	// Half way, version 1 is still in use: disabling it must be refused.
	r := runCLI(t, bin, append([]string{"keys", "disable", "pii", "--version", "1", "--check-db", "--dsn", shared.ConnString("postgres"), "--policy", s.policy}, keysArgs...)...)
	r.must(t, 6, "keys disable --check-db half way")
	dry := runCLI(t, bin, append([]string{"reencrypt", "--all", "--dry-run"}, dbArgs...)...).must(t, 0, "reencrypt --dry-run")
	t.Logf("dry run half way:\n%s", dry.stdout)

	// Start again: it continues from what the data says.
	waitOps(t, barrier, 500)
	r = runCLI(t, bin, append([]string{"reencrypt", "--all", "--progress", "none"}, dbArgs...)...).must(t, 0, "reencrypt after the kill")
	t.Logf("second run:\n%s", r.stdout)
	waitOps(t, barrier, 500)
	stopWorkload()

	var errs []error
	var ops [4]int64
	want := map[int64]int64{}
	for _, w := range ws {
		errs = append(errs, w.errs...)
		for i := range ops {
			ops[i] += w.ops[i]
		}
		for id, gen := range w.gens {
			want[id] = gen
		}
	}
	t.Logf("workload: %d updates, %d inserts, %d reads by key, %d deterministic lookups, %d errors", ops[0], ops[1], ops[2], ops[3], len(errs))
	if len(errs) > 0 {
		t.Fatalf("the workload saw %d errors:\n%s", len(errs), fmtErrs(errs))
	}

	// Every value under version 2, and nothing else.
	after := rotationCounts(t)
	for key, n := range after {
		if !strings.HasSuffix(key, "envelope/2") && n > 0 {
			t.Fatalf("after the rotation: %d values %s (%v)", n, key, after)
		}
	}
	if after["email/envelope/2"] != int64(len(want)) || after["ssn/envelope/2"] != int64(len(want)) {
		t.Fatalf("after the rotation: %v, want %d rows", after, len(want))
	}
	// Every row opens and holds the last value written, none missing or extra.
	conn := s.connect(t)
	res, err := conn.Query(ctx, `SELECT id, email, ssn, gen FROM rot_load`)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for res.Next() {
		var id, gen int64
		var email, ssn string
		if err := res.Scan(&id, &email, &ssn, &gen); err != nil {
			t.Fatal(err)
		}
		seen++
		if wg, ok := want[id]; !ok || gen != wg || email != rotEmail(id, gen) || ssn != rotSSN(id, gen) {
			t.Fatalf("row %d: generation %d (%q, %q), want %d (known %v)", id, gen, email, ssn, wg, ok)
		}
	}
	if res.Err() != nil || seen != len(want) {
		t.Fatalf("%d rows, want %d: %v", seen, len(want), res.Err())
	}
	// Deterministic lookups find the re-encrypted rows.
	for id := int64(1); id <= int64(rows); id += int64(rows / 50) {
		var got int64
		if err := conn.QueryRow(ctx, `SELECT id FROM rot_load WHERE email = $1`, rotEmail(id, want[id])).Scan(&got); err != nil || got != id {
			t.Fatalf("lookup of row %d after the rotation: %d %v", id, got, err)
		}
	}
	// Nothing is under version 1 any more: disabling it is accepted.
	runCLI(t, bin, append([]string{"keys", "disable", "pii", "--version", "1", "--check-db", "--dsn", shared.ConnString("postgres"), "--policy", s.policy}, keysArgs...)...).
		must(t, 0, "keys disable --check-db after reencrypt")
}

// TestReencryptDryRunAndCheck: with no workload, the dry run's counts are
// the real run's "before", the real run rewrites exactly the values the dry
// run found under the old version, and `keys disable --check-db` refuses
// the old version before the run and accepts it after.
func TestReencryptDryRunAndCheck(t *testing.T) {
	bin := buildPgseal(t)
	s := startServe(t, serveOptions{policy: strings.ReplaceAll(rotationPolicy, "rot_load", "rot_dry"),
		ddl: []string{strings.ReplaceAll(rotationDDL, "rot_load", "rot_dry")}})
	ctx := testCtx(t)
	conn := s.connect(t)
	const n = 3000
	b := &pgx.Batch{}
	for id := int64(1); id <= n; id++ {
		var ssn any
		if id%5 != 0 {
			ssn = rotSSN(id, 1)
		}
		b.Queue(`INSERT INTO rot_dry (id, email, ssn, gen) VALUES ($1, $2, $3, 1)`, id, rotEmail(id, 1), ssn)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	dbArgs := []string{"--dsn", shared.ConnString("postgres"), "--policy", s.policy, "--keystore", s.keystore, "--master-key", s.masterKey, "--log-format", "json"}
	keysArgs := []string{"--keystore", s.keystore, "--master-key", s.masterKey}
	disable := append([]string{"keys", "disable", "pii", "--version", "1", "--check-db", "--dsn", shared.ConnString("postgres"), "--policy", s.policy}, keysArgs...)

	runCLI(t, bin, append([]string{"keys", "rotate", "pii"}, keysArgs...)...).must(t, 0, "keys rotate")
	s.logs.waitFor(t, s.done, reloadLine("keystore", "file changed", false))
	r := runCLI(t, bin, disable...).must(t, 6, "keys disable --check-db before reencrypt")
	if !strings.Contains(r.stderr, "5400 values") {
		t.Fatalf("refusal does not count the values:\n%s", r.stderr)
	}

	dry := versionCounts(t, runCLI(t, bin, append([]string{"reencrypt", "--table", "rot_dry", "--dry-run"}, dbArgs...)...).must(t, 0, "dry run").stdout)
	want := map[string]int64{"email/1/active": n, "ssn/1/active": n - n/5, "ssn/-/null": n / 5}
	if fmt.Sprint(dry) != fmt.Sprint(want) {
		t.Fatalf("dry run counts %v, want %v", dry, want)
	}
	r = runCLI(t, bin, append([]string{"reencrypt", "--table", "rot_dry", "--progress", "none"}, dbArgs...)...).must(t, 0, "reencrypt")
	before, after, _ := strings.Cut(r.stdout, "after:")
	if got := versionCounts(t, before); fmt.Sprint(got) != fmt.Sprint(dry) {
		t.Fatalf("the run started from %v, the dry run said %v", got, dry)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("%d rows scanned, %d rewritten", n, n)) {
		t.Fatalf("summary:\n%s", r.stdout)
	}
	wantAfter := map[string]int64{"email/2/primary": n, "ssn/2/primary": n - n/5, "ssn/-/null": n / 5}
	if got := versionCounts(t, after); fmt.Sprint(got) != fmt.Sprint(wantAfter) {
		t.Fatalf("after the run %v, want %v", got, wantAfter)
	}
	dry = versionCounts(t, runCLI(t, bin, append([]string{"reencrypt", "--table", "rot_dry", "--dry-run"}, dbArgs...)...).must(t, 0, "dry run after").stdout)
	if fmt.Sprint(dry) != fmt.Sprint(wantAfter) {
		t.Fatalf("dry run after the run %v, want %v", dry, wantAfter)
	}

	runCLI(t, bin, disable...).must(t, 0, "keys disable --check-db after reencrypt")
	if list := runCLI(t, bin, append([]string{"keys", "list"}, keysArgs...)...).must(t, 0, "keys list").stdout; !regexpDisabled(list) {
		t.Fatalf("version 1 not disabled:\n%s", list)
	}

	// A value that does not open (written around pgseal) leaves the run
	// incomplete: exit 6.
	if _, err := direct(t).Exec(ctx, `UPDATE rot_dry SET ssn = '\x0102'::bytea WHERE id = 7`); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, bin, append([]string{"reencrypt", "--all", "--progress", "none"}, dbArgs...)...).must(t, 6, "reencrypt over a malformed value")
	if !strings.Contains(r.stdout, "1 failed to open") {
		t.Fatalf("summary:\n%s", r.stdout)
	}
	runCLI(t, bin, append([]string{"reencrypt", "--table", "nope"}, dbArgs...)...).must(t, 2, "reencrypt of a table not in the policy")
}

// regexpDisabled reports whether `keys list` shows pii version 1 disabled.
func regexpDisabled(list string) bool {
	for _, line := range strings.Split(list, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[0] == "pii" && f[2] == "1" && f[3] == "disabled" {
			return true
		}
	}
	return false
}
