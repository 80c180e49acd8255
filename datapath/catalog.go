package datapath

import (
	"strconv"
	"strings"
	"sync"
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
	rels   map[policy.QualifiedName][]string // column names in attribute order

	mu    sync.Mutex
	views map[policy.QualifiedName]string // view definitions, names qualified

	analyzed *Snapshot // the snapshot analyzer was built for
	analyzer Analyzer
}

// Views implements rewrite.ViewLister: every view the catalog read (the
// analyzer keeps those that reach a policy table).
func (c *catalogData) Views() []policy.QualifiedName {
	out := make([]policy.QualifiedName, 0, len(c.views))
	for v := range c.views {
		out = append(out, v)
	}
	return out
}

// Columns implements rewrite.Catalog.
func (c *catalogData) Columns(schema, relation string) ([]string, bool) {
	cols, ok := c.rels[policy.QualifiedName{Schema: schema, Name: relation}]
	return cols, ok
}

// ViewQuery implements rewrite.Catalog.
func (c *catalogData) ViewQuery(schema, view string) (string, bool) {
	q, ok := c.views[policy.QualifiedName{Schema: schema, Name: view}]
	return q, ok
}

// analyzerFor returns snap's analyzer given this catalog, built once.
func (c *catalogData) analyzerFor(snap *Snapshot) Analyzer {
	ca, ok := snap.Analyzer.(CatalogAnalyzer)
	if c == nil || !ok {
		return snap.Analyzer
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.analyzed != snap {
		c.analyzed, c.analyzer = snap, ca.WithCatalog(c)
	}
	return c.analyzer
}

// lookup returns the policy column for a RowDescription field, if any.
func (c *catalogData) lookup(tableOID uint32, attnum int16) *policy.Column {
	if c == nil || tableOID == 0 {
		return nil
	}
	return c.cols[tableOID][attnum]
}

// Queries the data path runs on a session's own connection, so they see
// what the session's role sees. Both are read-only.
const (
	// relationsQuery lists the attributes of user relations: column order
	// for the analyzer and the map from RowDescription fields to policy
	// columns.
	relationsQuery = "SELECT c.oid, n.nspname, c.relname, a.attnum, a.attname FROM pg_catalog.pg_class c" +
		" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" +
		" JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped" +
		" WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND n.nspname <> 'information_schema'" +
		" AND n.nspname !~ '^pg_(catalog|toast|temp)' ORDER BY c.oid, a.attnum;"
	// searchPathQuery reads the session's effective search_path.
	searchPathQuery = "SELECT 'p', pg_catalog.array_to_string(pg_catalog.current_schemas(false), ',');"
	// viewsQuery reads view definitions with every name schema-qualified:
	// pg_get_viewdef qualifies what the search_path does not show, and the
	// empty search_path is local to the implicit transaction of the
	// injected query text (it is only sent outside a transaction block).
	viewsQuery = "SELECT pg_catalog.set_config('search_path', '', true);" +
		" SELECT 'v', n.nspname, c.relname, pg_catalog.pg_get_viewdef(c.oid) FROM pg_catalog.pg_class c" +
		" JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace" +
		" WHERE c.relkind IN ('v', 'm') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_(catalog|toast|temp)';"
)

// buildCatalog turns catalog rows into the lookup map.
func buildCatalog(p *policy.Policy, rows [][]string) *catalogData {
	cd := &catalogData{policy: p, cols: make(map[uint32]map[int16]*policy.Column),
		rels: make(map[policy.QualifiedName][]string), views: make(map[policy.QualifiedName]string)}
	for _, r := range rows {
		if len(r) == 4 && r[0] == "v" {
			cd.views[policy.QualifiedName{Schema: r[1], Name: r[2]}] = strings.TrimSuffix(strings.TrimSpace(r[3]), ";")
			continue
		}
		if len(r) != 5 {
			continue
		}
		oid, err1 := strconv.ParseUint(r[0], 10, 32)
		att, err2 := strconv.ParseInt(r[3], 10, 16)
		if err1 != nil || err2 != nil {
			continue
		}
		qn := policy.QualifiedName{Schema: r[1], Name: r[2]}
		cd.rels[qn] = append(cd.rels[qn], r[4])
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

// ddlTag reports whether a CommandComplete tag may have changed the
// relations the catalog describes.
func ddlTag(tag []byte) bool {
	for _, p := range []string{"CREATE", "ALTER", "DROP", "SELECT INTO", "IMPORT FOREIGN SCHEMA"} {
		if strings.HasPrefix(string(tag), p) {
			return true
		}
	}
	return false
}
