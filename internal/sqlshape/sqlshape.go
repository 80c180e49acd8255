package sqlshape

import (
	"fmt"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// MaxLen bounds the shape's length in bytes; a longer shape is cut and ends
// with "...".
const MaxLen = 2048

// Placeholder stands for each literal.
const Placeholder = "?"

// Of returns the shape of sql: its tokens with each literal replaced by
// Placeholder and comments removed, separated as in sql (whitespace and
// comments between tokens become one space). A text the lexer cannot scan gives a
// description of its length only.
func Of(sql string) string {
	res, err := pg.Scan(sql)
	if err != nil {
		return fmt.Sprintf("(statement of %d bytes that does not scan)", len(sql))
	}
	var b strings.Builder
	prevEnd, space := 0, false
	for _, t := range res.GetTokens() {
		start, end := int(t.GetStart()), int(t.GetEnd())
		if start < prevEnd || end < start || end > len(sql) {
			return fmt.Sprintf("(statement of %d bytes that does not scan)", len(sql))
		}
		space = space || start > prevEnd
		prevEnd = end
		var text string
		switch t.GetToken() {
		case pg.Token_SQL_COMMENT, pg.Token_C_COMMENT:
			space = true
			continue
		case pg.Token_SCONST, pg.Token_USCONST, pg.Token_BCONST, pg.Token_XCONST, pg.Token_ICONST, pg.Token_FCONST:
			text = Placeholder
		default:
			text = sql[start:end]
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(text)
		if b.Len() > MaxLen {
			break
		}
	}
	out := strings.TrimSpace(b.String())
	if len(out) > MaxLen {
		n := MaxLen
		for n > 0 && !utf8.RuneStart(out[n]) {
			n--
		}
		out = out[:n] + "..."
	}
	return out
}
