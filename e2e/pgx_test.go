package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestPgxThroughProxy(t *testing.T) {
	env := startProxy(t)
	ctx := testCtx(t)
	conn := env.connect(t)

	t.Run("prepared statements", func(t *testing.T) {
		_, err := conn.Exec(ctx, `CREATE TABLE pgx_items (id int PRIMARY KEY, name text, price numeric, at timestamptz, data bytea)`)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Prepare(ctx, "ins", `INSERT INTO pgx_items VALUES ($1, $2, $3, $4, $5)`); err != nil {
			t.Fatal(err)
		}
		at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
		for i := range 50 {
			if _, err := conn.Exec(ctx, "ins", i, fmt.Sprintf("item-%d", i), fmt.Sprintf("%d.25", i), at, []byte{byte(i), 0, 255}); err != nil {
				t.Fatal(err)
			}
		}
		var name string
		var data []byte
		var when time.Time
		if err := conn.QueryRow(ctx, `SELECT name, data, at FROM pgx_items WHERE id = $1`, 7).Scan(&name, &data, &when); err != nil {
			t.Fatal(err)
		}
		if name != "item-7" || !bytes.Equal(data, []byte{7, 0, 255}) || !when.Equal(at) {
			t.Fatalf("got %q %x %v", name, data, when)
		}
	})

	t.Run("binary results", func(t *testing.T) {
		// Result format codes: ask for binary explicitly for every column.
		rr := conn.PgConn().ExecParams(ctx, `SELECT 42::int4, 'x'::text, 1.5::float8`, nil, nil, nil, []int16{1})
		res := rr.Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if len(res.Rows) != 1 || !bytes.Equal(res.Rows[0][0], []byte{0, 0, 0, 42}) {
			t.Fatalf("binary int4: %x", res.Rows)
		}
	})

	t.Run("pipelined batch", func(t *testing.T) {
		b := &pgx.Batch{}
		for i := range 100 {
			b.Queue(`SELECT $1::int * 2`, i)
		}
		b.Queue(`SELECT count(*) FROM pgx_items`)
		br := conn.SendBatch(ctx, b)
		for i := range 100 {
			var v int
			if err := br.QueryRow().Scan(&v); err != nil || v != i*2 {
				t.Fatalf("batch row %d: %v %d", i, err, v)
			}
		}
		var n int
		if err := br.QueryRow().Scan(&n); err != nil || n != 50 {
			t.Fatalf("count: %v %d", err, n)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("error mid-pipeline keeps the session", func(t *testing.T) {
		b := &pgx.Batch{}
		b.Queue(`SELECT 1`)
		b.Queue(`SELECT 1/0`)
		b.Queue(`SELECT 3`)
		br := conn.SendBatch(ctx, b)
		var v int
		if err := br.QueryRow().Scan(&v); err != nil {
			t.Fatal(err)
		}
		err := br.QueryRow().Scan(&v)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22012" {
			t.Fatalf("want 22012, got %v", err)
		}
		br.Close()
		if err := conn.QueryRow(ctx, `SELECT 5`).Scan(&v); err != nil || v != 5 {
			t.Fatalf("after error: %v %d", err, v)
		}
	})

	t.Run("copy in and out", func(t *testing.T) {
		if _, err := conn.Exec(ctx, `CREATE TABLE pgx_copy (id int, s text)`); err != nil {
			t.Fatal(err)
		}
		rows := make([][]any, 5000)
		for i := range rows {
			rows[i] = []any{i, strings.Repeat("z", i%50)}
		}
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"pgx_copy"}, []string{"id", "s"}, pgx.CopyFromRows(rows))
		if err != nil || n != 5000 {
			t.Fatalf("CopyFrom: %v %d", err, n)
		}
		var out bytes.Buffer
		tag, err := conn.PgConn().CopyTo(ctx, &out, `COPY pgx_copy TO STDOUT`)
		if err != nil || tag.RowsAffected() != 5000 {
			t.Fatalf("CopyTo: %v %v", err, tag)
		}
		if lines := strings.Count(out.String(), "\n"); lines != 5000 {
			t.Fatalf("copied out %d lines", lines)
		}
		_, err = conn.PgConn().CopyFrom(ctx, strings.NewReader("1\tok\n2\n"), `COPY pgx_copy FROM STDIN`)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22P04" {
			t.Fatalf("malformed COPY: want 22P04, got %v", err)
		}
	})

	t.Run("listen notify", func(t *testing.T) {
		other := env.connect(t)
		if _, err := conn.Exec(ctx, `LISTEN pgseal_chan`); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Exec(ctx, `SELECT pg_notify('pgseal_chan', 'hello')`); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		n, err := conn.WaitForNotification(wctx)
		if err != nil || n.Payload != "hello" || n.Channel != "pgseal_chan" {
			t.Fatalf("notification: %v %+v", err, n)
		}
	})

	t.Run("cancel by context", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := conn.Exec(cctx, `SELECT pg_sleep(20)`)
		if err == nil {
			t.Fatal("pg_sleep(20) was not cancelled")
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Fatalf("cancel took %v", el)
		}
		// pgx closes a connection whose query was interrupted; a new one
		// must work and the server must show the old query cancelled.
		c2 := env.connect(t)
		var v int
		if err := c2.QueryRow(ctx, `SELECT 1`).Scan(&v); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("cancel request keeps connection", func(t *testing.T) {
		pc := env.connect(t).PgConn()
		rr := make(chan error, 1)
		go func() {
			_, err := pc.Exec(ctx, `SELECT pg_sleep(20)`).ReadAll()
			rr <- err
		}()
		// Wait until the backend is really sleeping, then cancel.
		dc := direct(t)
		waitFor(t, func() bool {
			var n int
			dc.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)' AND state = 'active'`).Scan(&n)
			return n > 0
		})
		if err := pc.CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		err := <-rr
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "57014" {
			t.Fatalf("want 57014 query_canceled, got %v", err)
		}
		if _, err := pc.Exec(ctx, `SELECT 1`).ReadAll(); err != nil {
			t.Fatalf("session after cancel: %v", err)
		}
	})
}

// waitFor polls cond until it holds or 20 seconds pass.
func waitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
