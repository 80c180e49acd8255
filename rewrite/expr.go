package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// expr analyses an expression in scope sc.
func (a *analysis) expr(n *pg.Node, sc *scope) (value, error) {
	if n == nil {
		return plain, nil
	}
	switch x := n.Node.(type) {
	case *pg.Node_ColumnRef:
		return a.columnRef(x.ColumnRef, sc)
	case *pg.Node_ParamRef:
		a.noteParam(int(x.ParamRef.Number))
		return value{kind: vParam, param: int(x.ParamRef.Number), loc: int(x.ParamRef.Location)}, nil
	case *pg.Node_AConst:
		if x.AConst.Isnull {
			return value{kind: vNull, loc: int(x.AConst.Location)}, nil
		}
		return value{kind: vLit, lit: x.AConst, loc: int(x.AConst.Location)}, nil
	case *pg.Node_TypeCast:
		v, err := a.expr(x.TypeCast.Arg, sc)
		if err != nil {
			return plain, err
		}
		switch v.kind {
		case vLit, vParam, vNull:
			v.cast = x.TypeCast
			v.casts++
			return v, nil
		case vCol:
			return plain, refuseOp(v.col, "cast to "+typeNameString(x.TypeCast.TypeName))
		}
		return plain, nil
	case *pg.Node_AExpr:
		return a.aExpr(x.AExpr, sc)
	case *pg.Node_BoolExpr:
		for _, arg := range x.BoolExpr.Args {
			if err := a.use(a.expr(arg, sc))("boolean operator " + strings.TrimSuffix(x.BoolExpr.Boolop.String(), "_EXPR")); err != nil {
				return plain, err
			}
		}
		return plain, nil
	case *pg.Node_NullTest:
		v, err := a.expr(x.NullTest.Arg, sc)
		if err != nil {
			return plain, err
		}
		_ = v // IS [NOT] NULL works on ciphertext in every mode
		return plain, nil
	case *pg.Node_SetToDefault:
		return value{kind: vDefault}, nil
	case *pg.Node_FuncCall:
		return a.funcCall(x.FuncCall, sc)
	case *pg.Node_SubLink:
		return a.subLink(x.SubLink, sc)
	case *pg.Node_SelectStmt, *pg.Node_InsertStmt, *pg.Node_UpdateStmt, *pg.Node_DeleteStmt:
		outs, err := a.query(n, sc, nil)
		if err != nil {
			return plain, err
		}
		return plain, a.useItems(outs, "a nested query")
	}
	return a.generic(n, sc)
}

// use returns a function that refuses op when v carries ciphertext, for
// operations that cannot work on ciphertext. It chains an error from
// computing v.
func (a *analysis) use(v value, err error) func(op string) error {
	return func(op string) error {
		if err != nil {
			return err
		}
		if v.kind == vCol {
			return refuseOp(v.col, op)
		}
		return nil
	}
}

func (a *analysis) useItems(items []outItem, op string) error {
	for _, it := range items {
		if it.seg != nil && len(it.seg.cols) > 0 {
			return refuseOp(it.seg.cols[0], op)
		}
		if it.seg == nil && it.val.kind == vCol {
			return refuseOp(it.val.col, op)
		}
	}
	return nil
}

// generic handles every expression node without a rule of its own: each
// sub-expression is analysed, and any that carries ciphertext is refused,
// since the node computes something from it.
func (a *analysis) generic(n *pg.Node, sc *scope) (value, error) {
	msg := n.ProtoReflect()
	which := msg.WhichOneof(msg.Descriptor().Oneofs().ByName("node"))
	if which == nil {
		return plain, nil
	}
	op := string(which.Message().Name())
	inner := msg.Get(which).Message()
	return plain, a.walkChildren(inner, sc, op)
}

var nodeDescriptor = (&pg.Node{}).ProtoReflect().Descriptor()

func (a *analysis) walkChildren(m protoreflect.Message, sc *scope, op string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		visit := func(mv protoreflect.Message) {
			if mv.Descriptor() == nodeDescriptor {
				err = a.use(a.expr(mv.Interface().(*pg.Node), sc))(opName(op))
			} else {
				err = a.walkChildren(mv, sc, op)
			}
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				visit(l.Get(i).Message())
			}
		} else if !fd.IsMap() {
			visit(v.Message())
		}
		return err == nil
	})
	return err
}

// opName turns a parse node name into words for messages.
func opName(node string) string {
	switch node {
	case "CaseExpr", "CaseWhen":
		return "CASE"
	case "CoalesceExpr":
		return "COALESCE"
	case "MinMaxExpr":
		return "GREATEST/LEAST"
	case "RowExpr":
		return "a row constructor"
	case "A_ArrayExpr":
		return "an ARRAY constructor"
	case "A_Indirection":
		return "subscripting or field selection"
	case "CollateClause":
		return "COLLATE"
	case "BooleanTest":
		return "IS TRUE/FALSE/UNKNOWN"
	}
	return "expression " + node
}

func (a *analysis) columnRef(cr *pg.ColumnRef, sc *scope) (value, error) {
	var names []string
	star := false
	for _, f := range cr.Fields {
		switch x := f.Node.(type) {
		case *pg.Node_String_:
			names = append(names, x.String_.Sval)
		case *pg.Node_AStar:
			star = true
		}
	}
	if star {
		// A whole-row reference in an expression (t.* or t).
		items, err := a.expandStar(cr, sc)
		if err != nil {
			return plain, err
		}
		return plain, a.useItems(items, "a whole-row reference")
	}
	switch len(names) {
	case 1:
		v, err := sc.resolveColumn(names[0])
		if err != nil {
			return plain, err
		}
		if v.kind == vPlain && sc.findRTE("", names[0]) != nil {
			// A bare table name is a whole-row reference.
			if r := sc.findRTE("", names[0]); mayCarry(r.star()) {
				return plain, a.useItems(r.star(), "a whole-row reference")
			}
		}
		return v, nil
	case 2, 3, 4:
		var r *rte
		var col string
		switch len(names) {
		case 2:
			r, col = sc.findRTE("", names[0]), names[1]
		case 3:
			r, col = sc.findRTE(names[0], names[1]), names[2]
			if r == nil {
				// rel.col.field
				if r2 := sc.findRTE("", names[0]); r2 != nil {
					v, _ := r2.lookup(names[1])
					return plain, a.use(v, nil)("field selection")
				}
			}
		case 4:
			r, col = sc.findRTE(names[1], names[2]), names[3]
		}
		if r != nil {
			v, _ := r.lookup(col)
			return v, nil
		}
		if len(names) == 2 {
			// col.field: field selection from a composite column.
			v, err := sc.resolveColumn(names[0])
			return plain, a.use(v, err)("field selection")
		}
	}
	return plain, nil
}

func aExprOp(names []*pg.Node) string {
	if len(names) == 0 {
		return ""
	}
	return names[len(names)-1].GetString_().GetSval()
}

func (a *analysis) aExpr(e *pg.A_Expr, sc *scope) (value, error) {
	op := aExprOp(e.Name)
	switch e.Kind {
	case pg.A_Expr_Kind_AEXPR_OP, pg.A_Expr_Kind_AEXPR_DISTINCT, pg.A_Expr_Kind_AEXPR_NOT_DISTINCT:
		if e.Lexpr == nil || e.Rexpr == nil {
			v, err := a.expr(firstNonNil(e.Lexpr, e.Rexpr), sc)
			return plain, a.use(v, err)("operator " + op)
		}
		l, err := a.expr(e.Lexpr, sc)
		if err != nil {
			return plain, err
		}
		r, err := a.expr(e.Rexpr, sc)
		if err != nil {
			return plain, err
		}
		name := "operator " + op
		switch e.Kind {
		case pg.A_Expr_Kind_AEXPR_DISTINCT:
			name = "IS DISTINCT FROM"
		case pg.A_Expr_Kind_AEXPR_NOT_DISTINCT:
			name = "IS NOT DISTINCT FROM"
		default:
			if op != "=" && op != "<>" {
				if err := a.use(l, nil)(name); err != nil {
					return plain, err
				}
				return plain, a.use(r, nil)(name)
			}
		}
		return plain, a.compare(l, r, name)
	case pg.A_Expr_Kind_AEXPR_IN:
		l, err := a.expr(e.Lexpr, sc)
		if err != nil {
			return plain, err
		}
		name := "IN"
		if op == "<>" {
			name = "NOT IN"
		}
		for _, item := range e.Rexpr.GetList().GetItems() {
			v, err := a.expr(item, sc)
			if err != nil {
				return plain, err
			}
			if err := a.compare(l, v, name); err != nil {
				return plain, err
			}
		}
		return plain, nil
	}
	name := strings.TrimPrefix(e.Kind.String(), "AEXPR_")
	if v, ok, err := a.anyParam(e, op, sc); ok || err != nil {
		return v, err
	}
	switch e.Kind {
	case pg.A_Expr_Kind_AEXPR_OP_ANY, pg.A_Expr_Kind_AEXPR_OP_ALL:
		name = op + " " + strings.TrimPrefix(name, "OP_") + "(array)"
	case pg.A_Expr_Kind_AEXPR_LIKE:
		name = "LIKE"
	case pg.A_Expr_Kind_AEXPR_ILIKE:
		name = "ILIKE"
	case pg.A_Expr_Kind_AEXPR_SIMILAR:
		name = "SIMILAR TO"
	case pg.A_Expr_Kind_AEXPR_NULLIF:
		name = "NULLIF"
	default:
		name = strings.ReplaceAll(name, "_", " ")
	}
	for _, side := range []*pg.Node{e.Lexpr, e.Rexpr} {
		if items := side.GetList().GetItems(); items != nil {
			for _, it := range items {
				if err := a.use(a.expr(it, sc))(name); err != nil {
					return plain, err
				}
			}
			continue
		}
		if err := a.use(a.expr(side, sc))(name); err != nil {
			return plain, err
		}
	}
	return plain, nil
}

// anyParam handles "col = ANY($n)" and "col <> ALL($n)" on a deterministic
// column with an array parameter, the idiom of psycopg and asyncpg for a
// list of values: each element is encrypted at Bind (ShapeElements). ok is
// false when e is not of that form.
func (a *analysis) anyParam(e *pg.A_Expr, op string, sc *scope) (value, bool, error) {
	anyEq := e.Kind == pg.A_Expr_Kind_AEXPR_OP_ANY && op == "="
	allNe := e.Kind == pg.A_Expr_Kind_AEXPR_OP_ALL && op == "<>"
	if !anyEq && !allNe || e.Lexpr == nil || e.Rexpr == nil {
		return plain, false, nil
	}
	l, err := a.expr(e.Lexpr, sc)
	if err != nil {
		return plain, true, err
	}
	if l.kind != vCol {
		return plain, false, nil
	}
	name := "= ANY(array)"
	if allNe {
		name = "<> ALL(array)"
	}
	check := func() error {
		if l.col.Mode != deterministic {
			return refuseOp(l.col, name)
		}
		if len(l.alts) > 0 {
			return refuseOp(l.col, name+" on a UNION of encrypted columns")
		}
		return nil
	}
	// ARRAY['a', 'b']: each element literal becomes its ciphertexts.
	if arr := e.Rexpr.GetAArrayExpr(); arr != nil {
		var vals []value
		for _, el := range arr.Elements {
			v, err := a.expr(el, sc)
			if err != nil {
				return plain, true, err
			}
			if v.kind != vLit && v.kind != vNull {
				return plain, false, nil
			}
			vals = append(vals, v)
		}
		if err := check(); err != nil {
			return plain, true, err
		}
		for _, v := range vals {
			a.shape = ShapeList
			err := a.bind(v, l.col, name)
			a.shape = ShapeScalar
			if err != nil {
				return plain, true, err
			}
		}
		return plain, true, nil
	}
	r, err := a.expr(e.Rexpr, sc)
	if err != nil {
		return plain, true, err
	}
	switch {
	case r.kind == vParam && !r.fromSelect:
		a.shape = ShapeElements
	case r.kind == vLit && r.lit.GetSval() != nil:
		a.shape = ShapeArrayText // '{a,b}'
	default:
		return plain, false, nil
	}
	if err := check(); err != nil {
		a.shape = ShapeScalar
		return plain, true, err
	}
	err = a.bind(r, l.col, name)
	a.shape = ShapeScalar
	return plain, true, err
}

func firstNonNil(a, b *pg.Node) *pg.Node {
	if a != nil {
		return a
	}
	return b
}

// compare handles an equality-like comparison of l and r.
func (a *analysis) compare(l, r value, op string) error {
	if l.kind != vCol && r.kind != vCol {
		return nil
	}
	if l.kind == vCol && r.kind == vCol {
		if !sameColumn(l, r) {
			if l.col != r.col {
				return refuse("%s between encrypted columns %s and %s is not supported: ciphertexts are bound to their column, so values of different columns never compare equal",
					op, l.col, r.col)
			}
			return refuseOp(l.col, op+" on a UNION of encrypted columns")
		}
		if l.col.Mode != deterministic {
			return refuseOp(l.col, op)
		}
		return nil
	}
	c, o := l, r
	colLeft := r.kind != vCol
	if !colLeft {
		c, o = r, l
	}
	if c.col.Mode != deterministic {
		return refuseOp(c.col, op)
	}
	if len(c.alts) > 0 {
		return refuseOp(c.col, op+" on a UNION of encrypted columns")
	}
	switch o.kind {
	case vLit, vParam, vNull:
		// Widen lookups to every active key version where the text allows:
		// the right operand of = and <>, and literal items of IN lists.
		a.shape = ShapeScalar
		if c.col.Mode == deterministic && o.kind != vNull {
			switch {
			case o.kind == vParam && !o.fromSelect && colLeft && op == "operator =":
				a.shape = ShapeAny
			case o.kind == vParam && !o.fromSelect && colLeft && op == "operator <>":
				a.shape = ShapeAll
			case o.kind == vLit && colLeft && op == "operator =":
				a.shape = ShapeAny
			case o.kind == vLit && colLeft && op == "operator <>":
				a.shape = ShapeAll
			case o.kind == vLit && (op == "IN" || op == "NOT IN"):
				a.shape = ShapeList
			}
		}
		err := a.bind(o, c.col, op)
		a.shape = ShapeScalar
		return err
	}
	return refuse("%s between encrypted column %s (%s) and an expression that is neither a literal nor a parameter is not supported",
		op, c.col, c.col.Mode)
}

func (a *analysis) funcCall(f *pg.FuncCall, sc *scope) (value, error) {
	name := aExprOp(f.Funcname)
	qualified := len(f.Funcname) == 1 || len(f.Funcname) == 2 && f.Funcname[0].GetString_().GetSval() == "pg_catalog"
	if name == "set_config" && qualified && len(f.Args) > 0 {
		setting := f.Args[0].GetAConst().GetSval()
		if setting == nil {
			return plain, refuse("set_config with a computed setting name cannot be tracked; use SET")
		}
		if strings.EqualFold(strings.TrimSpace(setting.Sval), "search_path") {
			return plain, refuse("set_config('search_path', ...) cannot be tracked; use SET search_path")
		}
	}
	if name == "count" && qualified && len(f.Args) == 1 {
		v, err := a.expr(f.Args[0], sc)
		if err != nil {
			return plain, err
		}
		if v.kind == vCol && f.AggDistinct && v.col.Mode != deterministic {
			return plain, refuseOp(v.col, "count(DISTINCT ...)")
		}
		if v.kind == vCol && len(v.alts) > 0 && f.AggDistinct {
			return plain, refuseOp(v.col, "count(DISTINCT ...) on a UNION of encrypted columns")
		}
	} else {
		for _, arg := range f.Args {
			if err := a.use(a.expr(arg, sc))("function " + name + "()"); err != nil {
				return plain, err
			}
		}
	}
	for _, o := range f.AggOrder {
		if err := a.use(a.expr(o.GetSortBy().GetNode(), sc))("ORDER BY in an aggregate"); err != nil {
			return plain, err
		}
	}
	if err := a.use(a.expr(f.AggFilter, sc))("FILTER"); err != nil {
		return plain, err
	}
	if f.Over != nil {
		if err := a.windowDef(f.Over, sc, nil); err != nil {
			return plain, err
		}
	}
	return plain, nil
}

func (a *analysis) windowDef(w *pg.WindowDef, sc *scope, outs []outItem) error {
	for _, p := range w.PartitionClause {
		if err := a.sortGroup(p, sc, outs, "PARTITION BY", false); err != nil {
			return err
		}
	}
	for _, o := range w.OrderClause {
		if err := a.sortGroup(o.GetSortBy().GetNode(), sc, outs, "ORDER BY", true); err != nil {
			return err
		}
	}
	if err := a.use(a.expr(w.StartOffset, sc))("window frame"); err != nil {
		return err
	}
	return a.use(a.expr(w.EndOffset, sc))("window frame")
}

func (a *analysis) subLink(s *pg.SubLink, sc *scope) (value, error) {
	switch s.SubLinkType {
	case pg.SubLinkType_EXISTS_SUBLINK:
		_, err := a.query(s.Subselect, sc, nil)
		return plain, err
	case pg.SubLinkType_EXPR_SUBLINK:
		outs, err := a.query(s.Subselect, sc, nil)
		if err != nil || len(outs) != 1 {
			return plain, err
		}
		if outs[0].seg != nil {
			return plain, a.useItems(outs, "a scalar subquery over SELECT * without catalog information")
		}
		return outs[0].val.indirect(), nil
	case pg.SubLinkType_ANY_SUBLINK, pg.SubLinkType_ALL_SUBLINK:
		test, err := a.expr(s.Testexpr, sc)
		if err != nil {
			return plain, err
		}
		outs, err := a.query(s.Subselect, sc, nil)
		if err != nil {
			return plain, err
		}
		op := aExprOp(s.OperName)
		if op == "" {
			op = "="
		}
		name := "IN (subquery)"
		if s.SubLinkType == pg.SubLinkType_ALL_SUBLINK || op != "=" {
			name = "operator " + op + " " + strings.TrimSuffix(s.SubLinkType.String(), "_SUBLINK") + " (subquery)"
		}
		if len(outs) == 1 && outs[0].seg == nil && s.Testexpr.GetRowExpr() == nil && (op == "=" || op == "<>") {
			return plain, a.compare(test, outs[0].val.indirect(), name)
		}
		if err := a.use(test, nil)(name); err != nil {
			return plain, err
		}
		return plain, a.useItems(outs, name)
	}
	// ARRAY, ROWCOMPARE, MULTIEXPR (outside UPDATE SET) and CTE sublinks
	// compute from their values.
	if err := a.use(a.expr(s.Testexpr, sc))("a subquery comparison"); err != nil {
		return plain, err
	}
	outs, err := a.query(s.Subselect, sc, nil)
	if err != nil {
		return plain, err
	}
	return plain, a.useItems(outs, strings.TrimSuffix(s.SubLinkType.String(), "_SUBLINK")+" subquery")
}
