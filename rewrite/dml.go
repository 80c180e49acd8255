package rewrite

import (
	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgseal/pgseal/policy"
)

// targetRTE resolves the target relation of INSERT, UPDATE or DELETE.
func (a *analysis) targetRTE(rv *pg.RangeVar, sc *scope, verb string) (*rte, error) {
	r, err := a.relationRTE(rv, sc)
	if err != nil {
		return nil, err
	}
	if r.isView {
		return nil, refuse("%s through view %s, which shows encrypted columns, is not supported; write to the table", verb,
			policy.QualifiedName{Schema: r.relSchema, Name: rv.Relname})
	}
	return r, nil
}

func (r *rte) column(name string) *policy.Column {
	if r.table == nil {
		return nil
	}
	c, _ := r.table.Column(name)
	return c
}

func (a *analysis) insertStmt(s *pg.InsertStmt, outer *scope) ([]outItem, error) {
	sc := outer.child()
	if s.WithClause != nil {
		if err := a.withClause(s.WithClause, sc); err != nil {
			return nil, err
		}
	}
	target, err := a.targetRTE(s.Relation, sc, "INSERT")
	if err != nil {
		return nil, err
	}
	tl := &targetList{known: true}
	switch {
	case len(s.Cols) > 0:
		for _, c := range s.Cols {
			rt := c.GetResTarget()
			col := target.column(rt.GetName())
			if col != nil && len(rt.Indirection) > 0 {
				return nil, refuseOp(col, "assignment to a subscript or field")
			}
			tl.cols = append(tl.cols, col)
		}
	case target.opaque:
		if target.table != nil {
			return nil, refuse("INSERT without a column list into %s, which has encrypted columns, needs catalog information; list the columns", target.table.Name)
		}
		tl.known = false
	default:
		for _, it := range target.items {
			var col *policy.Column
			if it.val.kind == vCol {
				col = it.val.col
			}
			tl.cols = append(tl.cols, col)
		}
	}
	if s.SelectStmt != nil {
		// The query of an INSERT cannot see the target table.
		if _, err := a.query(s.SelectStmt, &scope{parent: outer, ctes: sc.ctes}, tl); err != nil {
			return nil, err
		}
	}
	tsc := &scope{parent: outer, ctes: sc.ctes, rtes: []*rte{target}}
	if oc := s.OnConflictClause; oc != nil {
		if inf := oc.Infer; inf != nil {
			for _, e := range inf.IndexElems {
				ie := e.GetIndexElem()
				if ie == nil || ie.Expr == nil {
					continue // a plain column: a unique index on ciphertext is fine
				}
				if err := a.use(a.expr(ie.Expr, tsc))("an index expression"); err != nil {
					return nil, err
				}
			}
			if err := a.use(a.expr(inf.WhereClause, tsc))("ON CONFLICT WHERE"); err != nil {
				return nil, err
			}
		}
		excluded := &rte{refname: "excluded", table: target.table, opaque: target.opaque, items: target.items}
		usc := &scope{parent: outer, ctes: sc.ctes, rtes: []*rte{target, excluded}}
		if err := a.setClause(oc.TargetList, usc, target); err != nil {
			return nil, err
		}
		if err := a.use(a.expr(oc.WhereClause, usc))("ON CONFLICT DO UPDATE WHERE"); err != nil {
			return nil, err
		}
	}
	return a.targetList(s.ReturningList, tsc)
}

func (a *analysis) updateStmt(s *pg.UpdateStmt, outer *scope) ([]outItem, error) {
	sc := outer.child()
	if s.WithClause != nil {
		if err := a.withClause(s.WithClause, sc); err != nil {
			return nil, err
		}
	}
	target, err := a.targetRTE(s.Relation, sc, "UPDATE")
	if err != nil {
		return nil, err
	}
	sc.rtes = append(sc.rtes, target)
	for _, f := range s.FromClause {
		if err := a.fromItem(f, sc); err != nil {
			return nil, err
		}
	}
	if err := a.use(a.expr(s.WhereClause, sc))("WHERE"); err != nil {
		return nil, err
	}
	if err := a.setClause(s.TargetList, sc, target); err != nil {
		return nil, err
	}
	return a.targetList(s.ReturningList, sc)
}

func (a *analysis) deleteStmt(s *pg.DeleteStmt, outer *scope) ([]outItem, error) {
	sc := outer.child()
	if s.WithClause != nil {
		if err := a.withClause(s.WithClause, sc); err != nil {
			return nil, err
		}
	}
	target, err := a.targetRTE(s.Relation, sc, "DELETE")
	if err != nil {
		return nil, err
	}
	sc.rtes = append(sc.rtes, target)
	for _, f := range s.UsingClause {
		if err := a.fromItem(f, sc); err != nil {
			return nil, err
		}
	}
	if err := a.use(a.expr(s.WhereClause, sc))("WHERE"); err != nil {
		return nil, err
	}
	return a.targetList(s.ReturningList, sc)
}

// setClause analyses SET assignments of UPDATE and ON CONFLICT DO UPDATE.
func (a *analysis) setClause(list []*pg.Node, sc *scope, target *rte) error {
	multi := map[*pg.SubLink][]outItem{}
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		col := target.column(rt.Name)
		if col != nil && len(rt.Indirection) > 0 {
			return refuseOp(col, "assignment to a subscript or field")
		}
		var v value
		var err error
		if m := rt.Val.GetMultiAssignRef(); m != nil {
			i := int(m.Colno) - 1
			switch {
			case m.Source.GetRowExpr() != nil && i < len(m.Source.GetRowExpr().Args):
				v, err = a.expr(m.Source.GetRowExpr().Args[i], sc)
			case m.Source.GetSubLink() != nil:
				sl := m.Source.GetSubLink()
				outs, ok := multi[sl]
				if !ok {
					if outs, err = a.query(sl.Subselect, sc, nil); err != nil {
						return err
					}
					multi[sl] = outs
				}
				if hasSegment(outs) {
					if col != nil || mayCarry(outs) {
						return refuse("UPDATE SET (...) = (SELECT * ...) involving encrypted columns needs catalog information")
					}
				} else if i < len(outs) {
					v = outs[i].val
					v.fromSelect = true
				}
			default:
				v, err = a.expr(m.Source, sc)
			}
		} else {
			v, err = a.expr(rt.Val, sc)
		}
		if err != nil {
			return err
		}
		if col != nil {
			if err := a.bind(v, col, "UPDATE SET"); err != nil {
				return err
			}
		} else if v.kind == vCol {
			return refuse("assigning encrypted column %s to non-encrypted column %s is not supported", v.col, policy.QuoteIdent(rt.Name))
		}
	}
	return nil
}

// mergeStmt refuses MERGE on anything that reaches a policy table.
func (a *analysis) mergeStmt(s *pg.MergeStmt, outer *scope) error {
	if t := a.mentionedPolicyTable(s.ProtoReflect(), outer); t != nil {
		return refuse("MERGE involving table %s, which has encrypted columns, is not supported", t)
	}
	return nil
}

// mentionedPolicyTable walks a parse tree for relation names that resolve
// to a policy table or to a view over one.
func (a *analysis) mentionedPolicyTable(m protoreflect.Message, sc *scope) *policy.QualifiedName {
	var hit *policy.QualifiedName
	var ctes *cteEnv
	if sc != nil {
		ctes = sc.ctes
	}
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if rv, ok := m.Interface().(*pg.RangeVar); ok {
			if ctes.find(rv.Relname) != nil && rv.Schemaname == "" {
				return
			}
			ri, err := a.resolveRelation(rv.Schemaname, rv.Relname)
			if err != nil || ri.table != nil || ri.view != nil {
				n := ri.name
				hit = &n
			}
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
				return true
			}
			if fd.IsList() {
				l := v.List()
				for i := 0; i < l.Len() && hit == nil; i++ {
					walk(l.Get(i).Message())
				}
			} else {
				walk(v.Message())
			}
			return hit == nil
		})
	}
	walk(m)
	return hit
}
