package rewrite

import (
	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgseal/pgseal/policy"
)

// targetList is what an INSERT's query feeds: the policy column behind each
// output position (nil for an ordinary column).
type targetList struct {
	cols  []*policy.Column
	known bool // false: the target's columns are unknown (and ordinary)
}

func (t *targetList) at(i int) *policy.Column {
	if t == nil || i >= len(t.cols) {
		return nil
	}
	return t.cols[i]
}

func (t *targetList) encrypted() bool {
	return t != nil && t.known && notNilAny(t.cols)
}

func notNilAny(cols []*policy.Column) bool {
	for _, c := range cols {
		if c != nil {
			return true
		}
	}
	return false
}

// query analyses a query node with enclosing scope outer. targets is set
// for the query of an INSERT.
func (a *analysis) query(n *pg.Node, outer *scope, targets *targetList) ([]outItem, error) {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		return a.selectStmt(x.SelectStmt, outer, targets)
	case *pg.Node_InsertStmt:
		return a.insertStmt(x.InsertStmt, outer)
	case *pg.Node_UpdateStmt:
		return a.updateStmt(x.UpdateStmt, outer)
	case *pg.Node_DeleteStmt:
		return a.deleteStmt(x.DeleteStmt, outer)
	case *pg.Node_MergeStmt:
		return nil, a.mergeStmt(x.MergeStmt, outer)
	}
	return nil, refuse("unsupported query form %T", n.GetNode())
}

func (a *analysis) selectStmt(s *pg.SelectStmt, outer *scope, targets *targetList) ([]outItem, error) {
	if s == nil {
		return nil, nil
	}
	sc := outer.child()
	if s.WithClause != nil {
		if err := a.withClause(s.WithClause, sc); err != nil {
			return nil, err
		}
	}
	var outs []outItem
	var err error
	switch {
	case s.Op != pg.SetOperation_SETOP_NONE:
		outs, err = a.setOp(s, sc, targets)
	case len(s.ValuesLists) > 0:
		outs, err = a.valuesLists(s.ValuesLists, sc, targets)
	default:
		outs, err = a.simpleSelect(s, sc, targets)
	}
	if err != nil {
		return nil, err
	}
	for _, o := range s.SortClause {
		if err := a.sortGroup(o.GetSortBy().GetNode(), sc, outs, "ORDER BY", true); err != nil {
			return nil, err
		}
	}
	for _, n := range []*pg.Node{s.LimitCount, s.LimitOffset} {
		if err := a.use(a.expr(n, sc))("LIMIT/OFFSET"); err != nil {
			return nil, err
		}
	}
	if s.IntoClause != nil {
		if err := a.useItems(outs, "SELECT INTO (copying ciphertext to a new table)"); err != nil {
			return nil, err
		}
	}
	return outs, nil
}

func (a *analysis) simpleSelect(s *pg.SelectStmt, sc *scope, targets *targetList) ([]outItem, error) {
	for _, f := range s.FromClause {
		if err := a.fromItem(f, sc); err != nil {
			return nil, err
		}
	}
	if err := a.use(a.expr(s.WhereClause, sc))("WHERE"); err != nil {
		return nil, err
	}
	outs, err := a.targetList(s.TargetList, sc)
	if err != nil {
		return nil, err
	}
	for _, g := range s.GroupClause {
		if err := a.groupItem(g, sc, outs); err != nil {
			return nil, err
		}
	}
	if err := a.use(a.expr(s.HavingClause, sc))("HAVING"); err != nil {
		return nil, err
	}
	for _, w := range s.WindowClause {
		if err := a.windowDef(w.GetWindowDef(), sc, outs); err != nil {
			return nil, err
		}
	}
	if len(s.DistinctClause) == 1 && s.DistinctClause[0].GetNode() == nil {
		if err := a.distinctAll(outs, "DISTINCT"); err != nil {
			return nil, err
		}
	} else {
		for _, d := range s.DistinctClause {
			if err := a.sortGroup(d, sc, outs, "DISTINCT ON", false); err != nil {
				return nil, err
			}
		}
	}
	if targets != nil {
		if err := a.bindOutputs(outs, targets); err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// distinctAll checks that every output can be compared for equality.
func (a *analysis) distinctAll(outs []outItem, op string) error {
	for _, o := range outs {
		var cols []*policy.Column
		if o.seg != nil {
			cols = o.seg.cols
		} else if o.val.kind == vCol {
			if len(o.val.alts) > 0 {
				return refuseOp(o.val.col, op+" on a UNION of encrypted columns")
			}
			cols = []*policy.Column{o.val.col}
		}
		for _, c := range cols {
			if c.Mode != deterministic {
				return refuseOp(c, op)
			}
		}
	}
	return nil
}

// bindOutputs binds the outputs of an INSERT's query to its targets.
func (a *analysis) bindOutputs(outs []outItem, t *targetList) error {
	if hasSegment(outs) {
		if t.encrypted() {
			return refuse("INSERT ... SELECT * into a table with encrypted columns needs catalog information; list the columns")
		}
		return a.useItems(outs, "INSERT ... SELECT (copying ciphertext into another column)")
	}
	for i, o := range outs {
		col := t.at(i)
		if col == nil {
			if o.val.kind == vCol {
				return refuse("INSERT ... SELECT would copy the ciphertext of encrypted column %s into a non-encrypted column", o.val.col)
			}
			continue
		}
		v := o.val
		v.fromSelect = true
		if err := a.bind(v, col, "INSERT"); err != nil {
			return err
		}
	}
	return nil
}

func (a *analysis) targetList(list []*pg.Node, sc *scope) ([]outItem, error) {
	var outs []outItem
	for _, t := range list {
		rt := t.GetResTarget()
		if rt == nil {
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && isStar(cr) {
			items, err := a.expandStar(cr, sc)
			if err != nil {
				return nil, err
			}
			outs = append(outs, items...)
			continue
		}
		v, err := a.expr(rt.Val, sc)
		if err != nil {
			return nil, err
		}
		name := rt.Name
		if name == "" {
			name = figureName(rt.Val)
		}
		outs = append(outs, outItem{name: name, val: v})
	}
	return outs, nil
}

func isStar(cr *pg.ColumnRef) bool {
	return len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}

func (a *analysis) expandStar(cr *pg.ColumnRef, sc *scope) ([]outItem, error) {
	var names []string
	for _, f := range cr.Fields {
		if s := f.GetString_(); s != nil {
			names = append(names, s.Sval)
		}
	}
	var r *rte
	switch len(names) {
	case 0:
		return starOf(sc.rtes), nil
	case 1:
		r = sc.findRTE("", names[0])
	case 2:
		r = sc.findRTE(names[0], names[1])
	default:
		r = sc.findRTE(names[len(names)-2], names[len(names)-1])
	}
	if r == nil {
		return nil, nil
	}
	return r.star(), nil
}

// figureName names an output column roughly as PostgreSQL does.
func figureName(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_ColumnRef:
		if f := x.ColumnRef.Fields; len(f) > 0 {
			if s := f[len(f)-1].GetString_(); s != nil {
				return s.Sval
			}
		}
	case *pg.Node_FuncCall:
		return aExprOp(x.FuncCall.Funcname)
	case *pg.Node_TypeCast:
		if name := figureName(x.TypeCast.Arg); name != "?column?" {
			return name
		}
		return aExprOp(x.TypeCast.TypeName.GetNames())
	case *pg.Node_SubLink:
		if x.SubLink.SubLinkType == pg.SubLinkType_EXPR_SUBLINK || x.SubLink.SubLinkType == pg.SubLinkType_ARRAY_SUBLINK {
			if tl := x.SubLink.Subselect.GetSelectStmt().GetTargetList(); len(tl) > 0 {
				if rt := tl[0].GetResTarget(); rt.GetName() != "" {
					return rt.Name
				} else if rt != nil {
					return figureName(rt.Val)
				}
			}
		}
		if x.SubLink.SubLinkType == pg.SubLinkType_EXISTS_SUBLINK {
			return "exists"
		}
	case *pg.Node_CaseExpr:
		return "case"
	case *pg.Node_CoalesceExpr:
		return "coalesce"
	}
	return "?column?"
}

// outputAt returns the output at 1-based position p.
func (a *analysis) outputAt(outs []outItem, p int, op string) (value, error) {
	for i, o := range outs {
		if o.seg != nil {
			return plain, a.useItems(outs, op+" by position over SELECT * without catalog information")
		}
		if i == p-1 {
			return o.val, nil
		}
	}
	return plain, nil
}

// sortGroup checks an ORDER BY, GROUP BY, DISTINCT ON or PARTITION BY item.
// A single name may denote an output column or an input column; both are
// checked. orderOp refuses any ciphertext; otherwise deterministic
// ciphertext is accepted (grouping is equality).
func (a *analysis) sortGroup(n *pg.Node, sc *scope, outs []outItem, op string, orderOp bool) error {
	check := func(v value) error {
		if v.kind != vCol {
			return nil
		}
		if orderOp || v.col.Mode != deterministic {
			return refuseOp(v.col, op)
		}
		if len(v.alts) > 0 {
			return refuseOp(v.col, op+" on a UNION of encrypted columns")
		}
		return nil
	}
	if c := n.GetAConst(); c != nil && c.GetIval() != nil && outs != nil {
		v, err := a.outputAt(outs, int(c.GetIval().Ival), op)
		if err != nil {
			return err
		}
		return check(v)
	}
	if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && cr.Fields[0].GetString_() != nil {
		name := cr.Fields[0].GetString_().Sval
		for _, o := range outs {
			if o.seg == nil && o.name == name {
				if err := check(o.val); err != nil {
					return err
				}
			}
		}
	}
	v, err := a.expr(n, sc)
	if err != nil {
		return err
	}
	return check(v)
}

func (a *analysis) groupItem(g *pg.Node, sc *scope, outs []outItem) error {
	if gs := g.GetGroupingSet(); gs != nil {
		for _, c := range gs.Content {
			if err := a.groupItem(c, sc, outs); err != nil {
				return err
			}
		}
		return nil
	}
	if l := g.GetRowExpr(); l != nil {
		for _, c := range l.Args {
			if err := a.groupItem(c, sc, outs); err != nil {
				return err
			}
		}
		return nil
	}
	return a.sortGroup(g, sc, outs, "GROUP BY", false)
}

func (a *analysis) setOp(s *pg.SelectStmt, sc *scope, targets *targetList) ([]outItem, error) {
	if targets.encrypted() && (s.Op != pg.SetOperation_SETOP_UNION || !s.All) {
		return nil, refuse("INSERT ... %s into encrypted columns is not supported (only UNION ALL)", setOpName(s))
	}
	l, err := a.selectStmt(s.Larg, sc, targets)
	if err != nil {
		return nil, err
	}
	r, err := a.selectStmt(s.Rarg, sc, targets)
	if err != nil {
		return nil, err
	}
	if targets != nil {
		return l, nil // each branch was bound to the targets
	}
	return mergeSetOp(l, r, s)
}

func setOpName(s *pg.SelectStmt) string {
	name := map[pg.SetOperation]string{pg.SetOperation_SETOP_UNION: "UNION",
		pg.SetOperation_SETOP_INTERSECT: "INTERSECT", pg.SetOperation_SETOP_EXCEPT: "EXCEPT"}[s.Op]
	if !s.All {
		return name
	}
	return name + " ALL"
}

// mergeSetOp lines up the outputs of two set operation branches.
func mergeSetOp(l, r []outItem, s *pg.SelectStmt) ([]outItem, error) {
	op := setOpName(s)
	if hasSegment(l) || hasSegment(r) {
		if mayCarry(l) || mayCarry(r) {
			return nil, refuse("%s over SELECT * of a table with encrypted columns needs catalog information; list the columns", op)
		}
		return []outItem{{seg: &segment{}}}, nil
	}
	out := make([]outItem, len(l))
	for i := range l {
		out[i] = outItem{name: l[i].name}
		if i >= len(r) {
			continue
		}
		lv, rv := l[i].val, r[i].val
		switch {
		case lv.kind != vCol && rv.kind != vCol:
		case lv.kind == vCol && rv.kind == vNull, lv.kind == vNull && rv.kind == vCol:
			c := lv
			if rv.kind == vCol {
				c = rv
			}
			out[i].val = c.indirect()
		case lv.kind != vCol || rv.kind != vCol:
			c := lv
			if rv.kind == vCol {
				c = rv
			}
			return nil, refuse("%s of encrypted column %s with a non-encrypted value is not supported", op, c.col)
		default:
			if lv.col.KeySet != rv.col.KeySet || lv.col.Type != rv.col.Type {
				return nil, refuse("%s of encrypted columns %s (key set %s, %s) and %s (key set %s, %s) is not supported: they need the same key set and type",
					op, lv.col, lv.col.KeySet, lv.col.Type, rv.col, rv.col.KeySet, rv.col.Type)
			}
			m := lv.indirect()
			for _, c := range append([]*policy.Column{rv.col}, rv.alts...) {
				if c != m.col && !containsCol(m.alts, c) {
					m.alts = append(append([]*policy.Column(nil), m.alts...), c)
				}
			}
			if !s.All || s.Op != pg.SetOperation_SETOP_UNION {
				if len(m.alts) > 0 {
					return nil, refuse("%s of different encrypted columns %s and %s is not supported: their ciphertexts never compare equal (use UNION ALL)", op, lv.col, rv.col)
				}
				if m.col.Mode != deterministic {
					return nil, refuseOp(m.col, op)
				}
			}
			out[i].val = m
		}
	}
	return out, nil
}

func containsCol(cols []*policy.Column, c *policy.Column) bool {
	for _, x := range cols {
		if x == c {
			return true
		}
	}
	return false
}

func (a *analysis) valuesLists(rows []*pg.Node, sc *scope, targets *targetList) ([]outItem, error) {
	var outs []outItem
	for r, row := range rows {
		for i, item := range row.GetList().GetItems() {
			v, err := a.expr(item, sc)
			if err != nil {
				return nil, err
			}
			if targets != nil {
				if col := targets.at(i); col != nil {
					if err := a.bind(v, col, "INSERT"); err != nil {
						return nil, err
					}
				} else if v.kind == vCol {
					return nil, refuse("INSERT would copy the ciphertext of encrypted column %s into a non-encrypted column", v.col)
				}
			} else if v.kind == vCol {
				return nil, refuseOp(v.col, "a VALUES list")
			}
			if r == 0 {
				outs = append(outs, outItem{name: "column" + itoa(i+1), val: v})
			}
		}
	}
	return outs, nil
}
