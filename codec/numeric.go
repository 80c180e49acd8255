package codec

import (
	"bytes"
	"encoding/binary"
	"math/big"
)

// Limits of PostgreSQL's numeric type.
const (
	numericMaxIntDigits   = 131072 // digits before the decimal point
	numericMaxScale       = 16383  // digits after the decimal point (NUMERIC_DSCALE_MAX)
	numericMaxRadixDigits = 1 << 17
)

// Sign words of the binary numeric format.
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

// decimal is a finite numeric value in normal form: digits holds ASCII
// digits without leading or trailing zeros (empty for zero) and the value is
// 0.digits × 10^point. Zero is never negative.
type decimal struct {
	neg    bool
	digits []byte
	point  int
}

func canonicalNumeric(dst []byte, format int16, wire []byte) ([]byte, error) {
	if format == BinaryFormat {
		return canonicalNumericBinary(dst, wire)
	}
	s := trimSpace(wire)
	switch string(bytes.ToLower(s)) {
	case "nan":
		return append(dst, "NaN"...), nil
	case "infinity", "+infinity", "inf", "+inf":
		return append(dst, "Infinity"...), nil
	case "-infinity", "-inf":
		return append(dst, "-Infinity"...), nil
	}
	d, err := parseDecimal(Numeric, s)
	if err != nil {
		return dst, err
	}
	return d.appendText(dst), nil
}

// parseDecimal reads the finite numeric syntax of PostgreSQL 16: a sign,
// digits with an optional decimal point and exponent, underscores between
// digits, or a 0x/0o/0b prefixed integer. s has no surrounding whitespace.
// Numbers in JSON use it too, with t naming the type for errors.
func parseDecimal(t Type, s []byte) (decimal, error) {
	bad := func() (decimal, error) { return decimal{}, syntaxErr(t, TextFormat, "invalid input syntax") }
	var d decimal
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		d.neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) > 2 && s[0] == '0' && (s[1]|0x20 == 'x' || s[1]|0x20 == 'o' || s[1]|0x20 == 'b') {
		return parseRadixDecimal(t, d.neg, s)
	}
	digits := make([]byte, 0, len(s))
	intLen, fracLen := 0, 0
	seenPoint := false
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
			if seenPoint {
				fracLen++
			} else {
				intLen++
			}
		case c == '.' && !seenPoint:
			seenPoint = true
		case c == '_':
			// Only between two digits.
			if i == 0 || s[i-1] < '0' || s[i-1] > '9' || i+1 >= len(s) || s[i+1] < '0' || s[i+1] > '9' {
				return bad()
			}
		default:
			goto exponent
		}
	}
exponent:
	if len(digits) == 0 {
		return bad()
	}
	exp := 0
	if i < len(s) {
		if s[i] != 'e' && s[i] != 'E' {
			return bad()
		}
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		if i >= len(s) {
			return bad()
		}
		for ; i < len(s); i++ {
			c := s[i]
			if c == '_' && i > 0 && s[i-1] >= '0' && s[i-1] <= '9' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
				continue
			}
			if c < '0' || c > '9' {
				return bad()
			}
			if exp < 1_000_000_000 {
				exp = exp*10 + int(c-'0')
			}
		}
		if exp >= 1_000_000_000 {
			return decimal{}, rangeErr(t, TextFormat, "value overflows numeric format")
		}
		if eneg {
			exp = -exp
		}
	}
	// PostgreSQL rejects an input whose display scale would exceed the
	// limit even when the extra digits are zeros; do the same, so that
	// every value accepted here is one the database would accept.
	if fracLen-exp > numericMaxScale {
		return decimal{}, rangeErr(t, TextFormat, "value overflows numeric format")
	}
	d.digits = digits
	d.point = intLen + exp
	d.normalize()
	if len(d.digits) > 0 && d.point > numericMaxIntDigits {
		return decimal{}, rangeErr(t, TextFormat, "value overflows numeric format")
	}
	return d, nil
}

func parseRadixDecimal(t Type, neg bool, s []byte) (decimal, error) {
	base := 16
	switch s[1] | 0x20 {
	case 'o':
		base = 8
	case 'b':
		base = 2
	}
	body := s[2:]
	if len(body) > numericMaxRadixDigits {
		return decimal{}, rangeErr(t, TextFormat, "value overflows numeric format")
	}
	clean := make([]byte, 0, len(body))
	for i, c := range body {
		if c == '_' {
			// After the prefix or a digit, and before a digit.
			if i+1 >= len(body) || digitVal(body[i+1]) >= uint64(base) || (i > 0 && body[i-1] == '_') {
				return decimal{}, syntaxErr(t, TextFormat, "invalid input syntax")
			}
			continue
		}
		if digitVal(c) >= uint64(base) {
			return decimal{}, syntaxErr(t, TextFormat, "invalid input syntax")
		}
		clean = append(clean, c)
	}
	if len(clean) == 0 {
		return decimal{}, syntaxErr(t, TextFormat, "invalid input syntax")
	}
	var n big.Int
	if _, ok := n.SetString(string(clean), base); !ok {
		return decimal{}, syntaxErr(t, TextFormat, "invalid input syntax")
	}
	d := decimal{neg: neg, digits: n.Append(nil, 10)}
	d.point = len(d.digits)
	d.normalize()
	if len(d.digits) > 0 && d.point > numericMaxIntDigits {
		return decimal{}, rangeErr(t, TextFormat, "value overflows numeric format")
	}
	return d, nil
}

// normalize strips leading and trailing zeros and clears the sign of zero.
func (d *decimal) normalize() {
	lead := 0
	for lead < len(d.digits) && d.digits[lead] == '0' {
		lead++
	}
	d.digits = d.digits[lead:]
	d.point -= lead
	end := len(d.digits)
	for end > 0 && d.digits[end-1] == '0' {
		end--
	}
	d.digits = d.digits[:end]
	if len(d.digits) == 0 {
		d.neg = false
		d.point = 0
	}
}

// appendText writes d in plain decimal notation: the canonical numeric form.
func (d *decimal) appendText(dst []byte) []byte {
	if len(d.digits) == 0 {
		return append(dst, '0')
	}
	if d.neg {
		dst = append(dst, '-')
	}
	switch {
	case d.point <= 0:
		dst = append(dst, '0', '.')
		for i := 0; i < -d.point; i++ {
			dst = append(dst, '0')
		}
		return append(dst, d.digits...)
	case d.point >= len(d.digits):
		dst = append(dst, d.digits...)
		for i := len(d.digits); i < d.point; i++ {
			dst = append(dst, '0')
		}
		return dst
	}
	dst = append(dst, d.digits[:d.point]...)
	dst = append(dst, '.')
	return append(dst, d.digits[d.point:]...)
}

func canonicalNumericBinary(dst []byte, wire []byte) ([]byte, error) {
	bad := func(reason string) ([]byte, error) { return dst, syntaxErr(Numeric, BinaryFormat, reason) }
	if len(wire) < 8 {
		return bad("insufficient data for binary numeric")
	}
	ndigits := int(binary.BigEndian.Uint16(wire[0:]))
	weight := int(int16(binary.BigEndian.Uint16(wire[2:])))
	sign := binary.BigEndian.Uint16(wire[4:])
	dscale := int(binary.BigEndian.Uint16(wire[6:]))
	// numeric_recv refuses more than 3000 base-10000 digits although
	// numeric_send writes up to about 37000; accept what numeric_send can
	// write so that every canonical value survives a binary round trip.
	if len(wire) != 8+2*ndigits {
		return bad("incorrect binary data format")
	}
	if dscale > numericMaxScale {
		return bad("invalid scale in external numeric value")
	}
	switch sign {
	case numericPos, numericNeg:
	case numericNaN:
		return append(dst, "NaN"...), nil
	case numericPInf:
		return append(dst, "Infinity"...), nil
	case numericNInf:
		return append(dst, "-Infinity"...), nil
	default:
		return bad("invalid sign in external numeric value")
	}
	digits := make([]byte, 0, 4*ndigits)
	for i := 0; i < ndigits; i++ {
		g := binary.BigEndian.Uint16(wire[8+2*i:])
		if g >= 10000 {
			return bad("invalid digit in external numeric value")
		}
		digits = append(digits, byte('0'+g/1000), byte('0'+g/100%10), byte('0'+g/10%10), byte('0'+g%10))
	}
	d := decimal{neg: sign == numericNeg, digits: digits, point: (weight + 1) * 4}
	// numeric_recv truncates digits hidden by the display scale.
	if keep := d.point + dscale; keep < len(d.digits) {
		if keep < 0 {
			keep = 0
		}
		d.digits = d.digits[:keep]
	}
	d.normalize()
	if len(d.digits) > 0 && d.point > numericMaxIntDigits {
		return dst, rangeErr(Numeric, BinaryFormat, "value overflows numeric format")
	}
	return d.appendText(dst), nil
}

// parseCanonicalDecimal reads a canonical numeric text back, checking that
// it is in normal form. ok is false for anything else, including the
// special values.
func parseCanonicalDecimal(c []byte) (d decimal, ok bool) {
	orig := c
	if len(c) > 0 && c[0] == '-' {
		d.neg = true
		c = c[1:]
	}
	intPart, frac := c, []byte(nil)
	if dot := bytes.IndexByte(c, '.'); dot >= 0 {
		intPart, frac = c[:dot], c[dot+1:]
		if len(frac) == 0 || frac[len(frac)-1] == '0' {
			return d, false
		}
	}
	if len(intPart) == 0 || (len(intPart) > 1 && intPart[0] == '0') {
		return d, false
	}
	for _, b := range intPart {
		if b < '0' || b > '9' {
			return d, false
		}
	}
	for _, b := range frac {
		if b < '0' || b > '9' {
			return d, false
		}
	}
	d.digits = append(append(make([]byte, 0, len(intPart)+len(frac)), intPart...), frac...)
	d.point = len(intPart)
	d.normalize()
	if len(d.digits) == 0 {
		return d, string(orig) == "0"
	}
	return d, true
}

func encodeNumeric(dst []byte, format int16, c []byte) ([]byte, error) {
	var sign uint16
	switch string(c) {
	case "NaN":
		sign = numericNaN
	case "Infinity":
		sign = numericPInf
	case "-Infinity":
		sign = numericNInf
	}
	if sign != 0 {
		if format == TextFormat {
			return append(dst, c...), nil
		}
		// numeric_send reports a display scale of 32 for the infinities.
		var dscale uint64
		if sign != numericNaN {
			dscale = 32
		}
		return binary.BigEndian.AppendUint64(dst, uint64(sign)<<16|dscale), nil
	}
	d, ok := parseCanonicalDecimal(c)
	if !ok {
		return dst, corruptErr(Numeric, format)
	}
	if format == TextFormat {
		return append(dst, c...), nil
	}
	return d.appendBinary(dst), nil
}

// appendBinary writes d in numeric_send's format: base-10000 digits aligned
// on the decimal point, without leading or trailing zero digits, and the
// display scale of the normal form.
func (d *decimal) appendBinary(dst []byte) []byte {
	if len(d.digits) == 0 {
		return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	}
	dscale := len(d.digits) - d.point
	if dscale < 0 {
		dscale = 0
	}
	// Pad so that the point falls on a group boundary: lead zeros before
	// the first digit, then digits, then zeros to complete the last group.
	lead := (4 - ((d.point%4)+4)%4) % 4
	weight := (d.point+lead)/4 - 1
	total := lead + len(d.digits)
	ngroups := (total + 3) / 4
	sign := uint16(numericPos)
	if d.neg {
		sign = numericNeg
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(ngroups))
	dst = binary.BigEndian.AppendUint16(dst, uint16(int16(weight)))
	dst = binary.BigEndian.AppendUint16(dst, sign)
	dst = binary.BigEndian.AppendUint16(dst, uint16(dscale))
	digitAt := func(i int) uint16 { // i indexes the padded digit string
		i -= lead
		if i < 0 || i >= len(d.digits) {
			return 0
		}
		return uint16(d.digits[i] - '0')
	}
	for g := 0; g < ngroups; g++ {
		v := digitAt(4*g)*1000 + digitAt(4*g+1)*100 + digitAt(4*g+2)*10 + digitAt(4*g+3)
		dst = binary.BigEndian.AppendUint16(dst, v)
	}
	return dst
}
