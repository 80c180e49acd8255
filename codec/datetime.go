package codec

import (
	"bytes"
	"strconv"
	"time"
)

// dtToken is one lexical field of a date/time input.
type dtToken struct {
	kind byte   // see tok* below
	text []byte // as written (lower-cased for words)
	sep  byte   // separator of a tokDate
}

const (
	tokNumber = 'n' // digits, perhaps with one fractional part
	tokDate   = 'd' // fields joined by '-', '/' or '.'
	tokClock  = 'c' // fields joined by ':'
	tokWord   = 'w' // letters, maybe with a leading sign ("-infinity")
	tokZone   = 'z' // a zone name such as America/New_York (case kept)
	tokOffset = 'o' // a signed UTC offset such as +05:30
)

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// appendLower appends b lower-cased to buf and returns the appended part.
// buf is preallocated by the caller to hold the whole input, so the parts
// returned earlier stay valid.
func appendLower(buf *[]byte, b []byte) []byte {
	start := len(*buf)
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		*buf = append(*buf, c)
	}
	return (*buf)[start:len(*buf):len(*buf)]
}

// dtTokenize splits a date/time input into fields much as PostgreSQL's
// ParseDateTime does. ok is false on a character that starts no field.
func dtTokenize(toks []dtToken, s []byte) ([]dtToken, bool) {
	n := len(s)
	scratch := make([]byte, 0, n)
	lower := func(b []byte) []byte { return appendLower(&scratch, b) }
	for i := 0; i < n; {
		c := s[i]
		start := i
		switch {
		case isSpace(c) || c == ',':
			i++
			continue
		case isDigit(c):
			for i < n && isDigit(s[i]) {
				i++
			}
			switch {
			case i < n && s[i] == ':':
				for i < n && (isDigit(s[i]) || s[i] == ':' || s[i] == '.') {
					i++
				}
				toks = append(toks, dtToken{kind: tokClock, text: s[start:i]})
			case i+1 < n && (s[i] == '-' || s[i] == '/') && (isDigit(s[i+1]) || isAlpha(s[i+1])):
				sep := s[i]
				alnum := isAlpha(s[i+1])
				for i < n && (s[i] == sep || isDigit(s[i]) || alnum && isAlpha(s[i])) {
					i++
				}
				toks = append(toks, dtToken{kind: tokDate, text: lower(s[start:i]), sep: sep})
			case i < n && s[i] == '.':
				i++
				for i < n && isDigit(s[i]) {
					i++
				}
				if i < n && s[i] == '.' {
					i++
					for i < n && isDigit(s[i]) {
						i++
					}
					toks = append(toks, dtToken{kind: tokDate, text: s[start:i], sep: '.'})
				} else {
					toks = append(toks, dtToken{kind: tokNumber, text: s[start:i]})
				}
			default:
				toks = append(toks, dtToken{kind: tokNumber, text: s[start:i]})
			}
		case isAlpha(c):
			for i < n && isAlpha(s[i]) {
				i++
			}
			word := lower(s[start:i])
			zoneWithDigits := false
			if i-start >= 3 && i < n && isDigit(s[i]) {
				// POSIX-style zone names such as EST5EDT.
				j := i
				for j < n && isDigit(s[j]) {
					j++
				}
				zoneWithDigits = j < n && isAlpha(s[j])
			}
			switch {
			case zoneWithDigits || i < n && (s[i] == '/' || s[i] == '_'):
				for i < n && (isAlpha(s[i]) || isDigit(s[i]) || s[i] == '/' || s[i] == '_' || s[i] == '+' || s[i] == '-') {
					i++
				}
				toks = append(toks, dtToken{kind: tokZone, text: s[start:i]})
			case i+1 < n && (s[i] == '-' || s[i] == '/' || s[i] == '.') && monthNumber(word) > 0 && (isDigit(s[i+1]) || isAlpha(s[i+1])):
				sep := s[i]
				for i < n && (s[i] == sep || isDigit(s[i]) || isAlpha(s[i])) {
					i++
				}
				toks = append(toks, dtToken{kind: tokDate, text: lower(s[start:i]), sep: sep})
			default:
				toks = append(toks, dtToken{kind: tokWord, text: word})
			}
		case (c == '+' || c == '-') && i+1 < n && isDigit(s[i+1]):
			i++
			for i < n && (isDigit(s[i]) || s[i] == ':' || s[i] == '.') {
				i++
			}
			toks = append(toks, dtToken{kind: tokOffset, text: s[start:i]})
		case (c == '+' || c == '-') && i+1 < n && isAlpha(s[i+1]):
			i++
			for i < n && isAlpha(s[i]) {
				i++
			}
			toks = append(toks, dtToken{kind: tokWord, text: lower(s[start:i])})
		default:
			return nil, false
		}
	}
	return toks, true
}

var monthNames = [...]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
var monthLong = [...]string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}

func monthNumber(w []byte) int {
	for i := range monthNames {
		if string(w) == monthNames[i] || string(w) == monthLong[i] {
			return i + 1
		}
	}
	if string(w) == "sept" {
		return 9
	}
	return 0
}

func isWeekday(w []byte) bool {
	switch string(w) {
	case "sun", "mon", "tue", "tues", "wed", "wednes", "thu", "thur", "thurs", "fri", "sat",
		"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday":
		return true
	}
	return false
}

// dtFields is a decoded date/time input.
type dtFields struct {
	special string // "infinity", "-infinity", "epoch", "now", "today", "tomorrow", "yesterday"

	hasDate bool
	days    int64 // since 2000-01-01

	hasTime bool
	timeUS  int64 // since midnight; may reach 24:00:00 or a leap second

	hasZone bool
	zoneOff int64 // seconds east of UTC, when zoneLoc is nil
	zoneLoc *time.Location
}

// datePart is one field of a date: a number as written or a month.
type datePart struct {
	digits []byte
	month  int // > 0 for a month name
}

// parseDateTime decodes the date/time input forms PostgreSQL accepts that
// pgseal supports (see docs/canonical.md). t names the type in errors.
func (s *Session) parseDateTime(t Type, in []byte) (dtFields, error) {
	var f dtFields
	bad := func() (dtFields, error) {
		return f, codeErr(t, TextFormat, CodeInvalidDatetimeFormat, "invalid input syntax")
	}
	outOfRange := func() (dtFields, error) {
		return f, codeErr(t, TextFormat, CodeDatetimeFieldOverflow, "date/time field value out of range")
	}
	var tokBuf [12]dtToken
	toks, ok := dtTokenize(tokBuf[:0], in)
	if !ok || len(toks) == 0 {
		return bad()
	}
	if len(toks) == 1 && toks[0].kind == tokWord {
		switch w := string(toks[0].text); w {
		case "infinity", "+infinity", "-infinity", "epoch", "now", "today", "tomorrow", "yesterday":
			if w == "+infinity" {
				w = "infinity"
			}
			f.special = w
			return f, nil
		}
	}
	var partBuf [4]datePart
	var (
		parts     = partBuf[:0]
		fromToken bool  // parts came from one tokDate
		compact   bool  // parts came from YYYYMMDD or YYMMDD
		julian    int64 = -1
		ampm      string
		bc, ad    bool
		isoT      bool
	)
	setZone := func(off int64, loc *time.Location) bool {
		if f.hasZone {
			return false
		}
		f.hasZone, f.zoneOff, f.zoneLoc = true, off, loc
		return true
	}
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		afterT := isoT
		isoT = false
		switch tok.kind {
		case tokDate:
			// PostgreSQL refuses a separated date after the time.
			if len(parts) > 0 || f.hasTime {
				return bad()
			}
			fromToken = true
			var fieldBuf [4][]byte
			for _, p := range splitBytes(fieldBuf[:0], tok.text, tok.sep) {
				if len(p) == 0 {
					return bad()
				}
				if isDigit(p[0]) {
					for _, c := range p {
						if !isDigit(c) {
							return bad()
						}
					}
					parts = append(parts, datePart{digits: p})
				} else if m := monthNumber(p); m > 0 {
					parts = append(parts, datePart{month: m})
				} else {
					return bad()
				}
			}
		case tokClock:
			if f.hasTime {
				return bad()
			}
			us, err := parseClock(tok.text)
			if err == errRange {
				return outOfRange()
			} else if err != nil {
				return bad()
			}
			f.hasTime, f.timeUS = true, us
		case tokNumber:
			switch {
			case i > 0 && toks[i-1].kind == tokWord && string(toks[i-1].text) == "j":
				jd, err := strconv.ParseInt(string(tok.text), 10, 64)
				if err != nil || julian >= 0 {
					return bad()
				}
				julian = jd
			case afterT && !f.hasTime:
				us, err := parseCompactClock(tok.text)
				if err == errRange {
					return outOfRange()
				} else if err != nil {
					return bad()
				}
				f.hasTime, f.timeUS = true, us
			case len(parts) == 0 && isYearDayOfYear(tok.text):
				dot := bytes.IndexByte(tok.text, '.')
				parts = []datePart{{digits: tok.text[:dot]}, {digits: tok.text[dot+1:]}}
				fromToken = true
			case len(parts) == 0 && (len(tok.text) == 8 || len(tok.text) == 6) && allDigits(tok.text):
				// YYYYMMDD or YYMMDD.
				n := len(tok.text) - 4
				parts = []datePart{{digits: tok.text[:n]}, {digits: tok.text[n : n+2]}, {digits: tok.text[n+2:]}}
				fromToken, compact = true, true
			case allDigits(tok.text) && !fromToken:
				parts = append(parts, datePart{digits: tok.text})
			default:
				return bad()
			}
		case tokWord:
			w := tok.text
			switch {
			case monthNumber(w) > 0 && !fromToken:
				parts = append(parts, datePart{month: monthNumber(w)})
			case isWeekday(w):
			case string(w) == "am" || string(w) == "pm":
				if ampm != "" {
					return bad()
				}
				ampm = string(w)
			case string(w) == "bc":
				bc = true
			case string(w) == "ad":
				ad = true
			case string(w) == "t":
				isoT = true
			case string(w) == "j":
				if i+1 >= len(toks) || toks[i+1].kind != tokNumber {
					return bad()
				}
			case string(w) == "allballs":
				if f.hasTime {
					return bad()
				}
				f.hasTime = true
			default:
				off, ok := zoneAbbrev(w)
				if !ok || !setZone(off, nil) {
					return bad()
				}
			}
		case tokZone:
			loc, err := ParseTimeZone(string(tok.text))
			if err != nil {
				return f, codeErr(t, TextFormat, CodeInvalidParameterValue, "time zone not recognized")
			}
			if !setZone(0, loc) {
				return bad()
			}
		case tokOffset:
			off, err := parseZoneOffset(tok.text)
			if err == errRange {
				return f, codeErr(t, TextFormat, CodeInvalidTimeZoneDisplacement, "time zone displacement out of range")
			} else if err != nil || !setZone(off, nil) {
				return bad()
			}
		}
	}
	if isoT || (bc && ad) {
		return bad()
	}
	if ampm != "" {
		if !f.hasTime {
			return bad()
		}
		h := f.timeUS / (3600 * usPerSec)
		if h > 12 {
			return outOfRange()
		}
		if ampm == "pm" && h < 12 {
			f.timeUS += 12 * 3600 * usPerSec
		} else if ampm == "am" && h == 12 {
			f.timeUS -= 12 * 3600 * usPerSec
		}
	}
	if julian >= 0 {
		if len(parts) > 0 || bc {
			return bad()
		}
		f.hasDate, f.days = true, julian-2451545
		return f, nil
	}
	if len(parts) == 0 {
		return f, nil
	}
	y, m, d, err := s.resolveDate(parts, compact, bc)
	if err == errRange {
		return outOfRange()
	} else if err != nil {
		return bad()
	}
	if bc {
		if y <= 0 {
			return outOfRange()
		}
		y = 1 - y
	} else if y <= 0 {
		return outOfRange()
	}
	if m < 1 || m > 12 || d < 1 || d > daysInMonth(y, m) || y < -4713 || y > 5874898 {
		return outOfRange()
	}
	f.hasDate, f.days = true, daysFromCivil(y, m, d)
	return f, nil
}

type dtError string

func (e dtError) Error() string { return string(e) }

const (
	errSyntax = dtError("syntax")
	errRange  = dtError("range")
)

// isYearDayOfYear matches yyyy.ddd.
func isYearDayOfYear(b []byte) bool {
	dot := bytes.IndexByte(b, '.')
	return dot >= 3 && allDigits(b[:dot]) && len(b)-dot-1 == 3 && allDigits(b[dot+1:])
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}

// splitBytes appends the sep-separated fields of b to out.
func splitBytes(out [][]byte, b []byte, sep byte) [][]byte {
	start := 0
	for i, c := range b {
		if c == sep {
			out = append(out, b[start:i])
			start = i + 1
		}
	}
	return append(out, b[start:])
}

// resolveDate orders three date fields into year, month and day: a field of
// three or more digits is the year; otherwise a month name fixes the month
// and DateStyle's order decides the rest. Two-digit years map to 1970-2069.
func (s *Session) resolveDate(parts []datePart, compact, bc bool) (y int64, m, d int, err error) {
	if len(parts) == 2 && len(parts[0].digits) >= 3 && len(parts[1].digits) == 3 && len(parts[0].digits) <= 9 {
		// Year and day of year: 1999.008, 1999-008.
		y, _ = strconv.ParseInt(string(parts[0].digits), 10, 64)
		doy, _ := strconv.Atoi(string(parts[1].digits))
		if doy < 1 || (doy > 365 && !(doy == 366 && isLeap(y))) {
			return 0, 0, 0, errRange
		}
		days := daysFromCivil(y, 1, 1) + int64(doy) - 1
		_, m, d = civilFromDays(days)
		return y, m, d, nil
	}
	if len(parts) != 3 {
		return 0, 0, 0, errSyntax
	}
	order := s.dateOrder()
	if compact {
		order = YMD
	}
	var yPart, mPart, dPart *datePart
	monthAt := -1
	for i := range parts {
		if parts[i].month > 0 {
			if monthAt >= 0 {
				return 0, 0, 0, errSyntax
			}
			monthAt = i
		}
	}
	switch {
	case monthAt >= 0:
		mPart = &parts[monthAt]
		var rest []*datePart
		for i := range parts {
			if i != monthAt {
				rest = append(rest, &parts[i])
			}
		}
		switch {
		case len(rest[0].digits) > 2:
			yPart, dPart = rest[0], rest[1]
		case len(rest[1].digits) > 2:
			dPart, yPart = rest[0], rest[1]
		case order == YMD && monthAt != 0:
			yPart, dPart = rest[0], rest[1]
		default:
			dPart, yPart = rest[0], rest[1]
		}
	case len(parts[0].digits) > 2 || order == YMD:
		yPart, mPart, dPart = &parts[0], &parts[1], &parts[2]
	case order == DMY:
		dPart, mPart, yPart = &parts[0], &parts[1], &parts[2]
	default:
		mPart, dPart, yPart = &parts[0], &parts[1], &parts[2]
	}
	num := func(p *datePart) (int64, error) {
		if p.month > 0 {
			return 0, errSyntax
		}
		if len(p.digits) > 9 {
			return 0, errRange
		}
		v, _ := strconv.ParseInt(string(p.digits), 10, 64)
		return v, nil
	}
	if mPart.month > 0 {
		m = mPart.month
	} else {
		mv, err := num(mPart)
		if err != nil {
			return 0, 0, 0, err
		}
		m = int(min(mv, 99))
	}
	dv, err := num(dPart)
	if err != nil {
		return 0, 0, 0, err
	}
	y, err = num(yPart)
	if err != nil {
		return 0, 0, 0, err
	}
	if len(yPart.digits) <= 2 && !bc {
		if y < 70 {
			y += 2000
		} else {
			y += 1900
		}
	}
	return y, m, int(min(dv, 99)), nil
}
