package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/pgseal/pgseal/codec"
	"go.yaml.in/yaml/v3"
)

// MaxFileSize bounds the size of a policy file.
const MaxFileSize = 4 << 20

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read policy: %w", err)
	}
	return Parse(data, path)
}

// Parse parses a policy from data; filename is used in error messages only.
// On failure the error joins one *Error per problem (errors.Join), each
// wrapping ErrInvalid.
func Parse(data []byte, filename string) (*Policy, error) {
	l := &loader{file: filename, p: &Policy{file: filename, byName: map[QualifiedName]*Table{}}}
	if len(data) > MaxFileSize {
		l.errorf(nil, "file larger than %d bytes", MaxFileSize)
		return nil, l.err()
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.errorf(nil, "empty policy (want version and tables)")
		} else {
			l.errorf(nil, "%s", yamlMessage(err))
		}
		return nil, l.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		l.errorf(&extra, "more than one YAML document")
		return nil, l.err()
	}
	l.document(&doc)
	if len(l.errs) > 0 {
		return nil, l.err()
	}
	sort.Slice(l.p.tables, func(i, j int) bool {
		a, b := l.p.tables[i].Name, l.p.tables[j].Name
		if a.Schema != b.Schema {
			return a.Schema < b.Schema
		}
		return a.Name < b.Name
	})
	return l.p, nil
}

// yamlMessage strips the library prefix from a YAML syntax error; its
// message already carries "line N:".
func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

type loader struct {
	file string
	p    *Policy
	errs []error
}

func (l *loader) errorf(n *yaml.Node, format string, args ...any) {
	e := &Error{File: l.file, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *loader) err() error { return errors.Join(l.errs...) }

// mapping checks that n is a mapping without aliases, merge keys or
// duplicate keys, and returns its key/value pairs.
func (l *loader) mapping(n *yaml.Node, what string) [][2]*yaml.Node {
	if n.Kind == yaml.AliasNode {
		l.errorf(n, "%s: YAML aliases are not allowed", what)
		return nil
	}
	if n.Kind != yaml.MappingNode {
		l.errorf(n, "%s must be a mapping", what)
		return nil
	}
	seen := map[string]bool{}
	var out [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			l.errorf(k, "%s: keys must be plain strings", what)
			continue
		}
		if seen[k.Value] {
			l.errorf(k, "%s: duplicate key %q", what, k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

func (l *loader) scalar(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		l.errorf(n, "%s must be a scalar", what)
		return "", false
	}
	return n.Value, true
}

func (l *loader) document(doc *yaml.Node) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		l.errorf(doc, "empty policy (want version and tables)")
		return
	}
	var version, tables *yaml.Node
	top := doc.Content[0]
	for _, kv := range l.mapping(top, "policy") {
		switch kv[0].Value {
		case "version":
			version = kv[1]
		case "tables":
			tables = kv[1]
		default:
			l.errorf(kv[0], "unknown key %q (want version, tables)", kv[0].Value)
		}
	}
	if top.Kind != yaml.MappingNode {
		return
	}
	if version == nil {
		l.errorf(top, "missing key \"version\"")
	} else if v, ok := l.scalar(version, "version"); ok && (v != "1" || version.Tag != "!!int") {
		l.errorf(version, "unsupported version %q (want 1)", v)
	}
	if tables == nil {
		l.errorf(top, "missing key \"tables\"")
		return
	}
	if tables.Kind == yaml.ScalarNode && tables.Tag == "!!null" {
		return // an empty policy: no table is encrypted
	}
	keySets := map[string]bool{}
	for _, kv := range l.mapping(tables, "tables") {
		l.table(kv[0], kv[1], keySets)
	}
	for k := range keySets {
		l.p.keySets = append(l.p.keySets, k)
	}
	slices.Sort(l.p.keySets)
}

func (l *loader) table(key, val *yaml.Node, keySets map[string]bool) {
	name, err := ParseQualifiedName(key.Value)
	if err != nil {
		l.errorf(key, "table %q: %v", key.Value, err)
		return
	}
	if _, dup := l.p.byName[name]; dup {
		l.errorf(key, "duplicate table %s", name)
		return
	}
	t := &Table{Name: name, byName: map[string]*Column{}}
	for _, kv := range l.mapping(val, "table "+name.String()) {
		l.column(t, kv[0], kv[1], keySets)
	}
	if val.Kind == yaml.MappingNode && len(val.Content) == 0 {
		l.errorf(val, "table %s has no columns", name)
	}
	l.p.byName[name] = t
	l.p.tables = append(l.p.tables, t)
}

func (l *loader) column(t *Table, key, val *yaml.Node, keySets map[string]bool) {
	name, err := ParseIdentifier(key.Value)
	if err != nil {
		l.errorf(key, "table %s: column %q: %v", t.Name, key.Value, err)
		return
	}
	c := &Column{Table: t.Name, Name: name}
	if _, dup := t.byName[name]; dup {
		l.errorf(key, "duplicate column %s", c)
		return
	}
	var typ, mode, keySet *yaml.Node
	for _, kv := range l.mapping(val, "column "+c.String()) {
		switch kv[0].Value {
		case "type":
			typ = kv[1]
		case "mode":
			mode = kv[1]
		case "key":
			keySet = kv[1]
		default:
			l.errorf(kv[0], "column %s: unknown key %q (want type, mode, key)", c, kv[0].Value)
		}
	}
	if val.Kind != yaml.MappingNode {
		return
	}
	ok := true
	if typ == nil {
		l.errorf(val, "column %s: missing key \"type\"", c)
		ok = false
	} else if s, sok := l.scalar(typ, "type"); sok {
		if c.Type, sok = codec.ParseType(s); !sok {
			l.errorf(typ, "column %s: unknown type %q", c, s)
			ok = false
		}
	} else {
		ok = false
	}
	if mode == nil {
		l.errorf(val, "column %s: missing key \"mode\" (deterministic or randomized)", c)
		ok = false
	} else if s, sok := l.scalar(mode, "mode"); sok {
		if c.Mode, sok = ParseMode(s); !sok {
			l.errorf(mode, "column %s: unknown mode %q (want deterministic or randomized)", c, s)
			ok = false
		}
	} else {
		ok = false
	}
	if keySet == nil {
		l.errorf(val, "column %s: missing key \"key\" (the key set)", c)
		ok = false
	} else if s, sok := l.scalar(keySet, "key"); sok {
		if !validKeySetName(s) {
			l.errorf(keySet, "column %s: invalid key set name %q", c, s)
			ok = false
		}
		c.KeySet, c.keyLine, c.keyCol = s, keySet.Line, keySet.Column
	} else {
		ok = false
	}
	if !ok {
		return
	}
	keySets[c.KeySet] = true
	t.byName[name] = c
	t.columns = append(t.columns, c)
}

// validKeySetName accepts non-empty printable names without spaces; the
// keystore decides which of them exist.
func validKeySetName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
