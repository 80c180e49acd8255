package codec

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// zoneAbbrev returns the offset in seconds east of UTC of a time zone
// abbreviation accepted in timestamptz input. The set is a subset of
// PostgreSQL's "Default" timezone_abbreviations; an abbreviation outside it
// is refused rather than guessed.
func zoneAbbrev(w []byte) (int64, bool) {
	const h = 3600
	switch string(w) {
	case "utc", "gmt", "ut", "z", "zulu", "wet":
		return 0, true
	case "west", "bst", "cet", "met":
		return 1 * h, true
	case "cest", "mest", "eet", "ist":
		return 2 * h, true
	case "eest", "msk":
		return 3 * h, true
	case "awst":
		return 8 * h, true
	case "jst", "kst":
		return 9 * h, true
	case "acst":
		return 9*h + h/2, true
	case "aest":
		return 10 * h, true
	case "acdt":
		return 10*h + h/2, true
	case "aedt":
		return 11 * h, true
	case "nzst":
		return 12 * h, true
	case "nzdt":
		return 13 * h, true
	case "adt":
		return -3 * h, true
	case "ast", "edt":
		return -4 * h, true
	case "est", "cdt":
		return -5 * h, true
	case "cst", "mdt":
		return -6 * h, true
	case "mst", "pdt":
		return -7 * h, true
	case "pst", "akdt":
		return -8 * h, true
	case "akst":
		return -9 * h, true
	case "hst":
		return -10 * h, true
	}
	return 0, false
}

// ErrUnknownTimeZone is returned by ParseTimeZone and Session.SetParameter
// for a TimeZone value that cannot be resolved to a location.
var ErrUnknownTimeZone = errors.New("unknown time zone")

// ErrUnsupportedDateStyle is returned by Session.SetParameter for a
// DateStyle whose output style is not ISO. The session keeps its previous
// settings; Encode writes ISO only.
var ErrUnsupportedDateStyle = errors.New("unsupported DateStyle")

// SetParameter applies a run-time parameter as the server reported it in a
// ParameterStatus message. It understands TimeZone and DateStyle and ignores
// every other name. On error the session is unchanged.
func (s *Session) SetParameter(name, value string) error {
	switch strings.ToLower(name) {
	case "timezone":
		loc, err := ParseTimeZone(value)
		if err != nil {
			return err
		}
		s.Location = loc
	case "datestyle":
		order, err := parseDateStyle(value)
		if err != nil {
			return err
		}
		s.DateOrder = order
	}
	return nil
}

// parseDateStyle reads a DateStyle value such as "ISO, MDY".
func parseDateStyle(v string) (DateOrder, error) {
	order := MDY
	for _, part := range strings.Split(v, ",") {
		switch strings.ToLower(strings.TrimSpace(part)) {
		case "iso":
		case "mdy", "us", "noneuropean", "non-european":
			order = MDY
		case "dmy", "euro", "european":
			order = DMY
		case "ymd":
			order = YMD
		default:
			return 0, fmt.Errorf("failed to apply DateStyle: %w", ErrUnsupportedDateStyle)
		}
	}
	return order, nil
}

// ParseTimeZone resolves a TimeZone setting as PostgreSQL reports it: an
// IANA zone name ("Europe/Berlin", "UTC"), or a POSIX-style fixed offset
// such as "<+05:30>-05:30" (what SET TIME ZONE INTERVAL or a numeric offset
// produces) or "EST5". IANA names need the system zoneinfo or an embedded
// time/tzdata.
func ParseTimeZone(v string) (*time.Location, error) {
	switch strings.ToLower(v) {
	case "utc", "etc/utc", "gmt", "etc/gmt", "z", "zulu", "uct", "universal", "etc/universal", "etc/uct":
		return time.UTC, nil
	}
	if loc, ok := parsePOSIXOffset(v); ok {
		return loc, nil
	}
	loc, err := time.LoadLocation(v)
	if err != nil {
		return nil, fmt.Errorf("failed to load time zone: %w", ErrUnknownTimeZone)
	}
	return loc, nil
}

// parsePOSIXOffset reads "<NAME>[+-]h[:mm[:ss]]" or "NAME[+-]h[:mm[:ss]]"
// without daylight-saving rules. POSIX offsets count west of UTC.
func parsePOSIXOffset(v string) (*time.Location, bool) {
	name, rest := "", v
	if strings.HasPrefix(v, "<") {
		end := strings.IndexByte(v, '>')
		if end < 0 {
			return nil, false
		}
		name, rest = v[1:end], v[end+1:]
	} else {
		i := 0
		for i < len(v) && (v[i]|0x20 >= 'a' && v[i]|0x20 <= 'z') {
			i++
		}
		if i < 3 {
			return nil, false
		}
		name, rest = v[:i], v[i:]
	}
	if rest == "" {
		return nil, false
	}
	sign := int64(-1) // POSIX: positive means west
	switch rest[0] {
	case '+':
		rest = rest[1:]
	case '-':
		sign = 1
		rest = rest[1:]
	}
	fields := strings.Split(rest, ":")
	if len(fields) > 3 {
		return nil, false
	}
	var secs int64
	mult := []int64{3600, 60, 1}
	for i, f := range fields {
		n, err := strconv.ParseUint(f, 10, 8)
		if err != nil || (i > 0 && n > 59) || (i == 0 && n > 24) {
			return nil, false
		}
		secs += int64(n) * mult[i]
	}
	return time.FixedZone(name, int(sign*secs)), true
}

// parseZoneOffset reads +h, +hh, +hhmm, +hh:mm, +hhmmss or +hh:mm:ss, in
// seconds east of UTC. PostgreSQL allows up to 15:59:59 either way.
func parseZoneOffset(b []byte) (int64, error) {
	sign := int64(1)
	if b[0] == '-' {
		sign = -1
	}
	b = b[1:]
	var h, m, sec int64
	var fieldBuf [4][]byte
	fields := splitBytes(fieldBuf[:0], b, ':')
	for _, fl := range fields {
		if !allDigits(fl) || len(fl) > 6 {
			return 0, errSyntax
		}
	}
	atoi := func(x []byte) int64 { v, _ := strconv.ParseInt(string(x), 10, 64); return v }
	switch len(fields) {
	case 1:
		d := fields[0]
		switch len(d) {
		case 1, 2:
			h = atoi(d)
		case 3, 4:
			h, m = atoi(d[:len(d)-2]), atoi(d[len(d)-2:])
		case 5, 6:
			h, m, sec = atoi(d[:len(d)-4]), atoi(d[len(d)-4:len(d)-2]), atoi(d[len(d)-2:])
		default:
			return 0, errSyntax
		}
	case 2, 3:
		h, m = atoi(fields[0]), atoi(fields[1])
		if len(fields) == 3 {
			sec = atoi(fields[2])
		}
	default:
		return 0, errSyntax
	}
	if m > 59 || sec > 59 {
		return 0, errRange
	}
	if h > 15 {
		return 0, errRange
	}
	return sign * (h*3600 + m*60 + sec), nil
}
