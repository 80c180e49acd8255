package rewrite

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/pgseal/pgseal/policy"
)

// Kind is the kind of a statement.
type Kind uint8

// Statement kinds. KindOther covers every statement pgseal passes through
// without looking inside (DDL, VACUUM, LISTEN, ...).
const (
	KindOther Kind = iota
	KindSelect
	KindInsert
	KindUpdate
	KindDelete
	KindPrepare
	KindExecute
	KindDeallocate
	KindSet     // SET / RESET of search_path, including SET LOCAL and RESET ALL
	KindDiscard // DISCARD ALL / PLANS / SEQUENCES / TEMP
	KindCopy
	KindExplain
	KindDeclareCursor
	KindTransaction // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...
)

var kindNames = [...]string{"other", "select", "insert", "update", "delete", "prepare", "execute",
	"deallocate", "set", "discard", "copy", "explain", "declare", "transaction"}

// String returns the kind's lower-case name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// LiteralKind is how a literal was written.
type LiteralKind uint8

// Literal kinds.
const (
	LiteralString  LiteralKind = iota + 1 // 'x', E'x', $$x$$, U&'x'
	LiteralInteger                        // 42, -1, 0x1F (Value is decimal)
	LiteralFloat                          // 1.5, -1e3, and integers too large for int4
	LiteralBool                           // true, false (Value "true"/"false")
)

// Shape says how a value bound for a deterministic column is compared, so
// that a lookup can match ciphertexts under every active key version while
// a key set is being rotated.
type Shape uint8

// Shapes.
const (
	// ShapeScalar: one ciphertext, under the primary version (stored
	// values, and comparisons pgseal cannot widen).
	ShapeScalar Shape = iota
	// ShapeAny: the right operand of "=": the text says = ANY(array) and
	// the value is an array of ciphertexts, one per active version.
	ShapeAny
	// ShapeAll: the right operand of "<>": <> ALL(array).
	ShapeAll
	// ShapeList: a literal in an IN (...) list: one list item per active
	// version.
	ShapeList
	// ShapeArray: an EXECUTE argument for a prepared parameter of shape
	// ShapeAny or ShapeAll: a bytea array of the ciphertexts.
	ShapeArray
	// ShapeElements: the array parameter of "= ANY($n)" or "<> ALL($n)":
	// the client binds an array of values of the column's type; each
	// element is encrypted (under every active version) into one bytea
	// array, and the text says $n::bytea[].
	ShapeElements
	// ShapeArrayText: a string literal holding an array ('{a,b}') on the
	// right of "= ANY" or "<> ALL": its Value is the array's text; the
	// encrypt callback returns the ciphertexts of every element under
	// every active version, rendered as one bytea array.
	ShapeArrayText
)

// IsArray reports whether a parameter of this shape is bound as a bytea
// array of ciphertexts, one per active version, primary first.
func (s Shape) IsArray() bool { return s == ShapeAny || s == ShapeAll || s == ShapeArray }

// Literal is a SQL literal bound for a policy column. Rewrite replaces the
// span [Offset, Offset+Length) of the statement text with a bytea literal
// of the value's ciphertext.
//
// The span covers the literal token, a leading minus sign, and a cast to
// the declared type when there is one (such a cast has to go: the server
// must see bytea). Value is the literal's text as PostgreSQL's lexer
// unescaped it; it is plaintext, so a Literal redacts itself when printed.
type Literal struct {
	Offset, Length int
	Kind           LiteralKind
	Value          string
	Column         *policy.Column
	Shape          Shape
}

// String returns a description of the literal without its value.
func (l Literal) String() string {
	return fmt.Sprintf("literal@%d+%d for %s", l.Offset, l.Length, l.Column)
}

// Format implements fmt.Formatter so that no verb prints the value.
func (l Literal) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(l.String())) }

// ResultColumn says what one output column of a statement carries.
type ResultColumn struct {
	// Column is the policy column whose ciphertext this output carries, or
	// nil for an ordinary output.
	Column *policy.Column
	// Alternatives lists further policy columns of the same key set and
	// declared type that may have produced a value (UNION ALL branches over
	// different columns): try Column's associated data first, then these.
	Alternatives []*policy.Column
	// Direct is true when the output is a plain reference to a table
	// column, so that RowDescription carries that column's table OID and
	// attribute number.
	Direct bool
}

// Prepare is what a SQL-level PREPARE asks the session to remember.
type Prepare struct {
	Name string
	// Statement is the analysis of the prepared statement: its Params say
	// which EXECUTE arguments feed which policy columns, its Results what
	// EXECUTE returns. Remember it under Name once the PREPARE succeeds.
	Statement *Statement
}

// Execute is a SQL-level EXECUTE; see (*Plan).BindExecute.
type Execute struct {
	Name string
	Args int // number of arguments
	args []execArg
}

// Deallocate is a SQL-level DEALLOCATE (or DISCARD ALL, with All set).
type Deallocate struct {
	Name string
	All  bool
}

// SearchPath is a change of search_path the session must track.
type SearchPath struct {
	// Path is the new search_path, one schema per element, normalised as
	// PostgreSQL would ("$user" kept as is). Nil when Reset is set.
	Path []string
	// Reset means the session default applies again (RESET, SET ... TO
	// DEFAULT, RESET ALL, DISCARD ALL).
	Reset bool
	// Local means SET LOCAL: the change ends with the transaction.
	Local bool
}

// CopyOption is one COPY option, as written.
type CopyOption struct {
	Name  string
	Value string
}

// Copy describes a COPY statement.
type Copy struct {
	Table   policy.QualifiedName // zero for COPY (query) TO
	Columns []string             // nil when no column list was given
	From    bool                 // COPY ... FROM (into the table)
	Program bool
	File    string // empty for STDIN/STDOUT
	Options []CopyOption
	// Query is the analysis of COPY (query) TO; nil otherwise.
	Query *Statement
	// Encrypted lists the policy columns the COPY moves; non-empty COPYs are
	// refused until COPY support lands.
	Encrypted []*policy.Column
}

// Statement is the plan for one statement of a query text.
type Statement struct {
	Kind           Kind
	Offset, Length int // the statement's span in the query text

	// Params[n-1] is the policy column that parameter $n is bound for, or
	// nil when $n is an ordinary parameter. Its length is the highest
	// parameter number the statement uses.
	Params []*policy.Column
	// ParamShapes[n-1] is how $n is compared (ShapeScalar, ShapeAny or
	// ShapeAll); for ShapeAny and ShapeAll the text says = ANY($n::bytea[])
	// or <> ALL($n::bytea[]) and the value bound must be a bytea array.
	// Nil when every parameter is scalar.
	ParamShapes []Shape
	// Literals are the literals bound for policy columns, in text order.
	Literals []Literal
	// Results describes the output columns by position when they are
	// known. It is nil for statements that return no rows and when
	// ResultsFromRowDescription is set.
	Results []ResultColumn
	// ResultsFromRowDescription is set when the output columns could not
	// be enumerated (SELECT * without catalog information) but every
	// output that can carry ciphertext is a direct table column: decide
	// each field from RowDescription's table OID and attribute number.
	ResultsFromRowDescription bool

	Prepare    *Prepare
	Execute    *Execute
	Deallocate *Deallocate
	SearchPath *SearchPath
	Copy       *Copy

	edits []edit // fixed text replacements (casts, PREPARE argument types)
}

// IsPassthrough reports whether the statement can be sent unchanged and
// needs nothing from the session beyond RowDescription-based decryption.
func (s *Statement) IsPassthrough() bool {
	return len(s.Literals) == 0 && len(s.edits) == 0 && !slices.ContainsFunc(s.Params, notNil) &&
		!slices.ContainsFunc(s.Results, func(r ResultColumn) bool { return r.Column != nil }) &&
		s.Prepare == nil && s.Execute == nil && s.Deallocate == nil && s.SearchPath == nil && s.Copy == nil
}

func notNil(c *policy.Column) bool { return c != nil }

// Plan is the analysis of one query text. A Plan is immutable and shared
// between sessions through the Analyzer's cache.
type Plan struct {
	// Statements holds one entry per statement, in order. It is nil for a
	// text that took the fast path (it cannot mention a policy table).
	Statements []*Statement
}

var passthroughPlan = &Plan{}

// IsPassthrough reports whether the text can be sent unchanged: nothing to
// encrypt, no result column that needs the analysis, no session effect.
// Results that come straight from table columns are still decrypted by
// RowDescription's table OID and attribute number.
func (p *Plan) IsPassthrough() bool {
	for _, s := range p.Statements {
		if !s.IsPassthrough() {
			return false
		}
	}
	return true
}

// NeedsRewrite reports whether Rewrite would change the text.
func (p *Plan) NeedsRewrite() bool {
	for _, s := range p.Statements {
		if len(s.Literals) > 0 || len(s.edits) > 0 {
			return true
		}
	}
	return false
}

// edit replaces text[start:end] with repl.
type edit struct {
	start, end int
	repl       string
}

// Rewrite returns sql with every bound literal replaced by a bytea literal
// of the ciphertext encrypt returns for it, and every cast or PREPARE
// parameter type that must become bytea rewritten; everything else stays
// byte for byte. sql must be the text the plan was made from. The
// ciphertext is written as E'\\x<hex>'::bytea, which reads the same whatever
// standard_conforming_strings is.
func (p *Plan) Rewrite(sql string, encrypt func(lit Literal) ([]byte, error)) (string, error) {
	return p.RewriteVersions(sql, func(lit Literal) ([][]byte, error) {
		ct, err := encrypt(lit)
		return [][]byte{ct}, err
	})
}

// RewriteVersions is Rewrite where encrypt returns the literal's ciphertext
// under each active key version, primary first: ShapeAny and ShapeAll
// literals become ANY/ALL of an array of them, ShapeList literals one list
// item each, ShapeScalar literals take the first.
func (p *Plan) RewriteVersions(sql string, encrypt func(lit Literal) ([][]byte, error)) (string, error) {
	type rep struct {
		edit
		lit *Literal
	}
	var reps []rep
	for _, s := range p.Statements {
		for i := range s.Literals {
			l := &s.Literals[i]
			reps = append(reps, rep{edit{l.Offset, l.Offset + l.Length, ""}, l})
		}
		for _, e := range s.edits {
			reps = append(reps, rep{edit: e})
		}
	}
	if len(reps) == 0 {
		return sql, nil
	}
	slices.SortFunc(reps, func(a, b rep) int { return a.start - b.start })
	var b strings.Builder
	b.Grow(len(sql) + 64*len(reps))
	pos := 0
	for _, r := range reps {
		if r.start < pos || r.end > len(sql) || r.start > r.end {
			return "", fmt.Errorf("failed to rewrite statement: %w", ErrPlanMismatch)
		}
		b.WriteString(sql[pos:r.start])
		repl := r.repl
		if r.lit != nil {
			cts, err := encrypt(*r.lit)
			if err != nil {
				return "", fmt.Errorf("failed to encrypt literal for %s: %w", r.lit.Column, err)
			}
			if len(cts) == 0 && r.lit.Shape != ShapeArrayText {
				return "", fmt.Errorf("failed to encrypt literal for %s: no ciphertext", r.lit.Column)
			}
			repl = shapedLiteral(r.lit.Shape, cts)
		}
		if r.start > 0 && isIdentByte(sql[r.start-1]) {
			b.WriteByte(' ')
		}
		b.WriteString(repl)
		if r.end < len(sql) && isIdentByte(sql[r.end]) {
			b.WriteByte(' ')
		}
		pos = r.end
	}
	b.WriteString(sql[pos:])
	return b.String(), nil
}

// shapedLiteral renders ciphertexts for a literal of the given shape.
func shapedLiteral(shape Shape, cts [][]byte) string {
	if len(cts) == 1 && shape != ShapeArray && shape != ShapeArrayText {
		return byteaLiteral(cts[0]) // = x is = ANY(ARRAY[x])
	}
	switch shape {
	case ShapeArrayText:
		if len(cts) == 0 {
			return "'{}'::bytea[]"
		}
		fallthrough
	case ShapeArray:
		parts := make([]string, len(cts))
		for i, ct := range cts {
			parts[i] = byteaLiteral(ct)
		}
		return "ARRAY[" + strings.Join(parts, ", ") + "]::bytea[]"
	case ShapeAny, ShapeAll:
		var b strings.Builder
		if shape == ShapeAny {
			b.WriteString("ANY (ARRAY[")
		} else {
			b.WriteString("ALL (ARRAY[")
		}
		for i, ct := range cts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(byteaLiteral(ct))
		}
		b.WriteString("])")
		return b.String()
	case ShapeList:
		parts := make([]string, len(cts))
		for i, ct := range cts {
			parts[i] = byteaLiteral(ct)
		}
		return strings.Join(parts, ", ")
	}
	return byteaLiteral(cts[0])
}

func byteaLiteral(ct []byte) string {
	buf := make([]byte, 0, len(ct)*2+14)
	buf = append(buf, `E'\\x`...)
	buf = hex.AppendEncode(buf, ct)
	buf = append(buf, `'::bytea`...)
	return string(buf)
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// BindExecute completes the plans of SQL-level EXECUTE statements with what
// the session remembered from PREPARE: lookup returns the Prepare.Statement
// stored under a name. Literal arguments feeding policy parameters become
// Literals, $n arguments become Params, and the prepared statement's
// Results become the EXECUTE's. It returns p itself when the plan has no
// EXECUTE, and a *Refusal when a name is unknown or an argument cannot be
// encrypted.
func (p *Plan) BindExecute(lookup func(name string) (*Statement, bool)) (*Plan, error) {
	if !slices.ContainsFunc(p.Statements, func(s *Statement) bool { return s.Execute != nil }) {
		return p, nil
	}
	np := &Plan{Statements: slices.Clone(p.Statements)}
	// PREPAREs and DEALLOCATEs earlier in the same text come first.
	local := map[string]*Statement{}
	dropped := map[string]bool{}
	allDropped := false
	for i, s := range p.Statements {
		if s.Prepare != nil {
			local[s.Prepare.Name] = s.Prepare.Statement
			delete(dropped, s.Prepare.Name)
		}
		if d := s.Deallocate; d != nil {
			if d.All {
				clear(local)
				allDropped = true
			} else {
				delete(local, d.Name)
				dropped[d.Name] = true
			}
		}
		if s.Execute == nil {
			continue
		}
		inner, ok := local[s.Execute.Name]
		if !ok && !allDropped && !dropped[s.Execute.Name] {
			inner, ok = lookup(s.Execute.Name)
		}
		if !ok {
			return nil, &Refusal{SQLState: SQLStateUndefinedPrepared,
				Message: "pgseal: prepared statement " + policy.QuoteIdent(s.Execute.Name) + " does not exist"}
		}
		cp := *s
		cp.Literals, cp.edits = slices.Clone(s.Literals), slices.Clone(s.edits)
		an := &analysis{}
		an.reset(&cp)
		for n, col := range s.Params {
			if col != nil {
				an.params[n+1] = col
			}
		}
		for j, arg := range s.Execute.args {
			var col *policy.Column
			if j < len(inner.Params) {
				col = inner.Params[j]
			}
			if col == nil {
				if arg.val.kind == vCol {
					return nil, refuse("EXECUTE passes the ciphertext of encrypted column %s to an ordinary parameter", arg.val.col)
				}
				continue
			}
			span := func() (int, int, error) { return arg.start, arg.end, arg.spanErr }
			if j < len(inner.ParamShapes) && inner.ParamShapes[j].IsArray() {
				an.shape = ShapeArray
			}
			err := an.bindSpan(arg.val, col, "EXECUTE", span)
			an.shape = ShapeScalar
			if err != nil {
				return nil, err
			}
		}
		maxParam := len(s.Params)
		for n := range an.params {
			maxParam = max(maxParam, n)
		}
		if len(an.params) > 0 {
			cp.Params = make([]*policy.Column, maxParam)
			cp.ParamShapes = nil
			for n, col := range an.params {
				cp.Params[n-1] = col
				if sh := an.shapes[n]; sh != ShapeScalar {
					if cp.ParamShapes == nil {
						cp.ParamShapes = make([]Shape, maxParam)
					}
					cp.ParamShapes[n-1] = sh
				}
			}
		}
		slices.SortFunc(cp.Literals, func(x, y Literal) int { return x.Offset - y.Offset })
		if cp.Kind == KindExecute {
			cp.Results, cp.ResultsFromRowDescription = inner.Results, inner.ResultsFromRowDescription
		}
		np.Statements[i] = &cp
	}
	return np, nil
}
