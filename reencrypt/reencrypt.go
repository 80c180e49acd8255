package reencrypt

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// Column is an encrypted column to re-encrypt and the cipher of its policy
// entry. The cipher must be built from the keystore the proxies use, with
// the table name of datapath.ColumnTable, or values will not open.
type Column struct {
	Name   string // as in the catalog: unquoted, case kept
	Cipher *envelope.ColumnCipher
}

// Target is a table and those of its encrypted columns to re-encrypt.
type Target struct {
	Table   policy.QualifiedName
	Columns []Column
}

// Options tune a run. The zero value is usable.
type Options struct {
	// BatchSize is the number of rows per page: one read, one update
	// statement. Default 1000.
	BatchSize int
	// MaxRate caps the rows rewritten per second; 0 means no cap.
	MaxRate float64
	// Writers is the number of connections that write pages at once;
	// pages are read by one more. Default 2.
	Writers int
	// Attempts is how many times a page is written when the application
	// changes its rows meanwhile, re-reading them each time. Default 5.
	Attempts int
	// Progress, when set, is called after each page from the goroutine
	// that called Run. It must return quickly.
	Progress func(Progress)
	// Clock replaces time.Now and the waits of the rate limiter (tests).
	Clock Clock
}

// Progress is the state of a run after a page.
type Progress struct {
	Table     policy.QualifiedName
	Scanned   int64 // rows read so far
	Total     int64 // rows in the table when the run started
	Rewritten int64 // rows written so far
	Conflicts int64 // rows the application changed under a page (re-read)
	Elapsed   time.Duration
}

// Result sums up a run.
type Result struct {
	Table     policy.QualifiedName
	Scanned   int64 // rows read (a re-read after a conflict is not counted twice)
	Rewritten int64 // rows whose values were rewritten
	Conflicts int64 // times a row changed between its read and its update
	// Unresolved rows kept changing through every attempt; the next run
	// picks them up.
	Unresolved int64
	// Failed values did not open with the column's cipher: malformed, from
	// another column, or under a disabled or unknown key version. They are
	// left as they are.
	Failed int64
	// Duplicates are rows whose new value would break a unique index on a
	// deterministic column: during a rotation, one plaintext can be stored
	// under the old version in one row and under the new version in another,
	// and only one of them can move. They are left as they are.
	Duplicates int64
	// Before and After count the values per key version at the start and
	// at the end.
	Before, After []VersionCount
	Elapsed       time.Duration
}

// Stale counts the values of res.After that are envelopes under another
// version than each column's primary, or under another key set: the values
// a later run (or an operator) still has to deal with.
func (res *Result) Stale(t Target) int64 {
	var n int64
	for _, vc := range res.After {
		if vc.Kind != KindEnvelope {
			continue
		}
		for _, c := range t.Columns {
			if c.Name == vc.Column && (vc.KeySetID != c.Cipher.Spec().KeySetID || vc.Version != c.Cipher.Primary()) {
				n += vc.Count
			}
		}
	}
	return n
}

// primaryHeader is the envelope header of values sealed by c now.
func primaryHeader(c *envelope.ColumnCipher) []byte {
	spec := c.Spec()
	h := []byte{envelope.FormatV1, byte(spec.Mode)}
	h = binary.BigEndian.AppendUint32(h, spec.KeySetID)
	return binary.BigEndian.AppendUint32(h, c.Primary())
}

// reencryptWork is the work of rewriting every value not under its
// column's primary version.
func reencryptWork(t *tableInfo, cols []Column) (*work, error) {
	w := &work{t: t}
	for i, c := range cols {
		a, err := t.column(c.Name)
		if err != nil {
			return nil, err
		}
		if a.typeOID != byteaOID || t.isKey(a.name) {
			return nil, fmt.Errorf("failed to re-encrypt %s.%s: type %s (want bytea, not part of the primary key): %w",
				t.name, policy.QuoteIdent(a.name), a.sqlType, ErrColumnType)
		}
		w.exprs = append(w.exprs, fmt.Sprintf("CASE WHEN pg_catalog.substr(t.%[1]s, 1, %[2]d) = $%[3]d THEN NULL ELSE t.%[1]s END",
			a.ident, envelope.HeaderSize, i+1))
		w.exprArgs = append(w.exprArgs, primaryHeader(c.Cipher))
		w.oldType = append(w.oldType, "bytea")
		w.newType = append(w.newType, "bytea")
	}
	idents := make([]string, len(cols))
	for i, c := range cols {
		idents[i] = quoteIdent(c.Name)
	}
	w.cas = func(tab, v string, i int) string {
		return fmt.Sprintf("(%[2]s.o%[3]d IS NULL OR %[1]s.%[4]s = %[2]s.o%[3]d)", tab, v, i+1, idents[i])
	}
	w.set = func(tab, v string, i int) string {
		return fmt.Sprintf("%[4]s = COALESCE(%[2]s.n%[3]d, %[1]s.%[4]s)", tab, v, i+1, idents[i])
	}
	w.transform = func(i int, old []byte) ([]byte, error) {
		c := cols[i].Cipher
		pt, err := c.Open(nil, old)
		if err != nil {
			return nil, err
		}
		defer clear(pt)
		return c.Seal(make([]byte, 0, len(pt)+envelope.Overhead(c.Spec().Mode)), pt)
	}
	return w, nil
}

// Run re-encrypts, under each column's primary version, every value of the
// target's columns that is under another version. It walks the table by
// primary key in pages of opts.BatchSize rows; each page is one read and
// one update, and the update only changes a row that still holds the value
// that was read (compare-and-swap), so a concurrent write by the
// application is never overwritten: such rows are re-read and tried again.
// It may be cancelled at any moment and run again; a new run continues
// where the data stands.
//
// Run uses 2+opts.Writers connections: one for the counts, one that reads
// pages and the writers.
func Run(ctx context.Context, db *DB, target Target, opts Options) (Result, error) {
	opts = opts.withDefaults()
	start := opts.Clock.Now()
	res := Result{Table: target.Table}
	conn, err := db.Connect(ctx)
	if err != nil {
		return res, err
	}
	defer conn.Close(context.Background())
	t, err := loadTable(ctx, conn, target.Table)
	if err != nil {
		return res, err
	}
	if err := t.requireKey(); err != nil {
		return res, err
	}
	w, err := reencryptWork(t, target.Columns)
	if err != nil {
		return res, err
	}
	names := make([]string, len(target.Columns))
	for i, c := range target.Columns {
		names[i] = c.Name
	}
	if res.Before, err = Count(ctx, conn, target.Table, names); err != nil {
		return res, err
	}
	total := rowsIn(res.Before)
	s := w.sql()
	err = runPages(ctx, db, w, &s, opts, func(o pageOutcome) {
		res.Scanned += o.scanned
		res.Rewritten += o.changed
		res.Conflicts += o.conflicts
		res.Unresolved += o.unresolved
		res.Failed += o.failed
		res.Duplicates += o.dups
		if opts.Progress != nil {
			opts.Progress(Progress{Table: target.Table, Scanned: res.Scanned, Total: total, Rewritten: res.Rewritten,
				Conflicts: res.Conflicts, Elapsed: opts.Clock.Now().Sub(start)})
		}
	})
	if err != nil {
		res.Elapsed = opts.Clock.Now().Sub(start)
		return res, err
	}
	res.Elapsed = opts.Clock.Now().Sub(start)
	if res.After, err = Count(ctx, conn, target.Table, names); err != nil {
		return res, err
	}
	return res, nil
}

// rowsIn is the number of rows in a table, from the counts of one of its
// columns.
func rowsIn(counts []VersionCount) int64 {
	var n int64
	for _, vc := range counts {
		if vc.Column == counts[0].Column {
			n += vc.Count
		}
	}
	return n
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	return o
}
