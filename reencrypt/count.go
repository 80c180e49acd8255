package reencrypt

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// Querier runs a query: *pgx.Conn and pgx.Tx both do.
type Querier interface {
	querier
}

// Kind classifies the values of a VersionCount.
type Kind uint8

const (
	// KindEnvelope values are envelopes; KeySetID, Version and Mode say
	// which.
	KindEnvelope Kind = iota + 1
	// KindNull values are SQL NULL: there is nothing to re-encrypt.
	KindNull
	// KindMalformed values are not envelopes this build reads (plaintext
	// written around pgseal, truncated values, an unknown format).
	KindMalformed
)

// String returns "envelope", "null" or "malformed".
func (k Kind) String() string {
	switch k {
	case KindEnvelope:
		return "envelope"
	case KindNull:
		return "null"
	case KindMalformed:
		return "malformed"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// VersionCount is how many values of one column share one key version (or
// are NULL, or malformed).
type VersionCount struct {
	Table    policy.QualifiedName
	Column   string
	Kind     Kind
	Mode     envelope.Mode // KindEnvelope only
	KeySetID uint32        // KindEnvelope only
	Version  uint32        // KindEnvelope only
	Count    int64
}

// countQuery groups a column's values by their envelope header. The
// shortest value of each group tells whether every value in it is long
// enough for its mode.
const countQuery = `SELECT pg_catalog.substr(t.%[1]s, 1, %[2]d), pg_catalog.min(pg_catalog.octet_length(t.%[1]s)), pg_catalog.count(*) FROM %[3]s t GROUP BY 1`

// Count counts the values of each named column of table per key version,
// in one scan of the table per column. Columns must be bytea. The result is
// sorted by column, kind, key set and version.
func Count(ctx context.Context, q Querier, table policy.QualifiedName, columns []string) ([]VersionCount, error) {
	t, err := loadTable(ctx, q, table)
	if err != nil {
		return nil, err
	}
	var out []VersionCount
	for _, name := range columns {
		a, err := t.column(name)
		if err != nil {
			return nil, err
		}
		if a.typeOID != byteaOID {
			return nil, fmt.Errorf("failed to count %s.%s: type %s, want bytea: %w", table, policy.QuoteIdent(name), a.sqlType, ErrColumnType)
		}
		counts, err := countColumn(ctx, q, t, a)
		if err != nil {
			return nil, err
		}
		out = append(out, counts...)
	}
	return out, nil
}

func countColumn(ctx context.Context, q Querier, t *tableInfo, a attr) ([]VersionCount, error) {
	rows, err := q.Query(ctx, fmt.Sprintf(countQuery, a.ident, envelope.HeaderSize, t.ident))
	if err != nil {
		return nil, fmt.Errorf("failed to count %s.%s: %w", t.name, policy.QuoteIdent(a.name), err)
	}
	defer rows.Close()
	var out []VersionCount
	add := func(vc VersionCount) {
		i := slices.IndexFunc(out, func(o VersionCount) bool {
			return o.Kind == vc.Kind && o.Mode == vc.Mode && o.KeySetID == vc.KeySetID && o.Version == vc.Version
		})
		if i < 0 {
			out = append(out, vc)
			return
		}
		out[i].Count += vc.Count
	}
	for rows.Next() {
		var head []byte
		var minLen *int64
		var n int64
		if err := rows.Scan(&head, &minLen, &n); err != nil {
			return nil, fmt.Errorf("failed to count %s.%s: %w", t.name, policy.QuoteIdent(a.name), err)
		}
		vc := VersionCount{Table: t.name, Column: a.name, Count: n}
		switch h, ok := classify(head, minLen); {
		case head == nil:
			vc.Kind = KindNull
		case !ok:
			vc.Kind = KindMalformed
		default:
			vc.Kind, vc.Mode, vc.KeySetID, vc.Version = KindEnvelope, h.Mode, h.KeySetID, h.KeyVersion
		}
		add(vc)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to count %s.%s: %w", t.name, policy.QuoteIdent(a.name), err)
	}
	slices.SortFunc(out, compareCounts)
	return out, nil
}

// classify reads the header of a group of values whose first bytes are
// head and whose shortest value is minLen bytes long. envelope.Peek wants a
// whole value to check its length against the mode's overhead, so it gets
// the header padded to minLen bytes, capped: no overhead comes near the cap.
func classify(head []byte, minLen *int64) (envelope.Header, bool) {
	const enough = 128
	if minLen == nil || *minLen < envelope.HeaderSize || len(head) < envelope.HeaderSize {
		// Shorter than a header: the values are that short themselves.
		return envelope.Header{}, false
	}
	buf := make([]byte, min(*minLen, enough))
	copy(buf, head[:envelope.HeaderSize])
	h, err := envelope.Peek(buf)
	return h, err == nil
}

func compareCounts(a, b VersionCount) int {
	return cmp.Or(
		cmp.Compare(a.Table.Schema, b.Table.Schema),
		cmp.Compare(a.Table.Name, b.Table.Name),
		cmp.Compare(a.Column, b.Column),
		cmp.Compare(a.Kind, b.Kind),
		cmp.Compare(a.KeySetID, b.KeySetID),
		cmp.Compare(a.Version, b.Version),
	)
}

// CountPolicy counts, for every column of the policy, its values per key
// version. A column that an encrypt-column migration is still filling is
// counted in its shadow column (ShadowColumn), which already holds
// ciphertext. A table of the policy that does not exist is an error
// (ErrNoTable): a check that cannot look must not pass.
func CountPolicy(ctx context.Context, q Querier, pol *policy.Policy) ([]VersionCount, error) {
	var out []VersionCount
	for _, pt := range pol.Tables() {
		t, err := loadTable(ctx, q, pt.Name)
		if err != nil {
			return nil, err
		}
		for _, col := range pt.Columns() {
			a, err := t.column(col.Name)
			if err != nil {
				return nil, err
			}
			if a.typeOID != byteaOID {
				shadow, ok := t.cols[ShadowColumn(col.Name)]
				if !ok || shadow.typeOID != byteaOID {
					continue // plaintext, not under pgseal yet: no key version in use
				}
				a = shadow
			}
			counts, err := countColumn(ctx, q, t, a)
			if err != nil {
				return nil, err
			}
			out = append(out, counts...)
		}
	}
	return out, nil
}
