package datapath

import (
	"encoding/binary"
	"errors"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgseal/pgseal/codec"
)

// errBadArray is returned for an array parameter pgseal cannot read.
var errBadArray = errors.New("malformed array value")

// arrayOIDs are the array types of the declared types, for
// ParameterDescription of "= ANY($n)" parameters.
var arrayOIDs = map[codec.Type]uint32{
	codec.Text: 1009, codec.Varchar: 1015, codec.Int2: 1005, codec.Int4: 1007, codec.Int8: 1016,
	codec.Numeric: 1231, codec.Float4: 1021, codec.Float8: 1022, codec.Bool: 1000, codec.Date: 1182,
	codec.Timestamp: 1115, codec.Timestamptz: 1185, codec.UUID: 2951, codec.JSONB: 3807, codec.Bytea: 1001,
}

// arrayElements returns the non-NULL elements of a one-dimensional array
// parameter, each with the format it is in and the type its bytes are of
// (the binary header names the element type; text elements are read as
// the column's type, t).
func (s *session) arrayElements(t codec.Type, format int16, v []byte) (elems [][]byte, elemType codec.Type, elemFormat int16, err error) {
	if format == codec.TextFormat {
		if s.tmap == nil {
			s.tmap = pgtype.NewMap()
		}
		var texts []pgtype.Text
		if err := s.tmap.Scan(pgtype.TextArrayOID, pgtype.TextFormatCode, v, &texts); err != nil {
			return nil, t, format, errBadArray
		}
		for _, x := range texts {
			if x.Valid {
				elems = append(elems, []byte(x.String))
			}
		}
		return elems, t, codec.TextFormat, nil
	}
	// Binary array: ndim, has-null flag, element OID, then per dimension
	// its length and lower bound, then each element's length and bytes.
	if len(v) < 12 {
		return nil, t, format, errBadArray
	}
	ndim := int32(binary.BigEndian.Uint32(v))
	elemOID := binary.BigEndian.Uint32(v[8:])
	elemType = t
	if et, ok := typeForOID(elemOID); ok {
		elemType = et
	}
	if ndim == 0 {
		return nil, elemType, codec.BinaryFormat, nil
	}
	if ndim != 1 || len(v) < 20 {
		return nil, t, format, errBadArray
	}
	n := int32(binary.BigEndian.Uint32(v[12:]))
	rest := v[20:]
	for i := int32(0); i < n; i++ {
		if len(rest) < 4 {
			return nil, t, format, errBadArray
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l < 0 {
			continue // NULL never matches
		}
		if int(l) > len(rest) {
			return nil, t, format, errBadArray
		}
		elems = append(elems, rest[:l])
		rest = rest[l:]
	}
	return elems, elemType, codec.BinaryFormat, nil
}
