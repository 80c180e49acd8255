package reencrypt

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgseal/pgseal/policy"
)

// byteaOID is the type OID of bytea.
const byteaOID = 17

// querier is what the catalog and count queries need: a connection
// or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// attr is one column of a table as the catalog describes it.
type attr struct {
	name    string // as stored in the catalog
	ident   string // quoted for SQL
	sqlType string // format_type: a valid cast target ("integer", "character varying(20)")
	typeOID uint32
	notNull bool
}

// tableInfo is what the engine needs to know about a table: its quoted
// name, its primary key in index order and its columns.
type tableInfo struct {
	name  policy.QualifiedName
	ident string
	keys  []attr
	cols  map[string]attr
}

// attrsQuery lists a table's live columns with their types and their
// position in the primary key (0 when not part of it).
const attrsQuery = `SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid::int8, a.attnotnull,
 coalesce((SELECT k.n FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS k(att, n) WHERE k.att = a.attnum), 0)
 FROM pg_catalog.pg_attribute a
 LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
 WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`

// loadTable reads the catalog description of name.
func loadTable(ctx context.Context, q querier, name policy.QualifiedName) (*tableInfo, error) {
	t := &tableInfo{name: name, ident: quoteTable(name), cols: make(map[string]attr)}
	rows, err := q.Query(ctx, attrsQuery, t.ident)
	if err != nil {
		return nil, fmt.Errorf("failed to read the columns of %s: %w", name, err)
	}
	keyPos := map[int]attr{}
	for rows.Next() {
		var a attr
		var oid int64
		var pos int
		if err := rows.Scan(&a.name, &a.sqlType, &oid, &a.notNull, &pos); err != nil {
			rows.Close()
			return nil, fmt.Errorf("failed to read the columns of %s: %w", name, err)
		}
		a.typeOID = uint32(oid)
		a.ident = quoteIdent(a.name)
		t.cols[a.name] = a
		if pos > 0 {
			keyPos[pos] = a
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to read the columns of %s: %w", name, err)
	}
	if len(t.cols) == 0 {
		return nil, fmt.Errorf("failed to find table %s: %w", name, ErrNoTable)
	}
	for i := 1; i <= len(keyPos); i++ {
		a, ok := keyPos[i]
		if !ok {
			return nil, fmt.Errorf("BUG: primary key of %s has a gap at position %d", name, i)
		}
		t.keys = append(t.keys, a)
	}
	return t, nil
}

// requireKey fails with ErrNoPrimaryKey for a table without a primary key.
func (t *tableInfo) requireKey() error {
	if len(t.keys) == 0 {
		return fmt.Errorf("failed to walk %s: %w", t.name, ErrNoPrimaryKey)
	}
	return nil
}

// column returns the column called name, or ErrNoColumn.
func (t *tableInfo) column(name string) (attr, error) {
	a, ok := t.cols[name]
	if !ok {
		return attr{}, fmt.Errorf("failed to find column %s.%s: %w", t.name, policy.QuoteIdent(name), ErrNoColumn)
	}
	return a, nil
}

// isKey reports whether name is part of the primary key.
func (t *tableInfo) isKey(name string) bool {
	for _, k := range t.keys {
		if k.name == name {
			return true
		}
	}
	return false
}

// quoteIdent quotes one identifier for SQL, always.
func quoteIdent(s string) string { return pgx.Identifier{s}.Sanitize() }

// quoteTable quotes a schema-qualified table name for SQL.
func quoteTable(q policy.QualifiedName) string { return pgx.Identifier{q.Schema, q.Name}.Sanitize() }

// keyList is "alias.k1, alias.k2" (or "k1, k2" without an alias).
func (t *tableInfo) keyList(alias string) string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		parts[i] = qualify(alias, k.ident)
	}
	return strings.Join(parts, ", ")
}

// keyRow is "(k1, k2)" for the row comparisons of keyset pagination.
func (t *tableInfo) keyRow(alias string) string { return "(" + t.keyList(alias) + ")" }

// keyParams is "($n::T1, $n+1::T2)": the key, sent as text, cast back.
func (t *tableInfo) keyParams(first int) string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		parts[i] = "$" + strconv.Itoa(first+i) + "::" + k.sqlType
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// keyTexts is "t.k1::text, t.k2::text": the select list that reads a key.
// Keys travel as text and come back through a cast to their own type, which
// round-trips every type with a faithful text form (all the usual key types;
// floats need extra_float_digits, which Connect sets).
func (t *tableInfo) keyTexts(alias string) string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		parts[i] = qualify(alias, k.ident) + "::text"
	}
	return strings.Join(parts, ", ")
}

// keyJoin is "t.k1 = v.k1::T1 AND ...", matching table rows to the rows of
// an unnest whose key columns are named k1..kn.
func (t *tableInfo) keyJoin(tab, v string) string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		parts[i] = fmt.Sprintf("%s = %s.k%d::%s", qualify(tab, k.ident), v, i+1, k.sqlType)
	}
	return strings.Join(parts, " AND ")
}

func qualify(alias, ident string) string {
	if alias == "" {
		return ident
	}
	return alias + "." + ident
}
