package codec

import (
	"bytes"
	"sort"
	"unicode/utf8"
)

// jsonbMaxDepth bounds the nesting of arrays and objects.
const jsonbMaxDepth = 10000

// jsonNode is a parsed JSON value. Strings are unescaped UTF-8; numbers are
// in canonical numeric form.
type jsonNode struct {
	kind    byte // '{', '[', '"', '0' (number), 't', 'f', 'n'
	text    []byte
	members []jsonMember
	elems   []jsonNode
}

type jsonMember struct {
	key   []byte
	value jsonNode
}

func canonicalJSONB(dst []byte, format int16, wire []byte) ([]byte, error) {
	if format == BinaryFormat {
		if len(wire) == 0 || wire[0] != 1 {
			return dst, syntaxErr(JSONB, format, "unsupported jsonb version number")
		}
		wire = wire[1:]
		if !utf8.Valid(wire) {
			return dst, codeErr(JSONB, format, CodeCharacterNotInRepertoire, "invalid byte sequence for encoding UTF8")
		}
	}
	p := jsonParser{s: wire, format: format}
	p.skipSpace()
	v, err := p.value(0)
	if err != nil {
		return dst, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return dst, p.syntax()
	}
	return appendJSON(dst, &v), nil
}

func encodeJSONB(dst []byte, format int16, c []byte) ([]byte, error) {
	// Re-reading costs as much as canonicalising, but a jsonb value that
	// is not valid JSON must never reach a client.
	if !utf8.Valid(c) {
		return dst, corruptErr(JSONB, format)
	}
	n := len(dst)
	dst, err := canonicalJSONB(dst, TextFormat, c)
	if err != nil || !bytes.Equal(dst[n:], c) {
		return dst[:n], corruptErr(JSONB, format)
	}
	dst = dst[:n]
	if format == BinaryFormat {
		dst = append(dst, 1)
	}
	return append(dst, c...), nil
}

type jsonParser struct {
	s      []byte
	i      int
	format int16
}

func (p *jsonParser) syntax() error {
	return syntaxErr(JSONB, p.format, "invalid input syntax for type json")
}

func (p *jsonParser) skipSpace() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (jsonNode, error) {
	if depth > jsonbMaxDepth {
		return jsonNode{}, codeErr(JSONB, p.format, "54001", "json nesting too deep")
	}
	if p.i >= len(p.s) {
		return jsonNode{}, p.syntax()
	}
	switch c := p.s[p.i]; {
	case c == '{':
		return p.object(depth)
	case c == '[':
		return p.array(depth)
	case c == '"':
		s, err := p.str()
		return jsonNode{kind: '"', text: s}, err
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case p.literal("true"):
		return jsonNode{kind: 't'}, nil
	case p.literal("false"):
		return jsonNode{kind: 'f'}, nil
	case p.literal("null"):
		return jsonNode{kind: 'n'}, nil
	}
	return jsonNode{}, p.syntax()
}

// literal consumes word when it is next and is not followed by more of an
// identifier.
func (p *jsonParser) literal(word string) bool {
	if !bytes.HasPrefix(p.s[p.i:], []byte(word)) {
		return false
	}
	if end := p.i + len(word); end < len(p.s) {
		c := p.s[end]
		if c == '_' || c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z' || c >= 0x80 {
			return false
		}
	}
	p.i += len(word)
	return true
}

func (p *jsonParser) object(depth int) (jsonNode, error) {
	p.i++ // '{'
	n := jsonNode{kind: '{'}
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return n, nil
	}
	for {
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return n, p.syntax()
		}
		key, err := p.str()
		if err != nil {
			return n, err
		}
		p.skipSpace()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return n, p.syntax()
		}
		p.i++
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return n, err
		}
		n.members = append(n.members, jsonMember{key: key, value: v})
		p.skipSpace()
		if p.i >= len(p.s) {
			return n, p.syntax()
		}
		if p.s[p.i] == '}' {
			p.i++
			break
		}
		if p.s[p.i] != ',' {
			return n, p.syntax()
		}
		p.i++
	}
	// jsonb order: shorter keys first, then bytewise; of duplicate keys
	// the last one wins.
	sort.SliceStable(n.members, func(a, b int) bool {
		ka, kb := n.members[a].key, n.members[b].key
		if len(ka) != len(kb) {
			return len(ka) < len(kb)
		}
		return bytes.Compare(ka, kb) < 0
	})
	out := n.members[:0]
	for i := range n.members {
		if i+1 < len(n.members) && bytes.Equal(n.members[i].key, n.members[i+1].key) {
			continue
		}
		out = append(out, n.members[i])
	}
	n.members = out
	return n, nil
}

func (p *jsonParser) array(depth int) (jsonNode, error) {
	p.i++ // '['
	n := jsonNode{kind: '['}
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return n, nil
	}
	for {
		p.skipSpace()
		v, err := p.value(depth + 1)
		if err != nil {
			return n, err
		}
		n.elems = append(n.elems, v)
		p.skipSpace()
		if p.i >= len(p.s) {
			return n, p.syntax()
		}
		if p.s[p.i] == ']' {
			p.i++
			return n, nil
		}
		if p.s[p.i] != ',' {
			return n, p.syntax()
		}
		p.i++
	}
}

// number reads the JSON number grammar and converts it as jsonb does, to a
// numeric, kept in canonical numeric form.
func (p *jsonParser) number() (jsonNode, error) {
	start := p.i
	s := p.s
	i := p.i
	if s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return jsonNode{}, p.syntax()
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return jsonNode{}, p.syntax()
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return jsonNode{}, p.syntax()
		}
	}
	// A number directly followed by an identifier character ("01", "1x")
	// is one bad token, as in PostgreSQL's lexer.
	if i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i]|0x20 >= 'a' && s[i]|0x20 <= 'z' || s[i] == '_' || s[i] == '.' || s[i] >= 0x80) {
		return jsonNode{}, p.syntax()
	}
	p.i = i
	d, err := parseDecimal(JSONB, s[start:i])
	if err != nil {
		return jsonNode{}, err
	}
	return jsonNode{kind: '0', text: d.appendText(nil)}, nil
}

// str reads a JSON string and returns its unescaped UTF-8 content.
func (p *jsonParser) str() ([]byte, error) {
	p.i++ // opening quote
	s := p.s
	start := p.i
	// Fast path: no escapes.
	for p.i < len(s) {
		c := s[p.i]
		if c == '"' {
			out := s[start:p.i]
			p.i++
			return out, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, p.syntax()
		}
		p.i++
	}
	out := append([]byte(nil), s[start:p.i]...)
	for p.i < len(s) {
		c := s[p.i]
		switch {
		case c == '"':
			p.i++
			return out, nil
		case c < 0x20:
			return nil, p.syntax()
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(s) {
			return nil, p.syntax()
		}
		e := s[p.i]
		p.i++
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.syntax()
			}
			switch {
			case r == 0:
				return nil, codeErr(JSONB, p.format, CodeUntranslatableCharacter, "unsupported Unicode escape sequence")
			case r >= 0xD800 && r <= 0xDBFF:
				if p.i+1 >= len(s) || s[p.i] != '\\' || s[p.i+1] != 'u' {
					return nil, p.syntax()
				}
				p.i += 2
				lo, ok := p.hex4()
				if !ok || lo < 0xDC00 || lo > 0xDFFF {
					return nil, p.syntax()
				}
				r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
			case r >= 0xDC00 && r <= 0xDFFF:
				return nil, p.syntax()
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, p.syntax()
		}
	}
	return nil, p.syntax()
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range p.s[p.i : p.i+4] {
		v := digitVal(c)
		if v > 15 {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	p.i += 4
	return r, true
}

// appendJSON writes v as PostgreSQL's jsonb output does: ", " between
// elements, ": " after keys, and strings escaped by escape_json.
func appendJSON(dst []byte, v *jsonNode) []byte {
	switch v.kind {
	case '{':
		dst = append(dst, '{')
		for i := range v.members {
			if i > 0 {
				dst = append(dst, ',', ' ')
			}
			dst = appendJSONString(dst, v.members[i].key)
			dst = append(dst, ':', ' ')
			dst = appendJSON(dst, &v.members[i].value)
		}
		return append(dst, '}')
	case '[':
		dst = append(dst, '[')
		for i := range v.elems {
			if i > 0 {
				dst = append(dst, ',', ' ')
			}
			dst = appendJSON(dst, &v.elems[i])
		}
		return append(dst, ']')
	case '"':
		return appendJSONString(dst, v.text)
	case '0':
		return append(dst, v.text...)
	case 't':
		return append(dst, "true"...)
	case 'f':
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}

func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for _, c := range s {
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return append(dst, '"')
}
