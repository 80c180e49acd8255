package codec

import "fmt"

// Type is a declared type of a policy column: the type the application sees,
// while the database stores bytea.
type Type uint8

// The declared types pgseal supports.
const (
	Invalid Type = iota
	Text
	Varchar
	Int2
	Int4
	Int8
	Numeric
	Float4
	Float8
	Bool
	Date
	Timestamp
	Timestamptz
	UUID
	JSONB
	Bytea
)

// Type OIDs from PostgreSQL's pg_type catalog.
const (
	OIDBool        uint32 = 16
	OIDBytea       uint32 = 17
	OIDInt8        uint32 = 20
	OIDInt2        uint32 = 21
	OIDInt4        uint32 = 23
	OIDText        uint32 = 25
	OIDFloat4      uint32 = 700
	OIDFloat8      uint32 = 701
	OIDVarchar     uint32 = 1043
	OIDDate        uint32 = 1082
	OIDTimestamp   uint32 = 1114
	OIDTimestamptz uint32 = 1184
	OIDNumeric     uint32 = 1700
	OIDUUID        uint32 = 2950
	OIDJSONB       uint32 = 3802
)

var typeInfo = [...]struct {
	name string
	oid  uint32
}{
	Invalid:     {"invalid", 0},
	Text:        {"text", OIDText},
	Varchar:     {"varchar", OIDVarchar},
	Int2:        {"int2", OIDInt2},
	Int4:        {"int4", OIDInt4},
	Int8:        {"int8", OIDInt8},
	Numeric:     {"numeric", OIDNumeric},
	Float4:      {"float4", OIDFloat4},
	Float8:      {"float8", OIDFloat8},
	Bool:        {"bool", OIDBool},
	Date:        {"date", OIDDate},
	Timestamp:   {"timestamp", OIDTimestamp},
	Timestamptz: {"timestamptz", OIDTimestamptz},
	UUID:        {"uuid", OIDUUID},
	JSONB:       {"jsonb", OIDJSONB},
	Bytea:       {"bytea", OIDBytea},
}

// String returns the type's policy name (e.g. "int4").
func (t Type) String() string {
	if int(t) < len(typeInfo) {
		return typeInfo[t].name
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// OID returns the PostgreSQL type OID that clients see for t.
func (t Type) OID() uint32 {
	if int(t) < len(typeInfo) {
		return typeInfo[t].oid
	}
	return 0
}

// ParseType maps a policy type name to a Type. It accepts the names listed in
// the policy reference and nothing else; ok is false for any other name.
func ParseType(name string) (t Type, ok bool) {
	for i := Text; int(i) < len(typeInfo); i++ {
		if typeInfo[i].name == name {
			return i, true
		}
	}
	return Invalid, false
}
