package rewrite

import (
	"sort"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/policy"
)

func (a *analysis) tokens() []*pg.ScanToken {
	if !a.scanned {
		a.scanned = true
		if res, err := pg.Scan(a.sql); err == nil {
			a.toks = res.Tokens
		}
	}
	return a.toks
}

// tokenAt returns the index of the token starting at byte offset loc, or -1.
func (a *analysis) tokenAt(loc int) int {
	toks := a.tokens()
	i := sort.Search(len(toks), func(i int) bool { return int(toks[i].Start) >= loc })
	if i < len(toks) && int(toks[i].Start) == loc {
		return i
	}
	return -1
}

func tokIs(toks []*pg.ScanToken, i int, t pg.Token) bool {
	return i >= 0 && i < len(toks) && toks[i].Token == t
}

var errNoSpan = &Refusal{SQLState: SQLStateFeatureNotSupported,
	Message: "pgseal: cannot locate a value bound for an encrypted column in the statement text"}

// valueSpan returns the text span of a literal, parameter or NULL bound for
// a policy column, including a leading minus sign and its cast.
func (a *analysis) valueSpan(v value) (int, int, error) {
	toks := a.tokens()
	i := a.tokenAt(v.loc)
	if i < 0 {
		return 0, 0, errNoSpan
	}
	first := i
	switch toks[i].Token {
	case pg.Token_ASCII_45: // '-' folded into a numeric constant
		i++
		if !tokIs(toks, i, pg.Token_ICONST) && !tokIs(toks, i, pg.Token_FCONST) {
			return 0, 0, errNoSpan
		}
	case pg.Token_USCONST:
		if tokIs(toks, i+1, pg.Token_UESCAPE) && tokIs(toks, i+2, pg.Token_SCONST) {
			i += 2
		}
	case pg.Token_SCONST, pg.Token_BCONST, pg.Token_XCONST, pg.Token_ICONST, pg.Token_FCONST,
		pg.Token_TRUE_P, pg.Token_FALSE_P, pg.Token_NULL_P, pg.Token_PARAM:
	default:
		return 0, 0, errNoSpan
	}
	last := i
	if v.cast == nil {
		return int(toks[first].Start), int(toks[last].End), nil
	}
	tc := v.cast
	if tc.Location < 0 { // type 'literal'
		start := int(tc.TypeName.GetLocation())
		if start < 0 || start > int(toks[first].Start) {
			return 0, 0, errNoSpan
		}
		return start, int(toks[last].End), nil
	}
	j := a.tokenAt(int(tc.Location))
	switch {
	case tokIs(toks, j, pg.Token_TYPECAST): // value::type, maybe (value)::type
		for first > 0 && tokIs(toks, first-1, pg.Token_ASCII_40) && tokIs(toks, last+1, pg.Token_ASCII_41) && last+1 < j {
			first--
			last++
		}
		if last+1 != j {
			return 0, 0, errNoSpan
		}
		end, ok := typeNameEnd(toks, j+1)
		if !ok {
			return 0, 0, errNoSpan
		}
		return int(toks[first].Start), end, nil
	case tokIs(toks, j, pg.Token_CAST): // CAST(value AS type)
		if !tokIs(toks, j+1, pg.Token_ASCII_40) {
			return 0, 0, errNoSpan
		}
		depth := 0
		for k := j + 1; k < len(toks); k++ {
			switch toks[k].Token {
			case pg.Token_ASCII_40:
				depth++
			case pg.Token_ASCII_41:
				depth--
				if depth == 0 {
					return int(toks[j].Start), int(toks[k].End), nil
				}
			}
		}
	}
	return 0, 0, errNoSpan
}

// typeNameEnd returns the end offset of the type name starting at token i.
func typeNameEnd(toks []*pg.ScanToken, i int) (int, bool) {
	isWord := func(k int) bool {
		return k < len(toks) && (toks[k].Token == pg.Token_IDENT || toks[k].KeywordKind != pg.KeywordKind_NO_KEYWORD)
	}
	if !isWord(i) {
		return 0, false
	}
	prev := toks[i].Token
	i++
	for i < len(toks) {
		switch t := toks[i].Token; {
		case t == pg.Token_ASCII_46 && isWord(i+1): // schema.type
			prev = toks[i+1].Token
			i += 2
		case t == pg.Token_ASCII_40 || t == pg.Token_ASCII_91: // (typmod) or [bounds]
			closeTok := pg.Token_ASCII_41
			if t == pg.Token_ASCII_91 {
				closeTok = pg.Token_ASCII_93
			}
			k := i + 1
			for k < len(toks) && toks[k].Token != closeTok {
				k++
			}
			if k == len(toks) {
				return 0, false
			}
			i = k + 1
		case (t == pg.Token_WITH || t == pg.Token_WITHOUT) && tokIs(toks, i+1, pg.Token_TIME) && tokIs(toks, i+2, pg.Token_ZONE):
			i += 3
		case t == pg.Token_PRECISION && prev == pg.Token_DOUBLE_P,
			t == pg.Token_VARYING && (prev == pg.Token_CHARACTER || prev == pg.Token_CHAR_P || prev == pg.Token_BIT),
			(t == pg.Token_CHARACTER || t == pg.Token_CHAR_P || t == pg.Token_VARCHAR) && prev == pg.Token_NATIONAL:
			prev = t
			i++
		default:
			return int(toks[i-1].End), true
		}
	}
	return int(toks[i-1].End), true
}

// castType maps a cast's type name to a declared type. Type modifiers,
// arrays and types outside pg_catalog give ok=false.
func castType(tn *pg.TypeName) (codec.Type, bool) {
	if tn == nil || len(tn.Typmods) > 0 || len(tn.ArrayBounds) > 0 || tn.Setof || tn.PctType {
		return codec.Invalid, false
	}
	var names []string
	for _, n := range tn.Names {
		names = append(names, n.GetString_().GetSval())
	}
	if len(names) == 2 && names[0] == "pg_catalog" {
		names = names[1:]
	}
	if len(names) != 1 {
		return codec.Invalid, false
	}
	return codec.ParseType(names[0])
}

// compatible reports whether a value cast to t may be stored in col with
// the cast removed: the same type, or text and varchar.
func compatible(t codec.Type, col *policy.Column) bool {
	if t == col.Type {
		return true
	}
	text := func(t codec.Type) bool { return t == codec.Text || t == codec.Varchar }
	return text(t) && text(col.Type)
}

func typeNameString(tn *pg.TypeName) string {
	var names []string
	for _, n := range tn.GetNames() {
		names = append(names, n.GetString_().GetSval())
	}
	if len(names) == 2 && names[0] == "pg_catalog" {
		names = names[1:]
	}
	s := strings.Join(names, ".")
	if len(tn.GetTypmods()) > 0 {
		s += "(...)"
	}
	if len(tn.GetArrayBounds()) > 0 {
		s += "[]"
	}
	return s
}
