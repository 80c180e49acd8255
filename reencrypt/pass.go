package reencrypt

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// work describes one kind of pass over a table: which values to read, how
// to turn each into its new value, and how to write the new values back
// with a compare-and-swap. Re-encryption, the encrypt-column backfill and
// the decrypt-column backfill are three works over the same pass machinery.
type work struct {
	t *tableInfo
	// exprs are select expressions over alias t, one per work column, each
	// NULL when the row needs no work in that column.
	exprs []string
	// exprArgs are the parameters exprs refer to, as $1..$len(exprArgs).
	exprArgs []any
	// needs is a boolean expression over alias t: the row needs work. Only
	// the final pass of a migration, which reads without pages, uses it.
	needs string
	// oldType and newType are the SQL element types of the old and new
	// value arrays, per column.
	oldType, newType []string
	// cas returns the condition that row tab still holds the old value of
	// column i, carried by the unnest row v as v.o<i+1>.
	cas func(tab, v string, i int) string
	// set returns the assignment of column i from v.n<i+1>.
	set func(tab, v string, i int) string
	// transform turns the old value of column i into its new value.
	transform func(i int, old []byte) ([]byte, error)
}

// pageSQL holds the statements of a work, built once.
type pageSQL struct {
	first, after, firstUpTo, between string // page reads
	update                           string
	final                            string // unpaged read of the rows that need work
}

func (w *work) sql() pageSQL {
	t := w.t
	sel := "SELECT " + t.keyTexts("t") + ", " + strings.Join(w.exprs, ", ") + " FROM " + t.ident + " t"
	order := " ORDER BY " + t.keyList("t")
	n := len(w.exprArgs)
	limit := " LIMIT $" + strconv.Itoa(n+1)
	lo := t.keyRow("t") + " > " + t.keyParams(n+2)
	loNoLimit := t.keyRow("t") + " > " + t.keyParams(n+1)
	hiAfterLo := t.keyRow("t") + " <= " + t.keyParams(n+1+len(t.keys))
	hiOnly := t.keyRow("t") + " <= " + t.keyParams(n+1)
	var s pageSQL
	s.first = sel + order + limit
	s.after = sel + " WHERE " + lo + order + limit
	s.firstUpTo = sel + " WHERE " + hiOnly + order
	s.between = sel + " WHERE " + loNoLimit + " AND " + hiAfterLo + order
	if w.needs != "" {
		s.final = sel + " WHERE " + w.needs + order
	}

	// The update: the new values arrive as arrays, unnested into rows v;
	// rows that still hold their old value are locked, skipping rows that
	// the application has locked (they are re-read later instead of waited
	// for, so the pass never waits on, or deadlocks with, an application
	// transaction); the locked rows are updated, with the comparison
	// repeated so that the update is right whatever the plan.
	var arrays, names []string
	p := 1
	for i := range t.keys {
		arrays = append(arrays, "pg_catalog.unnest($"+strconv.Itoa(p)+"::text[])")
		names = append(names, "k"+strconv.Itoa(i+1))
		p++
	}
	var casV, casL, sets []string
	for i := range w.exprs {
		arrays = append(arrays, "pg_catalog.unnest($"+strconv.Itoa(p)+"::"+w.oldType[i]+"[])", "pg_catalog.unnest($"+strconv.Itoa(p+1)+"::"+w.newType[i]+"[])")
		names = append(names, "o"+strconv.Itoa(i+1), "n"+strconv.Itoa(i+1))
		p += 2
		casV = append(casV, w.cas("t", "v", i))
		casL = append(casL, w.cas("t", "l", i))
		sets = append(sets, w.set("t", "l", i))
	}
	s.update = "WITH v AS (SELECT * FROM ROWS FROM (" + strings.Join(arrays, ", ") + ") AS v(" + strings.Join(names, ", ") + "))," +
		" l AS (SELECT v.* FROM " + t.ident + " t JOIN v ON " + t.keyJoin("t", "v") + " AND " + strings.Join(casV, " AND ") +
		" FOR NO KEY UPDATE OF t SKIP LOCKED)" +
		" UPDATE " + t.ident + " t SET " + strings.Join(sets, ", ") + " FROM l WHERE " + t.keyJoin("t", "l") + " AND " + strings.Join(casL, " AND ")
	return s
}

// dbtx is a connection or a transaction.
type dbtx interface {
	querier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// page is one page of rows read, transformed and ready to write.
type page struct {
	scanned int64
	last    []string // the last key of the page, as text
	batch   batch
	failed  int64 // values that would not transform (undecryptable, unparsable)
}

// batch is the update arrays of a page: keys per key column, old and new
// values per work column. A row that needs no work in column i has nil in
// both olds[i] and news[i].
type batch struct {
	keys       [][]string
	olds, news [][][]byte
}

func (b batch) len() int {
	if len(b.keys) == 0 {
		return 0
	}
	return len(b.keys[0])
}

// args returns the update's parameters.
func (b batch) args() []any {
	out := make([]any, 0, len(b.keys)+2*len(b.olds))
	for _, k := range b.keys {
		out = append(out, k)
	}
	for i := range b.olds {
		out = append(out, b.olds[i], b.news[i])
	}
	return out
}

// row returns a batch holding only row j.
func (b batch) row(j int) batch {
	r := batch{keys: make([][]string, len(b.keys)), olds: make([][][]byte, len(b.olds)), news: make([][][]byte, len(b.news))}
	for i := range b.keys {
		r.keys[i] = b.keys[i][j : j+1]
	}
	for i := range b.olds {
		r.olds[i] = b.olds[i][j : j+1]
		r.news[i] = b.news[i][j : j+1]
	}
	return r
}

// read runs a page query and transforms the rows that need work.
func (w *work) read(ctx context.Context, q querier, sql string, args ...any) (page, error) {
	rows, err := q.Query(ctx, sql, append(append([]any{}, w.exprArgs...), args...)...)
	if err != nil {
		return page{}, fmt.Errorf("failed to read %s: %w", w.t.name, err)
	}
	defer rows.Close()
	nk, nc := len(w.t.keys), len(w.exprs)
	p := page{batch: batch{keys: make([][]string, nk), olds: make([][][]byte, nc), news: make([][][]byte, nc)}}
	keys := make([]string, nk)
	vals := make([][]byte, nc)
	dest := make([]any, nk+nc)
	for i := range keys {
		dest[i] = &keys[i]
	}
	for i := range vals {
		dest[nk+i] = &vals[i]
	}
	for rows.Next() {
		for i := range vals {
			vals[i] = nil
		}
		if err := rows.Scan(dest...); err != nil {
			return page{}, fmt.Errorf("failed to read %s: %w", w.t.name, err)
		}
		p.scanned++
		p.last = append(p.last[:0], keys...)
		needed := false
		olds := make([][]byte, nc)
		news := make([][]byte, nc)
		for i, v := range vals {
			if v == nil {
				continue
			}
			nv, err := w.transform(i, v)
			if err != nil {
				p.failed++
				continue
			}
			olds[i], news[i], needed = v, nv, true
		}
		if !needed {
			continue
		}
		for i := range keys {
			p.batch.keys[i] = append(p.batch.keys[i], keys[i])
		}
		for i := range olds {
			p.batch.olds[i] = append(p.batch.olds[i], olds[i])
			p.batch.news[i] = append(p.batch.news[i], news[i])
		}
	}
	if err := rows.Err(); err != nil {
		return page{}, fmt.Errorf("failed to read %s: %w", w.t.name, err)
	}
	return p, nil
}

// DataError is a data exception (SQLSTATE class 22) that PostgreSQL
// raised on a value the engine wrote, such as a plaintext that does not
// cast to the column's type. PostgreSQL's own message quotes the value, so
// it is dropped: only the SQLSTATE is kept.
type DataError struct {
	Code string
}

// Error names the SQLSTATE only.
func (e *DataError) Error() string {
	return "the database refused a converted value (SQLSTATE " + e.Code + ")"
}

// hideValue replaces a data exception by a DataError.
func hideValue(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 && pe.Code[:2] == "22" {
		return &DataError{Code: pe.Code}
	}
	return err
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// write applies a batch and returns how many rows it changed and how many
// it could not change because the new value would break a unique
// constraint. A unique violation fails the whole statement, so the batch is
// then written row by row to isolate the offending rows; that is only
// possible outside a transaction (inTx false).
func (w *work) write(ctx context.Context, db dbtx, sql string, b batch, inTx bool) (changed, dups int64, err error) {
	if b.len() == 0 {
		return 0, 0, nil
	}
	tag, err := db.Exec(ctx, sql, b.args()...)
	if err == nil {
		return tag.RowsAffected(), 0, nil
	}
	if !isUniqueViolation(err) || inTx {
		return 0, 0, fmt.Errorf("failed to update %s: %w", w.t.name, hideValue(err))
	}
	for j := range b.len() {
		tag, err := db.Exec(ctx, sql, b.row(j).args()...)
		switch {
		case isUniqueViolation(err):
			dups++
		case err != nil:
			return changed, dups, fmt.Errorf("failed to update %s: %w", w.t.name, hideValue(err))
		default:
			changed += tag.RowsAffected()
		}
	}
	return changed, dups, nil
}

// keyArgs turns a key into query arguments.
func keyArgs(k []string) []any {
	out := make([]any, len(k))
	for i, v := range k {
		out[i] = v
	}
	return out
}

// pageOutcome is what became of one page after its retries.
type pageOutcome struct {
	scanned, changed, conflicts, unresolved, failed, dups int64
}

// settle writes a page that was read between lo (exclusive, nil for the
// start of the table) and p.last (inclusive), and when rows changed under
// it, re-reads that key range and writes again, up to attempts times.
// Rows still changing after that are counted as unresolved: a later run
// picks them up.
func (w *work) settle(ctx context.Context, db dbtx, s *pageSQL, lo []string, p page, attempts int) (pageOutcome, error) {
	out := pageOutcome{scanned: p.scanned}
	hi := p.last
	for attempt := 1; ; attempt++ {
		changed, dups, err := w.write(ctx, db, s.update, p.batch, false)
		if err != nil {
			return out, err
		}
		out.changed += changed
		missed := int64(p.batch.len()) - changed - dups
		if missed <= 0 || attempt >= attempts {
			out.unresolved += max(missed, 0)
			out.failed += p.failed
			out.dups += dups
			return out, nil
		}
		out.conflicts += missed
		if lo == nil {
			p, err = w.read(ctx, db, s.firstUpTo, keyArgs(hi)...)
		} else {
			p, err = w.read(ctx, db, s.between, append(keyArgs(lo), keyArgs(hi)...)...)
		}
		if err != nil {
			return out, err
		}
	}
}
