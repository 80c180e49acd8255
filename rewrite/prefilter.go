package rewrite

import (
	"strings"
	"unicode/utf8"
)

// forceParse lists words that make a text worth parsing even when it names
// no policy table or column: statements with session effects the session
// must track (prepared statements, search_path).
var forceParse = []string{"execute", "prepare", "deallocate", "discard", "reset", "search_path", "set_config", "schema"}

// prefilter decides cheaply whether a text can mention a policy table.
// It looks at every identifier-like run of the text (inside strings and
// comments too, which only makes it more cautious), folds it to lower
// case, truncates it as PostgreSQL truncates identifiers, and looks it up
// in a set of policy table, view and column names. A Unicode-escaped
// identifier (U&"...") always counts as a mention.
type prefilter struct {
	names map[string]struct{}
	first [256]bool // first bytes of names, to skip most words cheaply
	lens  uint64    // bit n set when some name is n bytes long (n < 64)
}

func newPrefilter(names, keywords []string) *prefilter {
	p := &prefilter{names: map[string]struct{}{}}
	for _, n := range append(append([]string(nil), names...), keywords...) {
		f := foldName(n)
		if f == "" {
			continue
		}
		p.names[f] = struct{}{}
		p.first[f[0]] = true
		p.lens |= 1 << len(f)
	}
	return p
}

// foldName lower-cases (Unicode-wise, a superset of PostgreSQL's ASCII
// folding) and truncates to 63 bytes on a rune boundary.
func foldName(s string) string {
	s = strings.ToLower(s)
	if len(s) > 63 {
		n := 63
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return s
}

// mayMention reports whether text may refer to a policy name.
func (p *prefilter) mayMention(text string) bool {
	var buf [64]byte
	for i := 0; i < len(text); {
		c := text[i]
		if c == '"' {
			// Quoted identifier: compare its contents.
			j := i + 1
			var b strings.Builder
			for j < len(text) {
				if text[j] == '"' {
					if j+1 < len(text) && text[j+1] == '"' {
						b.WriteByte('"')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(text[j])
				j++
			}
			if p.has(b.String()) {
				return true
			}
			i = j + 1
			continue
		}
		if !isIdentByte(c) {
			i++
			continue
		}
		if (c == 'u' || c == 'U') && i+2 < len(text) && text[i+1] == '&' && text[i+2] == '"' {
			return true
		}
		j := i
		ascii := true
		for j < len(text) && isIdentByte(text[j]) {
			if text[j] >= 0x80 {
				ascii = false
			}
			j++
		}
		word := text[i:j]
		if p.checkWord(word, ascii, &buf) {
			return true
		}
		// '$' may join what a dollar quote or a sloppy reader sees as
		// separate words: look at the pieces too.
		if strings.IndexByte(word, '$') >= 0 {
			for rest := word; rest != ""; {
				part, after, _ := strings.Cut(rest, "$")
				if p.checkWord(part, ascii, &buf) {
					return true
				}
				rest = after
			}
		}
		i = j
	}
	return false
}

func (p *prefilter) checkWord(word string, ascii bool, buf *[64]byte) bool {
	// A number glued to a word ("1users") lexes as two tokens in older
	// servers: look at the word without its leading digits.
	k := 0
	for k < len(word) && word[k] >= '0' && word[k] <= '9' {
		k++
	}
	word = word[k:]
	if word == "" {
		return false
	}
	if !ascii || len(word) > len(buf) {
		return p.has(word)
	}
	n := min(len(word), 63)
	if p.lens&(1<<n) == 0 || !p.first[word[0]|0x20] && !p.first[word[0]] {
		return false
	}
	copy(buf[:], word[:n])
	for x := 0; x < n; x++ {
		if buf[x] >= 'A' && buf[x] <= 'Z' {
			buf[x] += 'a' - 'A'
		}
	}
	_, ok := p.names[string(buf[:n])]
	return ok
}

func (p *prefilter) has(word string) bool {
	_, ok := p.names[foldName(word)]
	return ok
}
