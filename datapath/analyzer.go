package datapath

import (
	"errors"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

// RewriteAnalyzer adapts a rewrite.Analyzer (statement analysis with
// PostgreSQL's own parser) to the data path. It is immutable.
type RewriteAnalyzer struct {
	A *rewrite.Analyzer
}

// WithCatalog implements CatalogAnalyzer: an analyzer for the same policy
// that knows a database's column order.
func (r RewriteAnalyzer) WithCatalog(c rewrite.Catalog) Analyzer {
	return RewriteAnalyzer{A: rewrite.New(r.A.Policy(), rewrite.WithCatalog(c))}
}

// Analyze implements Analyzer.
func (r RewriteAnalyzer) Analyze(sql string, searchPath []string, prepared func(string) (any, bool), enc Encrypter) Analysis {
	plan, err := r.A.Analyze(sql, searchPath)
	if err != nil {
		return Analysis{Refusal: refusalOf(err)}
	}
	// EXECUTE arguments bound for policy columns become literals of the
	// bound plan, encrypted like any other.
	plan, err = plan.BindExecute(func(name string) (*rewrite.Statement, bool) {
		v, ok := prepared(name)
		if !ok {
			return nil, false
		}
		st, ok := v.(*rewrite.Statement)
		return st, ok
	})
	if err != nil {
		return Analysis{Refusal: refusalOf(err)}
	}
	an := Analysis{SQL: sql, Passthrough: plan.IsPassthrough()}
	// A text that the analyzer had to parse may mention a policy table:
	// follow its results (RowDescription decides what to decrypt).
	an.Touches = !an.Passthrough || len(plan.Statements) > 0
	if an.Passthrough && !an.Touches {
		return an
	}
	for i, st := range plan.Statements {
		if i == 0 {
			an.Params = st.Params
			for j, sh := range st.ParamShapes {
				if sh == rewrite.ShapeElements {
					if an.ParamElements == nil {
						an.ParamElements = make([]bool, len(st.Params))
					}
					an.ParamElements[j] = true
					continue
				}
				if sh.IsArray() {
					if an.ParamArrays == nil {
						an.ParamArrays = make([]bool, len(st.Params))
					}
					an.ParamArrays[j] = true
				}
			}
		}
		var res []Lineage
		for j, rc := range st.Results {
			if rc.Column != nil {
				if res == nil {
					res = make([]Lineage, len(st.Results))
				}
				res[j] = Lineage{Column: rc.Column, Alternatives: rc.Alternatives}
			}
		}
		an.Results = append(an.Results, res)
		an.Copies = append(an.Copies, st.Copy)
		if st.SearchPath != nil {
			an.SearchPath = st.SearchPath.Path
			an.SearchPathChanged = true
		}
		if st.Prepare != nil && st.Prepare.Statement != nil {
			if an.Prepares == nil {
				an.Prepares = make(map[string]any)
			}
			an.Prepares[st.Prepare.Name] = st.Prepare.Statement
		}
		if d := st.Deallocate; d != nil {
			if d.All {
				an.DeallocateAll = true
			} else {
				an.Deallocates = append(an.Deallocates, d.Name)
			}
		}
	}
	if plan.NeedsRewrite() {
		out, err := plan.RewriteVersions(sql, func(lit rewrite.Literal) ([][]byte, error) {
			if lit.Shape == rewrite.ShapeArrayText {
				return encryptArrayText(lit, enc)
			}
			return enc(lit.Column, lit.Value, lit.Shape != rewrite.ShapeScalar)
		})
		if err != nil {
			var pe *proxy.Error
			if errors.As(err, &pe) {
				return Analysis{Refusal: pe}
			}
			return Analysis{Refusal: proxy.Errorf(proxy.CodeInvalidTextRepr, "pgseal: a literal is not a valid value for its encrypted column")}
		}
		an.SQL = out
	}
	return an
}

func refusalOf(err error) *proxy.Error {
	var rf *rewrite.Refusal
	if errors.As(err, &rf) {
		return proxy.Errorf(rf.SQLState, "%s", rf.Message)
	}
	return proxy.Errorf(proxy.CodeFeatureNotSupported, "pgseal: statement refused: it cannot be analysed")
}

// encryptArrayText encrypts every element of an array literal ('{a,b}')
// under every active key version. NULL elements never match and are left
// out.
func encryptArrayText(lit rewrite.Literal, enc Encrypter) ([][]byte, error) {
	var elems []pgtype.Text
	if err := pgtype.NewMap().Scan(pgtype.TextArrayOID, pgtype.TextFormatCode, []byte(lit.Value), &elems); err != nil {
		return nil, proxy.Errorf(proxy.CodeInvalidTextRepr, "pgseal: the array literal for %s is not a valid array", lit.Column)
	}
	out := [][]byte{}
	for _, e := range elems {
		if !e.Valid {
			continue
		}
		cts, err := enc(lit.Column, e.String, true)
		if err != nil {
			return nil, err
		}
		out = append(out, cts...)
	}
	return out, nil
}
