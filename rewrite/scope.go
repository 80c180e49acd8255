package rewrite

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgseal/pgseal/policy"
)

// vkind classifies what an expression is, as far as encryption cares.
type vkind uint8

const (
	vPlain   vkind = iota // an ordinary value: no ciphertext, nothing to encrypt
	vCol                  // carries the ciphertext of a policy column
	vLit                  // a literal, possibly cast
	vParam                // a $n parameter, possibly cast
	vNull                 // the NULL constant, possibly cast
	vDefault              // DEFAULT in VALUES or SET
)

// value is the analysis of one expression.
type value struct {
	kind   vkind
	col    *policy.Column   // vCol
	alts   []*policy.Column // vCol: further columns from UNION branches
	direct bool             // vCol: a bare table column (RowDescription knows it)
	lit    *pg.A_Const      // vLit
	param  int              // vParam
	loc    int              // vLit, vParam, vNull: token location
	cast   *pg.TypeCast     // outermost cast on a literal, parameter or NULL
	casts  int              // number of casts
	// fromSelect marks a value bound through INSERT ... SELECT's output list,
	// where a parameter's type is not inferred from the target column.
	fromSelect bool
}

var plain = value{}

func colValue(c *policy.Column, direct bool) value {
	return value{kind: vCol, col: c, direct: direct}
}

// across returns what a value looks like when read through a subquery,
// CTE or view column: literals and parameters become ordinary values.
func (v value) across() value {
	if v.kind == vCol {
		return value{kind: vCol, col: v.col, alts: v.alts, direct: v.direct}
	}
	return plain
}

func (v value) indirect() value {
	v = v.across()
	v.direct = false
	return v
}

func sameColumn(a, b value) bool {
	return a.kind == vCol && b.kind == vCol && a.col == b.col && len(a.alts) == 0 && len(b.alts) == 0
}

// segment is an expansion of unknown width: SELECT * over a relation whose
// columns the catalog could not list.
type segment struct {
	src    *rte
	cols   []*policy.Column // policy columns it may carry
	direct bool             // every policy column in it is a direct table column
}

// outItem is one output column of a query, or a segment of unknown width.
type outItem struct {
	name string
	val  value
	seg  *segment
}

// rte is a range table entry: something in FROM that columns resolve to.
type rte struct {
	refname   string
	relSchema string        // schema of an unaliased relation, for schema.rel.col
	table     *policy.Table // a policy table
	isView    bool          // a view whose definition reaches a policy table
	opaque    bool          // columns unknown: a base relation without catalog information
	items     []outItem     // columns in order (opaque: one segment)
	isJoin    bool          // an unaliased JOIN: only its star matters
	inJoin    bool          // part of a JOIN: expanded through the join's star
}

type lookupResult uint8

const (
	notFound lookupResult = iota
	found
	maybe // the relation may have such a column; pgseal cannot tell
)

func (r *rte) lookup(name string) (value, lookupResult) {
	if r.opaque {
		if r.table != nil {
			if c, ok := r.table.Column(name); ok {
				return colValue(c, true), found
			}
		}
		return plain, maybe
	}
	for _, it := range r.items {
		if it.seg == nil && it.name == name {
			return it.val.across(), found
		}
	}
	res := notFound
	for _, it := range r.items {
		if it.seg == nil {
			continue
		}
		v, lr := it.seg.src.lookup(name)
		if lr == found {
			if !it.seg.direct {
				v = v.indirect()
			}
			return v, found
		}
		if lr == maybe {
			res = maybe
		}
	}
	return plain, res
}

// star returns what rte.* expands to.
func (r *rte) star() []outItem {
	if r.opaque {
		seg := &segment{src: r, direct: true}
		if r.table != nil {
			seg.cols = r.table.Columns()
		}
		return []outItem{{seg: seg}}
	}
	out := make([]outItem, len(r.items))
	for i, it := range r.items {
		out[i] = outItem{name: it.name, val: it.val.across(), seg: it.seg}
	}
	return out
}

// mayCarry reports whether the items may carry ciphertext.
func mayCarry(items []outItem) bool {
	for _, it := range items {
		if it.seg != nil && len(it.seg.cols) > 0 || it.seg == nil && it.val.kind == vCol {
			return true
		}
	}
	return false
}

func hasSegment(items []outItem) bool {
	for _, it := range items {
		if it.seg != nil {
			return true
		}
	}
	return false
}

// cteEnv is the chain of common table expressions visible to a query.
type cteEnv struct {
	parent *cteEnv
	name   string
	items  []outItem
}

func (e *cteEnv) find(name string) *cteEnv {
	for ; e != nil; e = e.parent {
		if e.name == name {
			return e
		}
	}
	return nil
}

// scope is one query level: its FROM entries, the enclosing level, and the
// CTEs it can see.
type scope struct {
	parent *scope
	rtes   []*rte
	ctes   *cteEnv
}

func (s *scope) child() *scope {
	c := &scope{parent: s}
	if s != nil {
		c.ctes = s.ctes
	}
	return c
}

// findRTE finds the entry a qualified column reference names, innermost
// level first. schema is empty for rel.col references.
func (s *scope) findRTE(schema, name string) *rte {
	for ; s != nil; s = s.parent {
		for _, r := range s.rtes {
			if r.refname == name && (schema == "" || r.relSchema == schema) {
				return r
			}
		}
	}
	return nil
}

// resolveColumn resolves an unqualified column name as PostgreSQL does,
// innermost level first. When a level has relations whose columns are
// unknown and an outer level has a policy column of that name, pgseal
// cannot tell which one is meant and refuses.
func (s *scope) resolveColumn(name string) (value, error) {
	uncertain := false
	for ; s != nil; s = s.parent {
		best, got, any := plain, false, false
		for _, r := range s.rtes {
			if r.isJoin {
				continue
			}
			v, lr := r.lookup(name)
			switch lr {
			case found:
				if !got || v.kind == vCol {
					best = v
				}
				got = true
			case maybe:
				any = true
			}
		}
		if got {
			if uncertain && best.kind == vCol {
				return plain, &Refusal{SQLState: SQLStateAmbiguousColumn, Message: "pgseal: column reference " +
					policy.QuoteIdent(name) + " may refer to encrypted column " + best.col.String() +
					" or to a column of a relation pgseal has no catalog information for; qualify it"}
			}
			return best, nil
		}
		if any {
			uncertain = true
		}
	}
	return plain, nil
}

// visible reports whether a name is (or may be) a column at this level.
func (s *scope) hasColumn(name string) bool {
	for _, r := range s.rtes {
		if r.isJoin {
			continue
		}
		if _, lr := r.lookup(name); lr != notFound {
			return true
		}
	}
	return false
}
