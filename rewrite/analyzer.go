package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgseal/pgseal/policy"
)

// Catalog answers the questions about the database that a statement's text
// cannot: the column order of a table (for SELECT * and INSERT without a
// column list) and the definition of a view (to trace its columns back to
// policy columns). Implementations must be safe for concurrent use.
type Catalog interface {
	// Columns returns the names of the relation's columns (table or view,
	// dropped columns excluded) in attribute order, or ok=false when no
	// such relation exists. Names are as stored in pg_attribute.
	Columns(schema, relation string) (columns []string, ok bool)
	// ViewQuery returns the defining SELECT of a view, with every relation
	// name schema-qualified (for example pg_get_viewdef run with an empty
	// search_path), or ok=false when the relation is not a view.
	ViewQuery(schema, view string) (sql string, ok bool)
}

// ViewLister is an optional interface of a Catalog. When the catalog
// implements it, New adds the names of views whose definitions reach a
// policy table to the fast path's list of names that force a parse, so that
// a statement naming only such a view is analysed. Views created after New
// are seen once the caller builds a new Analyzer.
type ViewLister interface {
	Views() []policy.QualifiedName
}

// Option configures an Analyzer.
type Option func(*Analyzer)

// WithCatalog gives the Analyzer catalog information. Without it,
// SELECT * over a policy table is resolved from RowDescription, INSERT
// without a column list into a policy table is refused, unqualified names
// resolve to the first policy table on the search_path, and views are not
// recognised.
func WithCatalog(c Catalog) Option { return func(a *Analyzer) { a.catalog = c } }

// WithCacheSize bounds the plan cache: at most entries plans and bytes bytes
// of statement text. Zero entries disables the cache.
func WithCacheSize(entries, bytes int) Option {
	return func(a *Analyzer) { a.cacheEntries, a.cacheBytes = entries, bytes }
}

// Default plan cache bounds.
const (
	DefaultCacheEntries = 4096
	DefaultCacheBytes   = 32 << 20
)

// maxViewDepth bounds views defined over views.
const maxViewDepth = 16

// Analyzer analyses statement texts against one policy. It is immutable but
// for its plan cache, and safe for concurrent use; a policy reload builds a
// new Analyzer.
type Analyzer struct {
	pol          *policy.Policy
	catalog      Catalog
	pre          *prefilter // names and session keywords: the fast path
	names        *prefilter // policy names only: bodies of functions and DO
	cache        *planCache
	cacheEntries int
	cacheBytes   int
}

// New returns an Analyzer for the policy.
func New(p *policy.Policy, opts ...Option) *Analyzer {
	a := &Analyzer{pol: p, cacheEntries: DefaultCacheEntries, cacheBytes: DefaultCacheBytes}
	for _, o := range opts {
		o(a)
	}
	a.cache = newPlanCache(a.cacheEntries, a.cacheBytes)
	var names []string
	for _, t := range p.Tables() {
		names = append(names, t.Name.Name)
		for _, c := range t.Columns() {
			names = append(names, c.Name)
		}
	}
	if vl, ok := a.catalog.(ViewLister); ok {
		for _, v := range vl.Views() {
			if a.viewTouchesPolicy(v) {
				names = append(names, v.Name)
			}
		}
	}
	a.pre = newPrefilter(names, forceParse)
	a.names = newPrefilter(names, nil)
	return a
}

// Policy returns the policy the Analyzer was built from.
func (a *Analyzer) Policy() *policy.Policy { return a.pol }

// Purge empties the plan cache; call it after DDL that may change what a
// cached plan assumed (column order, views).
func (a *Analyzer) Purge() { a.cache.purge() }

// CacheLen returns the number of cached plans.
func (a *Analyzer) CacheLen() int { return a.cache.len() }

// Analyze returns the plan for a query text under the session's
// search_path (schema names as PostgreSQL normalised them; "$user" entries
// are skipped, so substitute the session user first; pg_catalog is searched
// first unless listed). A statement that cannot be accounted for yields a
// *Refusal. Results are cached by (text, search_path); the returned plan is
// shared and must not be modified.
func (a *Analyzer) Analyze(sql string, searchPath []string) (*Plan, error) {
	if !a.pre.mayMention(sql) {
		return passthroughPlan, nil
	}
	key := cacheKey(sql, searchPath)
	if p, err, ok := a.cache.get(key); ok {
		return p, err
	}
	p, err := a.analyze(sql, searchPath)
	if err != nil {
		p = nil
	}
	a.cache.put(key, p, err)
	return p, err
}

func cacheKey(sql string, path []string) string {
	n := len(sql)
	for _, s := range path {
		n += len(s) + 1
	}
	var b strings.Builder
	b.Grow(n + 1)
	b.WriteString(sql)
	for _, s := range path {
		b.WriteByte(0)
		b.WriteString(s)
	}
	return b.String()
}

func (a *Analyzer) analyze(sql string, searchPath []string) (*Plan, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, &Refusal{SQLState: SQLStateSyntaxError,
			Message: "pgseal: statement mentions an encrypted table or column but cannot be parsed: " + parseMessage(err)}
	}
	plan := &Plan{}
	path, pathKnown := searchPath, true
	for _, raw := range tree.Stmts {
		off, n := int(raw.StmtLocation), int(raw.StmtLen)
		if n == 0 {
			n = len(sql) - off
		}
		an := newAnalysis(a, sql, path)
		an.pathUnknown = !pathKnown
		st, err := an.statement(raw.Stmt, off, n)
		if err != nil {
			return nil, err
		}
		plan.Statements = append(plan.Statements, st)
		if sp := st.SearchPath; sp != nil {
			// Later statements of the same text run under the new path.
			path, pathKnown = sp.Path, !sp.Reset
		}
	}
	return plan, nil
}

// parseMessage keeps the parser's message but drops anything quoting the
// text, which could hold plaintext.
func parseMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, " at or near"); i >= 0 {
		msg = msg[:i]
	}
	return msg
}
