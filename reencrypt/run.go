package reencrypt

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Clock is the time source of a run: the progress timings and the waits of
// the rate limiter.
type Clock interface {
	Now() time.Time
	// Wait blocks for d, or until ctx ends, when it returns ctx.Err().
	Wait(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacer spreads rows over time so that at most rate rows per second are
// written, measured from the first row on.
type pacer struct {
	clock Clock
	rate  float64
	start time.Time
	rows  int64
}

func newPacer(c Clock, rate float64) *pacer { return &pacer{clock: c, rate: rate, start: c.Now()} }

// add records n more rows and waits until they are due.
func (p *pacer) add(ctx context.Context, n int64) error {
	p.rows += n
	if p.rate <= 0 || n == 0 {
		return nil
	}
	due := p.start.Add(time.Duration(float64(p.rows) / p.rate * float64(time.Second)))
	if d := due.Sub(p.clock.Now()); d > 0 {
		return p.clock.Wait(ctx, d)
	}
	return nil
}

// DB is the database the engine works on: a parsed connection string
// with the session settings the engine relies on (ISO dates in UTC, floats
// printed exactly, bytea in hex). It opens connections as it needs them;
// each call closes the ones it opened. A DB is immutable and safe for
// concurrent use.
type DB struct {
	cfg *pgx.ConnConfig
}

// ParseDSN parses a libpq key=value string or a postgres:// URL,
// credentials included.
func ParseDSN(dsn string) (*DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the database connection string: %w", err)
	}
	return NewDB(cfg), nil
}

// NewDB returns a DB that connects with a copy of cfg, with the engine's
// session settings added.
func NewDB(cfg *pgx.ConnConfig) *DB {
	cfg = cfg.Copy()
	rp := cfg.RuntimeParams
	for k, v := range map[string]string{
		"DateStyle":          "ISO, MDY",
		"TimeZone":           "UTC",
		"IntervalStyle":      "postgres",
		"extra_float_digits": "3",
		"bytea_output":       "hex",
	} {
		rp[k] = v
	}
	if rp["application_name"] == "" {
		rp["application_name"] = "pgseal"
	}
	return &DB{cfg: cfg}
}

// Connect opens a connection. The caller closes it.
func (db *DB) Connect(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgx.ConnectConfig(ctx, db.cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to connect to the database: %w", err)
	}
	return c, nil
}

// String names the database without credentials.
func (db *DB) String() string {
	return fmt.Sprintf("reencrypt.DB(host=%s port=%d dbname=%s user=%s)", db.cfg.Host, db.cfg.Port, db.cfg.Database, db.cfg.User)
}

// pageItem is a page on its way from the reader to the writer, with the
// key it was read after (nil for the first page).
type pageItem struct {
	lo []string
	p  page
}

// runPages walks the table page by page: one connection reads pages and
// opts.Writers others write them, so that reading, decrypting and
// encrypting the next pages overlaps with writing the previous ones. Pages
// cover disjoint key ranges, so writers never wait for each other. onPage
// is called after each page from the calling goroutine, in the order pages
// complete.
func runPages(ctx context.Context, db *DB, w *work, s *pageSQL, opts Options, onPage func(pageOutcome)) error {
	rc, err := db.Connect(ctx)
	if err != nil {
		return err
	}
	defer rc.Close(context.Background())
	writers := make([]*pgx.Conn, opts.Writers)
	for i := range writers {
		if writers[i], err = db.Connect(ctx); err != nil {
			for _, c := range writers[:i] {
				c.Close(context.Background())
			}
			return err
		}
	}
	defer func() {
		for _, c := range writers {
			c.Close(context.Background())
		}
	}()

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan pageItem, opts.Writers)
	outcomes := make(chan pageOutcome, opts.Writers)
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var readers, writing sync.WaitGroup
	readers.Add(1)
	// The reader belongs to runPages: it stops at the end of the table, on
	// an error, or when rctx is cancelled, and closes pages on its way out.
	go func() {
		defer readers.Done()
		defer close(pages)
		if err := readPages(rctx, rc, w, s, opts, pages); err != nil {
			fail(err)
		}
	}()
	for _, wc := range writers {
		writing.Add(1)
		// Each writer belongs to runPages: it stops when pages is closed and
		// drained; after a failure it drains without writing.
		go func() {
			defer writing.Done()
			for it := range pages {
				if rctx.Err() != nil {
					continue
				}
				o, err := w.settle(rctx, wc, s, it.lo, it.p, opts.Attempts)
				if err != nil {
					fail(err)
					continue
				}
				outcomes <- o
			}
		}()
	}
	// The closer belongs to runPages: it ends once every writer has.
	go func() {
		writing.Wait()
		close(outcomes)
	}()
	for o := range outcomes {
		onPage(o)
	}
	readers.Wait()
	switch {
	case firstErr != nil && errors.Is(firstErr, context.Canceled) && ctx.Err() != nil:
		return ctx.Err()
	default:
		return firstErr
	}
}

// readPages reads and transforms pages and sends them to out.
func readPages(ctx context.Context, db dbtx, w *work, s *pageSQL, opts Options, out chan<- pageItem) error {
	pace := newPacer(opts.Clock, opts.MaxRate)
	var lo []string
	for {
		var p page
		var err error
		if lo == nil {
			p, err = w.read(ctx, db, s.first, opts.BatchSize)
		} else {
			p, err = w.read(ctx, db, s.after, append([]any{opts.BatchSize}, keyArgs(lo)...)...)
		}
		if err != nil {
			return err
		}
		if p.scanned == 0 {
			return nil
		}
		select {
		case out <- pageItem{lo: lo, p: p}:
		case <-ctx.Done():
			return ctx.Err()
		}
		if p.scanned < int64(opts.BatchSize) {
			return nil
		}
		lo = p.last
		if err := pace.add(ctx, int64(p.batch.len())); err != nil {
			return err
		}
	}
}
