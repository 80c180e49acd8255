package policy

import (
	"errors"
	"strings"
)

// MaxIdentifierLen is PostgreSQL's identifier length limit in bytes
// (NAMEDATALEN-1). PostgreSQL truncates longer names; the policy refuses them
// so that what the file says is what the database sees.
const MaxIdentifierLen = 63

// DefaultSchema is the schema of a table named without one.
const DefaultSchema = "public"

var (
	errEmptyIdent    = errors.New("empty identifier")
	errUnterminated  = errors.New("unterminated quoted identifier")
	errBadIdentChar  = errors.New("invalid character in unquoted identifier")
	errIdentTooLong  = errors.New("identifier longer than 63 bytes")
	errTooManyParts  = errors.New("too many dotted parts (want table or schema.table)")
	errTrailingInput = errors.New("unexpected character after quoted identifier")
)

// QualifiedName is a schema-qualified table name, with both parts already
// normalised as PostgreSQL would store them in its catalog.
type QualifiedName struct {
	Schema string
	Name   string
}

// String returns the name as SQL would write it, quoting a part only when
// it needs quotes (e.g. public.users, "MixedCase".t).
func (q QualifiedName) String() string {
	return QuoteIdent(q.Schema) + "." + QuoteIdent(q.Name)
}

// QuoteIdent returns name as a SQL identifier: unchanged when it is a plain
// lower-case identifier, double-quoted otherwise. It does not know
// PostgreSQL's reserved words; the result is meant for messages.
func QuoteIdent(name string) string {
	if isPlainIdent(name) {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

func isPlainIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c == '_':
		case (c >= '0' && c <= '9') || c == '$':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// ParseQualifiedName parses a table name written as in SQL: "table" (schema
// public), "schema.table", with each part either unquoted (folded to lower
// case) or double-quoted (kept as written).
func ParseQualifiedName(s string) (QualifiedName, error) {
	parts, err := splitIdents(s)
	if err != nil {
		return QualifiedName{}, err
	}
	switch len(parts) {
	case 1:
		return QualifiedName{Schema: DefaultSchema, Name: parts[0]}, nil
	case 2:
		return QualifiedName{Schema: parts[0], Name: parts[1]}, nil
	default:
		return QualifiedName{}, errTooManyParts
	}
}

// ParseIdentifier parses a single identifier written as in SQL: unquoted
// (folded to lower case) or double-quoted (kept as written).
func ParseIdentifier(s string) (string, error) {
	parts, err := splitIdents(s)
	if err != nil {
		return "", err
	}
	if len(parts) != 1 {
		return "", errors.New("a column name has no dotted parts")
	}
	return parts[0], nil
}

// splitIdents splits a dotted SQL name into its normalised parts.
func splitIdents(s string) ([]string, error) {
	var parts []string
	i := 0
	for {
		s = s[i:]
		var part string
		var n int
		var err error
		if strings.HasPrefix(s, `"`) {
			part, n, err = quotedIdent(s)
		} else {
			part, n, err = unquotedIdent(s)
		}
		if err != nil {
			return nil, err
		}
		if len(part) > MaxIdentifierLen {
			return nil, errIdentTooLong
		}
		parts = append(parts, part)
		if n == len(s) {
			return parts, nil
		}
		if s[n] != '.' {
			return nil, errTrailingInput
		}
		i = n + 1
	}
}

func quotedIdent(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] != '"' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		if b.Len() == 0 {
			return "", 0, errEmptyIdent
		}
		return b.String(), i + 1, nil
	}
	return "", 0, errUnterminated
}

// unquotedIdent reads an unquoted identifier and folds ASCII letters to
// lower case, as PostgreSQL does in a UTF-8 database.
func unquotedIdent(s string) (string, int, error) {
	n := 0
	for n < len(s) && s[n] != '.' {
		c := s[n]
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80 ||
			(n > 0 && ((c >= '0' && c <= '9') || c == '$'))
		if !ok {
			return "", 0, errBadIdentChar
		}
		n++
	}
	if n == 0 {
		return "", 0, errEmptyIdent
	}
	return asciiLower(s[:n]), n, nil
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
