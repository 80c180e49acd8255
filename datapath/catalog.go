package datapath

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/pgseal/pgseal/policy"
)

// catalog maps the table OIDs and attribute numbers that RowDescription
// carries to policy columns, for one database. It is shared by the sessions
// of that database; a load swaps in a whole new map.
type catalog struct {
	data  atomic.Pointer[catalogData]
	stale atomic.Bool // reload at the next idle point
}

type catalogData struct {
	policy *policy.Policy
	cols   map[uint32]map[int16]*policy.Column
}

// lookup returns the policy column for a RowDescription field, if any.
func (c *catalogData) lookup(tableOID uint32, attnum int16) *policy.Column {
	if c == nil || tableOID == 0 {
		return nil
	}
	return c.cols[tableOID][attnum]
}

// catalogQuery returns the query that lists the attributes of the policy's
// tables, and the session's effective search_path. Both are read-only and
// run on the session's own connection, so they see what the session's role
// sees.
func catalogQuery(p *policy.Policy) string {
	var names []string
	for _, t := range p.Tables() {
		names = append(names, t.Name.Schema+"."+t.Name.Name)
	}
	var b strings.Builder
	b.WriteString("SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname FROM pg_catalog.pg_class c" +
		" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" +
		" JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped" +
		" WHERE c.relkind IN ('r', 'p', 'f') AND (n.nspname || '.' || c.relname) = ANY (")
	b.WriteString(quoteLiteral(arrayLiteral(names)))
	b.WriteString("::pg_catalog.text[]); SELECT pg_catalog.array_to_string(pg_catalog.current_schemas(false), ',')")
	return b.String()
}

// buildCatalog turns catalog rows into the lookup map.
func buildCatalog(p *policy.Policy, rows [][]string) *catalogData {
	cd := &catalogData{policy: p, cols: make(map[uint32]map[int16]*policy.Column)}
	for _, r := range rows {
		if len(r) != 5 {
			continue
		}
		oid, err1 := strconv.ParseUint(r[0], 10, 32)
		att, err2 := strconv.ParseInt(r[3], 10, 16)
		if err1 != nil || err2 != nil {
			continue
		}
		t, ok := p.Table(r[1], r[2])
		if !ok {
			continue
		}
		col, ok := t.Column(r[4])
		if !ok {
			continue
		}
		m := cd.cols[uint32(oid)]
		if m == nil {
			m = make(map[int16]*policy.Column)
			cd.cols[uint32(oid)] = m
		}
		m[int16(att)] = col
	}
	return cd
}

// arrayLiteral renders names as a PostgreSQL text[] literal's contents.
func arrayLiteral(names []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		for _, r := range n {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// quoteLiteral quotes s as a standard-conforming SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// ddlTag reports whether a CommandComplete tag may have changed the tables
// the catalog describes.
func ddlTag(tag []byte) bool {
	s := string(tag)
	for _, p := range []string{"CREATE TABLE", "ALTER TABLE", "DROP TABLE", "CREATE SCHEMA", "DROP SCHEMA", "ALTER SCHEMA", "SELECT INTO", "CREATE VIEW", "DROP VIEW", "CREATE FOREIGN TABLE", "DROP FOREIGN TABLE", "IMPORT FOREIGN SCHEMA"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

