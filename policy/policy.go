package policy

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/pgseal/pgseal/codec"
)

// ErrInvalid is wrapped by every *Error: the policy file is not valid.
var ErrInvalid = errors.New("invalid policy")

// Error is one problem in a policy file, with its position.
type Error struct {
	File   string
	Line   int // 1-based; 0 when the problem has no position
	Column int // 1-based; 0 when unknown
	Msg    string
}

// Error returns "file:line:col: msg".
func (e *Error) Error() string {
	switch {
	case e.Line > 0 && e.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	default:
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
}

// Unwrap returns ErrInvalid.
func (e *Error) Unwrap() error { return ErrInvalid }

// Mode is how a column is encrypted.
type Mode uint8

// The encryption modes. The zero Mode is invalid.
const (
	// Randomized encryption gives a fresh ciphertext for every write: the
	// column supports storage, retrieval and IS [NOT] NULL only.
	Randomized Mode = iota + 1
	// Deterministic encryption gives equal ciphertexts for equal values
	// under one key version: equality, joins, GROUP BY, DISTINCT and unique
	// indexes work.
	Deterministic
)

// String returns the mode's policy name.
func (m Mode) String() string {
	switch m {
	case Randomized:
		return "randomized"
	case Deterministic:
		return "deterministic"
	default:
		return fmt.Sprintf("Mode(%d)", uint8(m))
	}
}

// ParseMode maps a policy mode name to a Mode.
func ParseMode(s string) (Mode, bool) {
	switch s {
	case "randomized":
		return Randomized, true
	case "deterministic":
		return Deterministic, true
	}
	return 0, false
}

// Column is one encrypted column. Its fields must not be modified.
type Column struct {
	Table  QualifiedName
	Name   string // normalised column name
	Type   codec.Type
	Mode   Mode
	KeySet string // name of the keystore key set

	keyLine, keyCol int // position of the key value, for Validate
}

// String returns schema.table.column, quoted where needed.
func (c *Column) String() string {
	return c.Table.String() + "." + QuoteIdent(c.Name)
}

// Table is a table with encrypted columns. It is immutable.
type Table struct {
	Name    QualifiedName
	columns []*Column
	byName  map[string]*Column
}

// Column returns the policy column with the given normalised name.
func (t *Table) Column(name string) (*Column, bool) {
	c, ok := t.byName[name]
	return c, ok
}

// Columns returns the table's policy columns in file order. The slice is a
// copy; the columns are shared and must not be modified.
func (t *Table) Columns() []*Column { return slices.Clone(t.columns) }

// Policy is a loaded policy: immutable and safe for concurrent use.
type Policy struct {
	file    string
	tables  []*Table // sorted by schema, then name
	byName  map[QualifiedName]*Table
	keySets []string
}

// File returns the name the policy was loaded from.
func (p *Policy) File() string { return p.file }

// Table returns the policy table with the given normalised schema and name.
func (p *Policy) Table(schema, name string) (*Table, bool) {
	t, ok := p.byName[QualifiedName{Schema: schema, Name: name}]
	return t, ok
}

// Tables returns the policy's tables sorted by schema and name. The slice is
// a copy; the tables are shared.
func (p *Policy) Tables() []*Table { return slices.Clone(p.tables) }

// KeySets returns the distinct key set names the policy uses, sorted.
func (p *Policy) KeySets() []string { return slices.Clone(p.keySets) }

// Validate checks every column's key set with exists (typically a keystore
// lookup) and returns one *Error per column whose key set does not exist,
// in file order. It returns nil when all key sets exist.
func (p *Policy) Validate(exists func(keySet string) bool) []error {
	var cols []*Column
	for _, t := range p.tables {
		cols = append(cols, t.columns...)
	}
	sort.SliceStable(cols, func(i, j int) bool {
		if cols[i].keyLine != cols[j].keyLine {
			return cols[i].keyLine < cols[j].keyLine
		}
		return cols[i].keyCol < cols[j].keyCol
	})
	var errs []error
	for _, c := range cols {
		if !exists(c.KeySet) {
			errs = append(errs, &Error{File: p.file, Line: c.keyLine, Column: c.keyCol,
				Msg: fmt.Sprintf("column %s: key set %q does not exist in the keystore", c, c.KeySet)})
		}
	}
	return errs
}

// Lookup is a convenience for callers holding a QualifiedName.
func (p *Policy) Lookup(table QualifiedName, column string) (*Column, bool) {
	t, ok := p.byName[table]
	if !ok {
		return nil, false
	}
	return t.Column(column)
}
