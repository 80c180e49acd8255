package e2e

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// typedArg returns tc's value as the Go type pgx encodes natively.
func typedArg(tc typeCase) any {
	switch tc.typ {
	case "int2":
		v, _ := strconv.ParseInt(tc.in, 10, 16)
		return int16(v)
	case "int4":
		v, _ := strconv.ParseInt(tc.in, 10, 32)
		return int32(v)
	case "int8":
		v, _ := strconv.ParseInt(tc.in, 10, 64)
		return v
	case "numeric":
		var n pgtype.Numeric
		n.Scan(tc.in)
		return n
	case "float4":
		v, _ := strconv.ParseFloat(tc.in, 32)
		return float32(v)
	case "float8":
		v, _ := strconv.ParseFloat(tc.in, 64)
		return v
	case "bool":
		return tc.in == "true"
	case "date":
		d, _ := time.Parse("2006-01-02", tc.in)
		return pgtype.Date{Time: d, Valid: true}
	case "timestamp":
		ts, _ := time.Parse("2006-01-02 15:04:05.999999", tc.in)
		return pgtype.Timestamp{Time: ts, Valid: true}
	case "timestamptz":
		ts, _ := time.Parse("2006-01-02 15:04:05.999999-07", tc.in)
		return ts
	case "uuid":
		var u pgtype.UUID
		u.Scan(tc.in)
		return u
	case "jsonb":
		var m map[string]any
		json.Unmarshal([]byte(tc.in), &m)
		return m
	case "bytea":
		return []byte("MARKER")
	}
	return tc.in
}

// textOf renders a raw value as PostgreSQL's text output, decoding binary
// values with pgx's type map.
func textOf(conn *pgx.Conn, fd pgconn.FieldDescription, v []byte) string {
	if v == nil {
		return "NULL"
	}
	if fd.Format == 0 {
		return string(v)
	}
	switch fd.DataTypeOID {
	case pgtype.JSONBOID:
		return string(v[1:]) // version byte, then text
	case pgtype.NumericOID:
		var n pgtype.Numeric
		if err := conn.TypeMap().Scan(fd.DataTypeOID, fd.Format, v, &n); err != nil {
			return "decode error"
		}
		b, _ := n.MarshalJSON()
		return string(b)
	}
	m := conn.TypeMap()
	t, ok := m.TypeForOID(fd.DataTypeOID)
	if !ok {
		return fmt.Sprintf("?oid%d", fd.DataTypeOID)
	}
	val, err := t.Codec.DecodeValue(m, fd.DataTypeOID, fd.Format, v)
	if err != nil {
		return "decode error: " + err.Error()
	}
	switch x := val.(type) {
	case int16, int32, int64:
		return fmt.Sprint(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		if x {
			return "t"
		}
		return "f"
	case time.Time:
		switch fd.DataTypeOID {
		case pgtype.DateOID:
			return x.Format("2006-01-02")
		case pgtype.TimestampOID:
			return x.Format("2006-01-02 15:04:05.999999")
		}
		return x.UTC().Format("2006-01-02 15:04:05.999999") + "+00"
	case [16]byte:
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case []byte:
		return fmt.Sprintf(`\x%x`, x)
	case string:
		return x
	}
	return fmt.Sprint(val)
}
