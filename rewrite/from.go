package rewrite

import (
	"slices"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgseal/pgseal/policy"
)

// fromItem adds the entries of one FROM item to sc.
func (a *analysis) fromItem(n *pg.Node, sc *scope) error {
	switch x := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		r, err := a.relationRTE(x.RangeVar, sc)
		if err != nil {
			return err
		}
		sc.rtes = append(sc.rtes, r)
		return nil
	case *pg.Node_RangeSubselect:
		outer := &scope{parent: sc.parent, ctes: sc.ctes}
		if x.RangeSubselect.Lateral {
			outer = sc
		}
		outs, err := a.query(x.RangeSubselect.Subquery, outer, nil)
		if err != nil {
			return err
		}
		r := &rte{items: outs}
		if al := x.RangeSubselect.Alias; al != nil {
			r.refname = al.Aliasname
			if r.items, err = renameItems(outs, al.Colnames); err != nil {
				return err
			}
		}
		sc.rtes = append(sc.rtes, r)
		return nil
	case *pg.Node_JoinExpr:
		return a.joinExpr(x.JoinExpr, sc)
	case *pg.Node_RangeTableSample:
		if err := a.fromItem(x.RangeTableSample.Relation, sc); err != nil {
			return err
		}
		for _, arg := range append(slices.Clone(x.RangeTableSample.Args), x.RangeTableSample.Repeatable) {
			if err := a.use(a.expr(arg, sc))("TABLESAMPLE"); err != nil {
				return err
			}
		}
		return nil
	}
	// Functions, XMLTABLE, JSON_TABLE: their arguments may not compute on
	// ciphertext, and their output is ordinary.
	msg := n.ProtoReflect()
	which := msg.WhichOneof(msg.Descriptor().Oneofs().ByName("node"))
	if which == nil {
		return nil
	}
	var alias *pg.Alias
	switch x := n.GetNode().(type) {
	case *pg.Node_RangeFunction:
		alias = x.RangeFunction.Alias
	case *pg.Node_RangeTableFunc:
		alias = x.RangeTableFunc.Alias
	case *pg.Node_JsonTable:
		alias = x.JsonTable.Alias
	}
	if err := a.walkChildren(msg.Get(which).Message(), sc, "function in FROM"); err != nil {
		return err
	}
	r := &rte{opaque: true}
	if alias != nil {
		r.refname = alias.Aliasname
		if len(alias.Colnames) > 0 {
			r.opaque = false
			for _, c := range alias.Colnames {
				r.items = append(r.items, outItem{name: c.GetString_().GetSval()})
			}
		}
	}
	sc.rtes = append(sc.rtes, r)
	return nil
}

// renameItems applies a column alias list.
func renameItems(items []outItem, names []*pg.Node) ([]outItem, error) {
	if len(names) == 0 {
		return items, nil
	}
	out := slices.Clone(items)
	for i, n := range names {
		if i >= len(out) {
			break
		}
		if out[i].seg != nil {
			if mayCarry(out[i:]) {
				return nil, refuse("column aliases over SELECT * of a table with encrypted columns need catalog information; list the columns")
			}
			break
		}
		out[i].name = n.GetString_().GetSval()
	}
	return out, nil
}

func (a *analysis) joinExpr(j *pg.JoinExpr, sc *scope) error {
	start := len(sc.rtes)
	if err := a.fromItem(j.Larg, sc); err != nil {
		return err
	}
	mid := len(sc.rtes)
	if err := a.fromItem(j.Rarg, sc); err != nil {
		return err
	}
	left, right := sc.rtes[start:mid], sc.rtes[mid:]
	li, ri := starOf(left), starOf(right)
	using := make([]string, 0, len(j.UsingClause))
	for _, u := range j.UsingClause {
		using = append(using, u.GetString_().GetSval())
	}
	if j.IsNatural {
		if hasSegment(li) || hasSegment(ri) {
			if mayCarry(li) || mayCarry(ri) {
				return refuse("NATURAL JOIN of a table with encrypted columns needs catalog information; use JOIN ... ON")
			}
		} else {
			for _, l := range li {
				for _, r := range ri {
					if l.name == r.name && !slices.Contains(using, l.name) {
						using = append(using, l.name)
					}
				}
			}
		}
	}
	// SELECT * over a join lists the USING columns once, first, then the
	// other columns of each side.
	var items []outItem
	for _, name := range using {
		lv, rv := lookupIn(left, name), lookupIn(right, name)
		if err := a.compare(lv, rv, "JOIN USING"); err != nil {
			return err
		}
		v := lv
		if v.kind != vCol {
			v = rv
		}
		if j.Jointype == pg.JoinType_JOIN_FULL || j.Jointype == pg.JoinType_JOIN_RIGHT {
			v = v.indirect()
		}
		items = append(items, outItem{name: name, val: v})
	}
	for _, side := range [][]outItem{li, ri} {
		for _, it := range side {
			if it.seg != nil || !slices.Contains(using, it.name) {
				items = append(items, it)
			}
		}
	}
	if err := a.use(a.expr(j.Quals, sc))("JOIN condition"); err != nil {
		return err
	}
	if j.Alias != nil {
		named, err := renameItems(items, j.Alias.Colnames)
		if err != nil {
			return err
		}
		sc.rtes = append(sc.rtes[:start], &rte{refname: j.Alias.Aliasname, items: named})
		return nil
	}
	for _, r := range sc.rtes[start:] {
		r.inJoin = true
	}
	sc.rtes = append(sc.rtes, &rte{isJoin: true, items: items})
	return nil
}

// starOf expands * over entries, through joins.
func starOf(rtes []*rte) []outItem {
	var out []outItem
	for _, r := range rtes {
		if !r.inJoin {
			out = append(out, r.star()...)
		}
	}
	return out
}

func lookupIn(rtes []*rte, name string) value {
	best := plain
	for _, r := range rtes {
		if v, lr := r.lookup(name); lr == found && (best.kind != vCol) {
			best = v
		}
	}
	return best
}

func (a *analysis) withClause(w *pg.WithClause, sc *scope) error {
	for _, n := range w.Ctes {
		c := n.GetCommonTableExpr()
		if c == nil {
			continue
		}
		var outs []outItem
		var err error
		if sel := c.Ctequery.GetSelectStmt(); w.Recursive && sel != nil && sel.Op == pg.SetOperation_SETOP_UNION {
			outs, err = a.recursiveCTE(c, sel, sc)
		} else {
			outs, err = a.query(c.Ctequery, sc, nil)
		}
		if err != nil {
			return err
		}
		if outs, err = renameItems(outs, c.Aliascolnames); err != nil {
			return err
		}
		sc.ctes = &cteEnv{parent: sc.ctes, name: c.Ctename, items: outs}
	}
	return nil
}

// recursiveCTE analyses the non-recursive branch first, then the recursive
// one with the CTE's columns known.
func (a *analysis) recursiveCTE(c *pg.CommonTableExpr, sel *pg.SelectStmt, sc *scope) ([]outItem, error) {
	l, err := a.selectStmt(sel.Larg, sc, nil)
	if err != nil {
		return nil, err
	}
	named, err := renameItems(l, c.Aliascolnames)
	if err != nil {
		return nil, err
	}
	for i := range named {
		named[i].val = named[i].val.indirect()
	}
	saved := sc.ctes
	sc.ctes = &cteEnv{parent: saved, name: c.Ctename, items: named}
	r, err := a.selectStmt(sel.Rarg, sc, nil)
	sc.ctes = saved
	if err != nil {
		return nil, err
	}
	return mergeSetOp(l, r, sel)
}

// relInfo is what a relation name resolved to.
type relInfo struct {
	name  policy.QualifiedName
	table *policy.Table
	cols  []string  // catalog column names; nil when unknown
	view  []outItem // outputs of a view that may carry ciphertext
}

func (a *analysis) relationRTE(rv *pg.RangeVar, sc *scope) (*rte, error) {
	r := &rte{refname: rv.Relname}
	if e := sc.ctes.find(rv.Relname); rv.Schemaname == "" && e != nil {
		r.items = e.items
	} else {
		ri, err := a.resolveRelation(rv.Schemaname, rv.Relname)
		if err != nil {
			return nil, err
		}
		r.relSchema, r.table = ri.name.Schema, ri.table
		switch {
		case ri.view != nil:
			r.isView, r.items = true, ri.view
		case ri.cols != nil:
			for _, name := range ri.cols {
				v := plain
				if ri.table != nil {
					if c, ok := ri.table.Column(name); ok {
						v = colValue(c, true)
					}
				}
				r.items = append(r.items, outItem{name: name, val: v})
			}
		default:
			r.opaque = true
		}
	}
	if rv.Alias != nil {
		r.refname, r.relSchema = rv.Alias.Aliasname, ""
		if len(rv.Alias.Colnames) > 0 {
			if r.opaque && r.table != nil {
				return nil, refuse("column aliases for table %s, which has encrypted columns, need catalog information", r.table.Name)
			}
			items, err := renameItems(r.items, rv.Alias.Colnames)
			if err != nil {
				return nil, err
			}
			r.items = items
		}
	}
	return r, nil
}

// resolveRelation finds the relation a name denotes, through the
// search_path when it is unqualified.
func (a *analysis) resolveRelation(schema, name string) (relInfo, error) {
	if schema != "" {
		ri, _, err := a.tryRelation(schema, name)
		return ri, err
	}
	if a.pathUnknown {
		return relInfo{}, refuse("cannot resolve %s after RESET of search_path in the same query text; send the RESET on its own or qualify the name", policy.QuoteIdent(name))
	}
	path := a.path
	if !slices.Contains(path, "pg_catalog") {
		path = append([]string{"pg_catalog"}, path...)
	}
	for _, s := range path {
		if s == "" || s == "$user" {
			continue
		}
		ri, ok, err := a.tryRelation(s, name)
		if ok || err != nil {
			return ri, err
		}
	}
	return relInfo{name: policy.QualifiedName{Name: name}}, nil
}

func (a *analysis) tryRelation(schema, name string) (relInfo, bool, error) {
	ri := relInfo{name: policy.QualifiedName{Schema: schema, Name: name}}
	cat := a.az.catalog
	if t, ok := a.az.pol.Table(schema, name); ok {
		ri.table = t
		if cat != nil {
			ri.cols, _ = cat.Columns(schema, name)
		}
		return ri, true, nil
	}
	if cat == nil {
		return ri, false, nil
	}
	cols, ok := cat.Columns(schema, name)
	if !ok {
		return ri, false, nil
	}
	ri.cols = cols
	if sql, ok := cat.ViewQuery(schema, name); ok {
		items, err := a.viewItems(ri.name, sql, cols)
		if err != nil {
			return ri, true, err
		}
		if mayCarry(items) {
			ri.view = items
		}
	}
	return ri, true, nil
}

// viewItems analyses a view's definition and returns its columns, with the
// policy columns they carry.
func (a *analysis) viewItems(name policy.QualifiedName, sql string, cols []string) ([]outItem, error) {
	if a.depth >= maxViewDepth {
		return nil, refuse("view %s: views nested deeper than %d levels are not supported", name, maxViewDepth)
	}
	tree, err := pg.Parse(sql)
	if err != nil || len(tree.Stmts) != 1 || tree.Stmts[0].Stmt.GetSelectStmt() == nil {
		return nil, refuse("view %s: cannot analyse its definition", name)
	}
	sub := newAnalysis(a.az, sql, nil)
	sub.lineageOnly, sub.depth = true, a.depth+1
	outs, err := sub.selectStmt(tree.Stmts[0].Stmt.GetSelectStmt(), nil, nil)
	if err != nil {
		if r, ok := err.(*Refusal); ok {
			return nil, &Refusal{SQLState: r.SQLState, Message: r.Message + " (in the definition of view " + name.String() + ")"}
		}
		return nil, err
	}
	out := make([]outItem, len(outs))
	for i, o := range outs {
		out[i] = outItem{name: o.name, val: o.val.indirect(), seg: o.seg}
		if o.seg != nil {
			seg := *o.seg
			seg.direct = false
			out[i].seg = &seg
			continue
		}
		if i < len(cols) && !hasSegment(outs[:i]) {
			out[i].name = cols[i]
		}
	}
	return out, nil
}

// viewTouchesPolicy reports whether a view's columns may carry ciphertext.
func (a *Analyzer) viewTouchesPolicy(v policy.QualifiedName) bool {
	an := newAnalysis(a, "", nil)
	ri, _, err := an.tryRelation(v.Schema, v.Name)
	return err != nil || ri.view != nil
}
