package rewrite

import (
	"slices"
	"strconv"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgseal/pgseal/policy"
)

const deterministic = policy.Deterministic

func itoa(i int) string { return strconv.Itoa(i) }

// analysis is the state of analysing one statement.
type analysis struct {
	az   *Analyzer
	sql  string
	path []string

	toks    []*pg.ScanToken // scanned lazily, for literal spans
	scanned bool

	st          *Statement
	uses        map[int]int            // occurrences of each $n
	boundUses   map[int]int            // occurrences of $n bound to a column
	params      map[int]*policy.Column // $n -> column
	maxParam    int
	litCols     map[int]*policy.Column // literal offset -> column
	shapes      map[int]Shape          // $n -> how it is compared
	shape       Shape                  // shape of the value being bound (set by compare)
	pathUnknown bool                   // a RESET of search_path earlier in the text
	lineageOnly bool                   // analysing a view: no binding
	depth       int                    // view nesting
}

func newAnalysis(az *Analyzer, sql string, path []string) *analysis {
	return &analysis{az: az, sql: sql, path: path}
}

func (a *analysis) reset(st *Statement) {
	a.st = st
	a.uses, a.boundUses, a.params, a.litCols = map[int]int{}, map[int]int{}, map[int]*policy.Column{}, map[int]*policy.Column{}
	a.shapes = map[int]Shape{}
	a.maxParam = 0
}

func (a *analysis) noteParam(n int) {
	if a.uses == nil {
		return
	}
	a.uses[n]++
	if n > a.maxParam {
		a.maxParam = n
	}
}

// bind records that v is the value of (or is compared with) policy column
// col: a literal to encrypt, a parameter to encrypt at Bind, NULL or
// DEFAULT to leave alone, or the same column's ciphertext.
func (a *analysis) bind(v value, col *policy.Column, op string) error {
	return a.bindSpan(v, col, op, func() (int, int, error) { return a.valueSpan(v) })
}

// bindSpan is bind with the value's text span supplied by span.
func (a *analysis) bindSpan(v value, col *policy.Column, op string, span func() (int, int, error)) error {
	if a.lineageOnly {
		return nil
	}
	switch v.kind {
	case vDefault:
		return nil
	case vCol:
		if v.col == col && len(v.alts) == 0 {
			return nil
		}
		return refuse("%s would put the ciphertext of encrypted column %s into encrypted column %s: values are bound to their column and re-encryption is impossible on the server",
			op, v.col, col)
	case vPlain:
		return refuse("%s gives encrypted column %s (%s) a value computed by the server, which pgseal cannot encrypt; pass a literal or a parameter",
			op, col, col.Mode)
	case vNull:
		if v.cast == nil {
			return nil
		}
		start, end, err := span()
		if err != nil {
			return err
		}
		a.st.edits = append(a.st.edits, edit{start, end, "NULL::bytea"})
		return nil
	}
	if v.casts > 1 {
		return refuseOp(col, "a value cast more than once")
	}
	if v.cast != nil && a.shape != ShapeElements && a.shape != ShapeArrayText {
		t, ok := castType(v.cast.TypeName)
		if !ok || !compatible(t, col) {
			return refuseOp(col, "cast to "+typeNameString(v.cast.TypeName))
		}
	}
	start, end, err := span()
	if err != nil {
		return err
	}
	if v.kind == vParam {
		n := v.param
		if prev, ok := a.params[n]; ok && prev != col {
			return refuse("parameter $%d is used for both encrypted columns %s and %s", n, prev, col)
		}
		a.params[n] = col
		a.boundUses[n]++
		shape := a.shape
		if prev, ok := a.shapes[n]; ok && prev != shape {
			return refuse("parameter $%d is used in different comparisons of encrypted column %s; use separate parameters", n, col)
		}
		a.shapes[n] = shape
		switch {
		case shape == ShapeAny:
			a.st.edits = append(a.st.edits, edit{start, end, "ANY ($" + itoa(n) + "::bytea[])"})
		case shape == ShapeAll:
			a.st.edits = append(a.st.edits, edit{start, end, "ALL ($" + itoa(n) + "::bytea[])"})
		case shape == ShapeArray, shape == ShapeElements:
			a.st.edits = append(a.st.edits, edit{start, end, "$" + itoa(n) + "::bytea[]"})
		case v.cast != nil || v.fromSelect:
			a.st.edits = append(a.st.edits, edit{start, end, "$" + itoa(n) + "::bytea"})
		}
		return nil
	}
	if prev, ok := a.litCols[start]; ok {
		if prev != col {
			return refuse("a literal is compared with both encrypted columns %s and %s", prev, col)
		}
		return nil
	}
	lit := Literal{Offset: start, Length: end - start, Column: col, Shape: a.shape}
	switch x := v.lit.Val.(type) {
	case *pg.A_Const_Ival:
		lit.Kind, lit.Value = LiteralInteger, strconv.Itoa(int(x.Ival.Ival))
	case *pg.A_Const_Fval:
		lit.Kind, lit.Value = LiteralFloat, x.Fval.Fval
	case *pg.A_Const_Boolval:
		lit.Kind, lit.Value = LiteralBool, strconv.FormatBool(x.Boolval.Boolval)
	case *pg.A_Const_Sval:
		lit.Kind, lit.Value = LiteralString, x.Sval.Sval
	default:
		return refuseOp(col, "a bit-string literal")
	}
	a.litCols[start] = col
	a.st.Literals = append(a.st.Literals, lit)
	return nil
}

// finish checks parameter use and fills the statement's Params.
func (a *analysis) finish() error {
	st := a.st
	for n, col := range a.params {
		if a.uses[n] > a.boundUses[n] {
			return refuse("parameter $%d is used both for encrypted column %s and elsewhere; use separate parameters", n, col)
		}
	}
	if len(a.params) > 0 {
		st.Params = make([]*policy.Column, a.maxParam)
		for n, col := range a.params {
			if n >= 1 && n <= a.maxParam {
				st.Params[n-1] = col
				if sh := a.shapes[n]; sh != ShapeScalar {
					if st.ParamShapes == nil {
						st.ParamShapes = make([]Shape, a.maxParam)
					}
					st.ParamShapes[n-1] = sh
				}
			}
		}
	}
	slices.SortFunc(st.Literals, func(x, y Literal) int { return x.Offset - y.Offset })
	slices.SortFunc(st.edits, func(x, y edit) int { return x.start - y.start })
	return nil
}

// setResults records the output columns of a statement that returns rows.
func (a *analysis) setResults(outs []outItem) error {
	var err error
	a.st.Results, a.st.ResultsFromRowDescription, err = results(outs)
	return err
}

// results describes output columns; see Statement.Results.
func results(outs []outItem) ([]ResultColumn, bool, error) {
	if hasSegment(outs) {
		for _, o := range outs {
			if o.seg != nil && len(o.seg.cols) > 0 && !o.seg.direct ||
				o.seg == nil && o.val.kind == vCol && !o.val.direct {
				return nil, false, refuse("cannot tell which result columns carry ciphertext: SELECT * over a relation pgseal has no catalog information for, next to computed encrypted values; list the columns")
			}
		}
		return nil, true, nil
	}
	res := make([]ResultColumn, len(outs))
	for i, o := range outs {
		if o.val.kind == vCol {
			res[i] = ResultColumn{Column: o.val.col, Alternatives: o.val.alts, Direct: o.val.direct}
		}
	}
	return res, false, nil
}

// statement analyses one top-level statement.
func (a *analysis) statement(n *pg.Node, off, length int) (*Statement, error) {
	st := &Statement{Offset: off, Length: length}
	a.reset(st)
	if err := a.body(n, st); err != nil {
		return nil, err
	}
	if err := a.finish(); err != nil {
		return nil, err
	}
	return st, nil
}

// body fills st from a statement node.
func (a *analysis) body(n *pg.Node, st *Statement) error {
	switch x := n.GetNode().(type) {
	case *pg.Node_SelectStmt:
		st.Kind = KindSelect
		outs, err := a.query(n, nil, nil)
		if err != nil {
			return err
		}
		if x.SelectStmt.IntoClause != nil {
			return nil
		}
		return a.setResults(outs)
	case *pg.Node_InsertStmt:
		st.Kind = KindInsert
		return a.dml(n, len(x.InsertStmt.ReturningList) > 0)
	case *pg.Node_UpdateStmt:
		st.Kind = KindUpdate
		return a.dml(n, len(x.UpdateStmt.ReturningList) > 0)
	case *pg.Node_DeleteStmt:
		st.Kind = KindDelete
		return a.dml(n, len(x.DeleteStmt.ReturningList) > 0)
	case *pg.Node_MergeStmt:
		return a.mergeStmt(x.MergeStmt, nil)
	}
	return a.utility(n, st)
}

func (a *analysis) dml(n *pg.Node, returning bool) error {
	outs, err := a.query(n, nil, nil)
	if err != nil || !returning {
		return err
	}
	return a.setResults(outs)
}
