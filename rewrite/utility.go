package rewrite

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgseal/pgseal/policy"
)

// utility handles every statement that is not SELECT, INSERT, UPDATE,
// DELETE or MERGE.
func (a *analysis) utility(n *pg.Node, st *Statement) error {
	switch x := n.GetNode().(type) {
	case *pg.Node_TransactionStmt:
		st.Kind = KindTransaction
	case *pg.Node_PrepareStmt:
		return a.prepare(x.PrepareStmt, st)
	case *pg.Node_ExecuteStmt:
		return a.execute(x.ExecuteStmt, st)
	case *pg.Node_DeallocateStmt:
		st.Kind = KindDeallocate
		st.Deallocate = &Deallocate{Name: x.DeallocateStmt.Name, All: x.DeallocateStmt.Isall || x.DeallocateStmt.Name == ""}
	case *pg.Node_DiscardStmt:
		st.Kind = KindDiscard
		if x.DiscardStmt.Target == pg.DiscardMode_DISCARD_ALL {
			st.Deallocate = &Deallocate{All: true}
			st.SearchPath = &SearchPath{Reset: true}
		}
	case *pg.Node_VariableSetStmt:
		return a.variableSet(x.VariableSetStmt, st)
	case *pg.Node_CopyStmt:
		return a.copyStmt(x.CopyStmt, st)
	case *pg.Node_ExplainStmt:
		if err := a.body(x.ExplainStmt.Query, st); err != nil {
			return err
		}
		st.Kind, st.Results, st.ResultsFromRowDescription = KindExplain, nil, false
	case *pg.Node_DeclareCursorStmt:
		st.Kind = KindDeclareCursor
		outs, err := a.query(x.DeclareCursorStmt.Query, nil, nil)
		if err != nil {
			return err
		}
		// FETCH results are decrypted from RowDescription alone, so every
		// encrypted output must be a direct table column.
		for _, o := range outs {
			if o.seg != nil && len(o.seg.cols) > 0 && !o.seg.direct || o.seg == nil && o.val.kind == vCol && !o.val.direct {
				c := o.val.col
				if o.seg != nil {
					c = o.seg.cols[0]
				}
				return refuseOp(c, "a cursor over a computed encrypted value (only direct table columns can be fetched)")
			}
		}
	case *pg.Node_CreateTableAsStmt:
		if x.CreateTableAsStmt.Query.GetExecuteStmt() != nil {
			return refuse("CREATE TABLE AS EXECUTE is not supported through pgseal")
		}
		outs, err := a.query(x.CreateTableAsStmt.Query, nil, nil)
		if err != nil {
			return err
		}
		return a.useItems(outs, "CREATE TABLE AS / materialized view (copying ciphertext to a new table)")
	case *pg.Node_ViewStmt:
		_, err := a.query(x.ViewStmt.Query, nil, nil)
		return err
	case *pg.Node_RenameStmt:
		return a.renameStmt(x.RenameStmt)
	case *pg.Node_AlterObjectSchemaStmt:
		if rv := x.AlterObjectSchemaStmt.Relation; rv != nil {
			if ri, err := a.resolveRelation(rv.Schemaname, rv.Relname); err != nil || ri.table != nil {
				return refuse("moving table %s, which has encrypted columns, to another schema would detach it from the policy; change the policy first", ri.name)
			}
		}
	case *pg.Node_AlterTableStmt:
		return a.alterTable(x.AlterTableStmt)
	case *pg.Node_CreateFunctionStmt, *pg.Node_DoStmt, *pg.Node_RuleStmt:
		if a.az.names.mayMention(a.sql[st.Offset : st.Offset+st.Length]) {
			return refuse("function, procedure, DO and rule bodies that mention encrypted tables or columns are not supported: pgseal cannot see inside them")
		}
	}
	return nil
}

func (a *analysis) prepare(p *pg.PrepareStmt, st *Statement) error {
	st.Kind = KindPrepare
	inner := &Statement{Offset: st.Offset, Length: st.Length}
	a.reset(inner)
	if err := a.body(p.Query, inner); err != nil {
		return err
	}
	if err := a.finish(); err != nil {
		return err
	}
	a.reset(st)
	st.Literals = inner.Literals
	st.edits = append(st.edits, inner.edits...)
	toks := a.tokens()
	for i, at := range p.Argtypes {
		if i >= len(inner.Params) || inner.Params[i] == nil {
			continue
		}
		tn := at.GetTypeName()
		j := a.tokenAt(int(tn.GetLocation()))
		end, ok := typeNameEnd(toks, j)
		if j < 0 || !ok {
			return errNoSpan
		}
		typ := "bytea"
		if i < len(inner.ParamShapes) && inner.ParamShapes[i].IsArray() {
			typ = "bytea[]"
		}
		st.edits = append(st.edits, edit{int(tn.Location), end, typ})
	}
	st.Prepare = &Prepare{Name: p.Name, Statement: inner}
	return nil
}

// execArg is an EXECUTE argument with its text span.
type execArg struct {
	val        value
	start, end int
	spanErr    error
}

func (a *analysis) execute(e *pg.ExecuteStmt, st *Statement) error {
	st.Kind = KindExecute
	x := &Execute{Name: e.Name, Args: len(e.Params)}
	for _, p := range e.Params {
		v, err := a.expr(p, nil)
		if err != nil {
			return err
		}
		arg := execArg{val: v}
		switch v.kind {
		case vLit, vParam, vNull:
			arg.start, arg.end, arg.spanErr = a.valueSpan(v)
		}
		x.args = append(x.args, arg)
	}
	st.Execute = x
	return nil
}

func (a *analysis) variableSet(v *pg.VariableSetStmt, st *Statement) error {
	if v.Kind != pg.VariableSetKind_VAR_RESET_ALL && v.Name != "search_path" {
		return nil
	}
	st.Kind = KindSet
	switch v.Kind {
	case pg.VariableSetKind_VAR_SET_VALUE:
		path := []string{}
		for _, arg := range v.Args {
			// Each argument is one schema name, quoted or not (PostgreSQL
			// quotes each for a list setting): 'a, b' is one schema.
			s := arg.GetAConst().GetSval()
			if s == nil {
				return refuse("cannot track SET search_path with a non-name value")
			}
			if s.Sval != "" {
				path = append(path, s.Sval)
			}
		}
		st.SearchPath = &SearchPath{Path: path, Local: v.IsLocal}
	case pg.VariableSetKind_VAR_SET_DEFAULT, pg.VariableSetKind_VAR_RESET, pg.VariableSetKind_VAR_RESET_ALL:
		st.SearchPath = &SearchPath{Reset: true, Local: v.IsLocal}
	default:
		return refuse("SET search_path FROM CURRENT cannot be tracked")
	}
	return nil
}

func (a *analysis) copyStmt(c *pg.CopyStmt, st *Statement) error {
	st.Kind = KindCopy
	cp := &Copy{From: c.IsFrom, Program: c.IsProgram, File: c.Filename}
	for _, o := range c.Options {
		if d := o.GetDefElem(); d != nil {
			cp.Options = append(cp.Options, CopyOption{Name: d.Defname, Value: defElemValue(d.Arg)})
		}
	}
	for _, n := range c.Attlist {
		cp.Columns = append(cp.Columns, n.GetString_().GetSval())
	}
	if rv := c.Relation; rv != nil {
		ri, err := a.resolveRelation(rv.Schemaname, rv.Relname)
		if err != nil {
			return err
		}
		cp.Table = ri.name
		if ri.view != nil {
			return refuse("COPY of view %s, which shows encrypted columns, is not supported", ri.name)
		}
		if ri.table != nil {
			if cp.Columns == nil {
				cp.Encrypted = ri.table.Columns()
			}
			for _, name := range cp.Columns {
				if col, ok := ri.table.Column(name); ok {
					cp.Encrypted = append(cp.Encrypted, col)
				}
			}
			if c.WhereClause != nil {
				r := &rte{refname: rv.Relname, relSchema: ri.name.Schema, table: ri.table, opaque: true}
				if err := a.use(a.expr(c.WhereClause, &scope{rtes: []*rte{r}}))("COPY ... WHERE"); err != nil {
					return err
				}
			}
		}
	}
	if c.Query != nil {
		q := &Statement{Kind: KindSelect}
		outs, err := a.query(c.Query, nil, nil)
		if err != nil {
			return err
		}
		if q.Results, q.ResultsFromRowDescription, err = results(outs); err != nil {
			return err
		}
		for _, o := range outs {
			if o.seg != nil {
				cp.Encrypted = append(cp.Encrypted, o.seg.cols...)
			} else if o.val.kind == vCol {
				cp.Encrypted = append(cp.Encrypted, o.val.col)
				cp.Encrypted = append(cp.Encrypted, o.val.alts...)
			}
		}
		cp.Query = q
	}
	st.Copy = cp
	if len(cp.Encrypted) > 0 && (cp.File != "" || cp.Program) {
		names := make([]string, len(cp.Encrypted))
		for i, c := range cp.Encrypted {
			names[i] = c.String()
		}
		where := "a file on the server"
		if cp.Program {
			where = "a program on the server"
		}
		return refuse("COPY of encrypted columns (%s) to or from %s is refused: the server would read plaintext or hand out ciphertext behind pgseal; use COPY ... FROM STDIN / TO STDOUT (psql \\copy)",
			strings.Join(names, ", "), where)
	}
	return nil
}

func defElemValue(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_String_:
		return x.String_.Sval
	case *pg.Node_Integer:
		return itoa(int(x.Integer.Ival))
	case *pg.Node_Float:
		return x.Float.Fval
	case *pg.Node_Boolean:
		if x.Boolean.Boolval {
			return "true"
		}
		return "false"
	case *pg.Node_AStar:
		return "*"
	case *pg.Node_List:
		var parts []string
		for _, it := range x.List.Items {
			parts = append(parts, defElemValue(it))
		}
		return strings.Join(parts, ",")
	}
	return ""
}

func (a *analysis) renameStmt(r *pg.RenameStmt) error {
	if r.RenameType == pg.ObjectType_OBJECT_SCHEMA {
		for _, t := range a.az.pol.Tables() {
			if t.Name.Schema == r.Subname {
				return refuse("renaming schema %s, which holds table %s with encrypted columns, would detach it from the policy; change the policy first",
					policy.QuoteIdent(r.Subname), t.Name)
			}
		}
		return nil
	}
	rv := r.Relation
	if rv == nil {
		return nil
	}
	ri, err := a.resolveRelation(rv.Schemaname, rv.Relname)
	if err != nil {
		return err
	}
	if ri.table == nil {
		return nil
	}
	switch r.RenameType {
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW, pg.ObjectType_OBJECT_FOREIGN_TABLE:
		return refuse("renaming table %s, which has encrypted columns, would detach it from the policy; change the policy first", ri.name)
	case pg.ObjectType_OBJECT_COLUMN, pg.ObjectType_OBJECT_ATTRIBUTE:
		if col, ok := ri.table.Column(r.Subname); ok {
			return refuse("renaming encrypted column %s would detach it from the policy; change the policy first", col)
		}
	}
	return nil
}

func (a *analysis) alterTable(s *pg.AlterTableStmt) error {
	rv := s.Relation
	if rv == nil {
		return nil
	}
	ri, err := a.resolveRelation(rv.Schemaname, rv.Relname)
	if err != nil || ri.table == nil {
		return err
	}
	for _, c := range s.Cmds {
		cmd := c.GetAlterTableCmd()
		if cmd == nil || cmd.Subtype != pg.AlterTableType_AT_AlterColumnType {
			continue
		}
		if col, ok := ri.table.Column(cmd.Name); ok {
			return refuseOp(col, "ALTER COLUMN TYPE (encrypted columns stay bytea)")
		}
	}
	return nil
}
