package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"strconv"
)

// isSpace reports the bytes PostgreSQL's input functions skip around a
// value (C isspace in the C locale).
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// ---- text, varchar ----

func canonicalText(dst []byte, t Type, format int16, wire []byte) ([]byte, error) {
	// UTF-8 validity of text input was checked by the caller; binary input
	// of text is the same bytes, so check it here too.
	if format == BinaryFormat && !validUTF8(wire) {
		return dst, codeErr(t, format, CodeCharacterNotInRepertoire, "invalid byte sequence for encoding UTF8")
	}
	if bytes.IndexByte(wire, 0) >= 0 {
		return dst, codeErr(t, format, CodeCharacterNotInRepertoire, "invalid byte sequence for encoding UTF8: 0x00")
	}
	return append(dst, wire...), nil
}

func encodeText(dst []byte, t Type, format int16, c []byte) ([]byte, error) {
	if bytes.IndexByte(c, 0) >= 0 || !validUTF8(c) {
		return dst, corruptErr(t, format)
	}
	return append(dst, c...), nil
}

// ---- int2, int4, int8 ----

func canonicalInt(dst []byte, t Type, format int16, wire []byte, size int) ([]byte, error) {
	var v int64
	if format == BinaryFormat {
		if len(wire) != size {
			return dst, syntaxErr(t, format, "wrong length for binary integer")
		}
		v = readInt(wire, size)
	} else {
		var err error
		v, err = parseInt(t, wire, size)
		if err != nil {
			return dst, err
		}
	}
	return appendInt(dst, v, size), nil
}

func readInt(b []byte, size int) int64 {
	switch size {
	case 2:
		return int64(int16(binary.BigEndian.Uint16(b)))
	case 4:
		return int64(int32(binary.BigEndian.Uint32(b)))
	}
	return int64(binary.BigEndian.Uint64(b))
}

func appendInt(dst []byte, v int64, size int) []byte {
	switch size {
	case 2:
		return binary.BigEndian.AppendUint16(dst, uint16(v))
	case 4:
		return binary.BigEndian.AppendUint32(dst, uint32(v))
	}
	return binary.BigEndian.AppendUint64(dst, uint64(v))
}

// parseInt reads an integer as PostgreSQL 16's int2in/int4in/int8in do:
// surrounding whitespace, an optional sign, decimal digits or a 0x/0o/0b
// prefixed literal, and underscores between digits.
func parseInt(t Type, s []byte, size int) (int64, error) {
	s = trimSpace(s)
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := uint64(10)
	afterPrefix := false
	if len(s) > 1 && s[0] == '0' {
		switch s[1] | 0x20 {
		case 'x':
			base = 16
		case 'o':
			base = 8
		case 'b':
			base = 2
		}
		if base != 10 {
			s = s[2:]
			afterPrefix = true
		}
	}
	limit := uint64(1)<<(uint(size)*8-1) - 1
	if neg {
		limit++
	}
	var v uint64
	digits := 0
	overflow := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			// An underscore must follow a digit (or the base prefix)
			// and be followed by one.
			if (digits == 0 && !afterPrefix) || i+1 >= len(s) || digitVal(s[i+1]) >= base {
				return 0, syntaxErr(t, TextFormat, "invalid input syntax")
			}
			continue
		}
		d := digitVal(c)
		if d >= base {
			return 0, syntaxErr(t, TextFormat, "invalid input syntax")
		}
		digits++
		if v > (limit-d)/base {
			overflow = true
			continue
		}
		v = v*base + d
	}
	if digits == 0 {
		return 0, syntaxErr(t, TextFormat, "invalid input syntax")
	}
	if overflow {
		return 0, rangeErr(t, TextFormat, "value out of range for type "+t.String())
	}
	if neg {
		return -int64(v-1) - 1, nil
	}
	return int64(v), nil
}

func digitVal(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 255
}

func encodeInt(dst []byte, t Type, format int16, c []byte, size int) ([]byte, error) {
	if len(c) != size {
		return dst, corruptErr(t, format)
	}
	if format == BinaryFormat {
		return append(dst, c...), nil
	}
	return strconv.AppendInt(dst, readInt(c, size), 10), nil
}

// ---- float4, float8 ----

const (
	canonicalNaN32 = 0x7fc00000
	canonicalNaN64 = 0x7ff8000000000000
)

func canonicalFloat(dst []byte, t Type, format int16, wire []byte, bits int) ([]byte, error) {
	var f float64
	if format == BinaryFormat {
		if len(wire) != bits/8 {
			return dst, syntaxErr(t, format, "wrong length for binary float")
		}
		if bits == 32 {
			f = float64(math.Float32frombits(binary.BigEndian.Uint32(wire)))
		} else {
			f = math.Float64frombits(binary.BigEndian.Uint64(wire))
		}
	} else {
		var err error
		f, err = parseFloat(t, wire, bits)
		if err != nil {
			return dst, err
		}
	}
	return appendCanonicalFloat(dst, f, bits), nil
}

// appendCanonicalFloat writes f with -0 folded into +0 and every NaN folded
// into one quiet NaN: PostgreSQL's float comparison treats them as equal.
func appendCanonicalFloat(dst []byte, f float64, bits int) []byte {
	if f == 0 {
		f = 0 // drops the sign of -0
	}
	if bits == 32 {
		u := math.Float32bits(float32(f))
		if math.IsNaN(f) {
			u = canonicalNaN32
		}
		return binary.BigEndian.AppendUint32(dst, u)
	}
	u := math.Float64bits(f)
	if math.IsNaN(f) {
		u = canonicalNaN64
	}
	return binary.BigEndian.AppendUint64(dst, u)
}

func parseFloat(t Type, s []byte, bits int) (float64, error) {
	s = trimSpace(s)
	if len(s) == 0 {
		return 0, syntaxErr(t, TextFormat, "invalid input syntax")
	}
	body := s
	neg := false
	if body[0] == '+' || body[0] == '-' {
		neg = body[0] == '-'
		body = body[1:]
	}
	switch string(bytes.ToLower(body)) {
	case "nan":
		return math.NaN(), nil
	case "inf", "infinity":
		if neg {
			return math.Inf(-1), nil
		}
		return math.Inf(1), nil
	}
	hex := len(body) > 1 && body[0] == '0' && body[1]|0x20 == 'x'
	mantissaNonZero := false
	for _, c := range body {
		switch {
		case c == '_':
			// strconv allows underscores in some literals; strtod never.
			return 0, syntaxErr(t, TextFormat, "invalid input syntax")
		case (c == 'e' || c == 'E') && !hex, (c == 'p' || c == 'P') && hex:
			goto done
		case c >= '1' && c <= '9', hex && c|0x20 >= 'a' && c|0x20 <= 'f':
			mantissaNonZero = true
		}
	}
done:
	str := string(s)
	if hex && bytes.IndexAny(body, "pP") < 0 {
		str += "p0" // strtod accepts hex floats without an exponent
	}
	f, err := strconv.ParseFloat(str, bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, rangeErr(t, TextFormat, "value out of range for type "+t.String())
		}
		return 0, syntaxErr(t, TextFormat, "invalid input syntax")
	}
	if f == 0 && mantissaNonZero {
		return 0, rangeErr(t, TextFormat, "value out of range for type "+t.String())
	}
	return f, nil
}

func encodeFloat(dst []byte, t Type, format int16, c []byte, bits int) ([]byte, error) {
	if len(c) != bits/8 {
		return dst, corruptErr(t, format)
	}
	if format == BinaryFormat {
		return append(dst, c...), nil
	}
	var f float64
	if bits == 32 {
		f = float64(math.Float32frombits(binary.BigEndian.Uint32(c)))
	} else {
		f = math.Float64frombits(binary.BigEndian.Uint64(c))
	}
	return appendFloatText(dst, f, bits), nil
}

// appendFloatText writes f as PostgreSQL 12+ does with extra_float_digits
// >= 1 (the default): the shortest digits that read back exactly, in fixed
// notation when the decimal exponent is in [-4, 15) for float8 or [-4, 6)
// for float4, and in exponent notation otherwise.
func appendFloatText(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, bits)
	// e is "[-]d[.ddd]e±XX".
	ePos := bytes.IndexByte(e, 'e')
	exp, _ := strconv.Atoi(string(e[ePos+1:]))
	maxExp := 15
	if bits == 32 {
		maxExp = 6
	}
	if exp < -4 || exp >= maxExp {
		return append(dst, e...)
	}
	mant := e[:ePos]
	if mant[0] == '-' {
		dst = append(dst, '-')
		mant = mant[1:]
	}
	var digits [24]byte
	nd := 0
	for _, c := range mant {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	ds := digits[:nd]
	if exp < 0 {
		dst = append(dst, "0."...)
		for i := 0; i < -exp-1; i++ {
			dst = append(dst, '0')
		}
		return append(dst, ds...)
	}
	intLen := exp + 1
	if nd <= intLen {
		dst = append(dst, ds...)
		for i := nd; i < intLen; i++ {
			dst = append(dst, '0')
		}
		return dst
	}
	dst = append(dst, ds[:intLen]...)
	dst = append(dst, '.')
	return append(dst, ds[intLen:]...)
}

// ---- bool ----

func canonicalBool(dst []byte, format int16, wire []byte) ([]byte, error) {
	if format == BinaryFormat {
		if len(wire) != 1 {
			return dst, syntaxErr(Bool, format, "wrong length for binary bool")
		}
		// boolrecv treats any non-zero byte as true.
		if wire[0] != 0 {
			return append(dst, 1), nil
		}
		return append(dst, 0), nil
	}
	v, ok := parseBool(trimSpace(wire))
	if !ok {
		return dst, syntaxErr(Bool, format, "invalid input syntax")
	}
	if v {
		return append(dst, 1), nil
	}
	return append(dst, 0), nil
}

// parseBool accepts what PostgreSQL's boolin accepts: any unambiguous
// case-insensitive prefix of true, false, yes, no, on, off, and 1 or 0.
func parseBool(s []byte) (value, ok bool) {
	if len(s) == 0 {
		return false, false
	}
	l := bytes.ToLower(s)
	prefixOf := func(word string, min int) bool {
		return len(l) >= min && len(l) <= len(word) && word[:len(l)] == string(l)
	}
	switch l[0] {
	case 't':
		return true, prefixOf("true", 1)
	case 'f':
		return false, prefixOf("false", 1)
	case 'y':
		return true, prefixOf("yes", 1)
	case 'n':
		return false, prefixOf("no", 1)
	case 'o':
		if prefixOf("on", 2) {
			return true, true
		}
		return false, prefixOf("off", 2)
	case '1':
		return true, len(l) == 1
	case '0':
		return false, len(l) == 1
	}
	return false, false
}

func encodeBool(dst []byte, format int16, c []byte) ([]byte, error) {
	if len(c) != 1 || c[0] > 1 {
		return dst, corruptErr(Bool, format)
	}
	if format == BinaryFormat {
		return append(dst, c[0]), nil
	}
	if c[0] == 1 {
		return append(dst, 't'), nil
	}
	return append(dst, 'f'), nil
}

// ---- uuid ----

func canonicalUUID(dst []byte, format int16, wire []byte) ([]byte, error) {
	if format == BinaryFormat {
		if len(wire) != 16 {
			return dst, syntaxErr(UUID, format, "wrong length for binary uuid")
		}
		return append(dst, wire...), nil
	}
	// As uuid_in: an optional pair of braces around 32 hex digits, with an
	// optional hyphen after any group of four digits except the last.
	s := wire
	braces := len(s) > 0 && s[0] == '{'
	if braces {
		s = s[1:]
	}
	var out [16]byte
	for i := 0; i < 16; i++ {
		if len(s) < 2 {
			return dst, syntaxErr(UUID, format, "invalid input syntax")
		}
		hi, lo := digitVal(s[0]), digitVal(s[1])
		if hi > 15 || lo > 15 {
			return dst, syntaxErr(UUID, format, "invalid input syntax")
		}
		out[i] = byte(hi<<4 | lo)
		s = s[2:]
		if len(s) > 0 && s[0] == '-' && i%2 == 1 && i < 15 {
			s = s[1:]
		}
	}
	if braces {
		if len(s) == 0 || s[0] != '}' {
			return dst, syntaxErr(UUID, format, "invalid input syntax")
		}
		s = s[1:]
	}
	if len(s) != 0 {
		return dst, syntaxErr(UUID, format, "invalid input syntax")
	}
	return append(dst, out[:]...), nil
}

const hexDigits = "0123456789abcdef"

func encodeUUID(dst []byte, format int16, c []byte) ([]byte, error) {
	if len(c) != 16 {
		return dst, corruptErr(UUID, format)
	}
	if format == BinaryFormat {
		return append(dst, c...), nil
	}
	for i, b := range c {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst, nil
}

// ---- bytea ----

func canonicalBytea(dst []byte, format int16, wire []byte) ([]byte, error) {
	if format == BinaryFormat {
		return append(dst, wire...), nil
	}
	if len(wire) >= 2 && wire[0] == '\\' && wire[1] == 'x' {
		// Hex format: pairs of hex digits, whitespace allowed between pairs.
		s := wire[2:]
		for i := 0; i < len(s); {
			if isSpace(s[i]) {
				i++
				continue
			}
			hi := digitVal(s[i])
			if hi > 15 {
				return dst, codeErr(Bytea, format, CodeInvalidParameterValue, "invalid hexadecimal digit")
			}
			if i+1 >= len(s) {
				return dst, codeErr(Bytea, format, CodeInvalidParameterValue, "invalid hexadecimal data: odd number of digits")
			}
			lo := digitVal(s[i+1])
			if lo > 15 {
				return dst, codeErr(Bytea, format, CodeInvalidParameterValue, "invalid hexadecimal digit")
			}
			dst = append(dst, byte(hi<<4|lo))
			i += 2
		}
		return dst, nil
	}
	// Escape format: \\ is a backslash, \ooo an octal byte value (the first
	// digit 0-3), anything else a byte standing for itself.
	for i := 0; i < len(wire); {
		c := wire[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 < len(wire) && wire[i+1] == '\\' {
			dst = append(dst, '\\')
			i += 2
			continue
		}
		if i+3 < len(wire) && wire[i+1] >= '0' && wire[i+1] <= '3' &&
			wire[i+2] >= '0' && wire[i+2] <= '7' && wire[i+3] >= '0' && wire[i+3] <= '7' {
			dst = append(dst, (wire[i+1]-'0')<<6|(wire[i+2]-'0')<<3|(wire[i+3]-'0'))
			i += 4
			continue
		}
		return dst, syntaxErr(Bytea, format, "invalid input syntax")
	}
	return dst, nil
}

func encodeBytea(dst []byte, format int16, c []byte) ([]byte, error) {
	if format == BinaryFormat {
		return append(dst, c...), nil
	}
	dst = append(dst, '\\', 'x')
	for _, b := range c {
		dst = append(dst, hexDigits[b>>4], hexDigits[b&15])
	}
	return dst, nil
}
