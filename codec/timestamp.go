package codec

import (
	"encoding/binary"
	"math"
	"strconv"
)

// parseClock reads h:m[:s[.frac]].
func parseClock(b []byte) (int64, error) {
	var fieldBuf [4][]byte
	fields := splitBytes(fieldBuf[:0], b, ':')
	if len(fields) < 2 || len(fields) > 3 {
		return 0, errSyntax
	}
	var frac []byte
	last := fields[len(fields)-1]
	for i, c := range last {
		if c == '.' {
			if len(fields) != 3 {
				return 0, errSyntax
			}
			last, frac = last[:i], last[i:]
			break
		}
	}
	fields[len(fields)-1] = last
	var hms [3]int64
	for i, fl := range fields {
		if !allDigits(fl) || len(fl) > 9 {
			return 0, errSyntax
		}
		hms[i], _ = strconv.ParseInt(string(fl), 10, 64)
	}
	return clockMicros(hms[0], hms[1], hms[2], frac)
}

// parseCompactClock reads the ISO 8601 basic forms after a 'T': hh, hhmm,
// hhmmss, each optionally with a fraction.
func parseCompactClock(b []byte) (int64, error) {
	var frac []byte
	for i, c := range b {
		if c == '.' {
			b, frac = b[:i], b[i:]
			break
		}
	}
	if !allDigits(b) {
		return 0, errSyntax
	}
	var hms [3]int64
	switch len(b) {
	case 2, 4, 6:
		for i := 0; i < len(b)/2; i++ {
			hms[i] = int64(b[2*i]-'0')*10 + int64(b[2*i+1]-'0')
		}
	default:
		return 0, errSyntax
	}
	if frac != nil && len(b) != 6 {
		return 0, errSyntax
	}
	return clockMicros(hms[0], hms[1], hms[2], frac)
}

// clockMicros checks a time of day as PostgreSQL does (24:00:00 and a leap
// second are allowed) and rounds the fraction to microseconds the way it
// does: rint(strtod(frac) * 1e6).
func clockMicros(h, m, sec int64, frac []byte) (int64, error) {
	var us int64
	if len(frac) > 0 {
		if len(frac) == 1 {
			frac = append(frac, '0')
		}
		if !allDigits(frac[1:]) {
			return 0, errSyntax
		}
		v, err := strconv.ParseFloat("0"+string(frac), 64)
		if err != nil {
			return 0, errSyntax
		}
		us = int64(math.RoundToEven(v * 1e6))
	}
	if h < 0 || h > 24 || m < 0 || m > 59 || sec < 0 || sec > 60 ||
		h == 24 && (m != 0 || sec != 0 || us != 0) {
		return 0, errRange
	}
	return ((h*60+m)*60+sec)*usPerSec + us, nil
}

func (s *Session) canonicalDate(dst []byte, format int16, wire []byte) ([]byte, error) {
	var days int64
	if format == BinaryFormat {
		if len(wire) != 4 {
			return dst, syntaxErr(Date, format, "wrong length for binary date")
		}
		days = int64(int32(binary.BigEndian.Uint32(wire)))
	} else {
		f, err := s.parseDateTime(Date, wire)
		if err != nil {
			return dst, err
		}
		switch f.special {
		case "infinity":
			days = datePosInfinity
		case "-infinity":
			days = dateNegInfinity
		case "epoch":
			days = -unixToPGDays
		case "":
			if !f.hasDate {
				return dst, codeErr(Date, format, CodeInvalidDatetimeFormat, "invalid input syntax")
			}
			days = f.days
		default:
			now := s.localNowMicros()
			days, _ = floorDiv(now, usPerDay)
			days += specialDayShift(f.special)
		}
	}
	if days != datePosInfinity && days != dateNegInfinity && (days < dateMinDays || days >= dateEndDays) {
		return dst, codeErr(Date, format, CodeDatetimeFieldOverflow, "date out of range")
	}
	return binary.BigEndian.AppendUint32(dst, uint32(int32(days))), nil
}

func specialDayShift(w string) int64 {
	switch w {
	case "tomorrow":
		return 1
	case "yesterday":
		return -1
	}
	return 0
}

// localNowMicros is the current wall-clock time in the session zone, in
// microseconds since 2000-01-01.
func (s *Session) localNowMicros() int64 {
	now := pgMicros(s.now())
	sec, _ := floorDiv(now, usPerSec)
	return now + offsetAt(s.location(), sec)*usPerSec
}

func (s *Session) canonicalTimestamp(dst []byte, t Type, format int16, wire []byte) ([]byte, error) {
	var ts int64
	if format == BinaryFormat {
		if len(wire) != 8 {
			return dst, syntaxErr(t, format, "wrong length for binary timestamp")
		}
		ts = int64(binary.BigEndian.Uint64(wire))
	} else {
		var err error
		ts, err = s.parseTimestamp(t, wire)
		if err != nil {
			return dst, err
		}
	}
	if ts != tsPosInfinity && ts != tsNegInfinity && (ts < timestampMin || ts >= timestampEnd) {
		return dst, codeErr(t, format, CodeDatetimeFieldOverflow, "timestamp out of range")
	}
	return binary.BigEndian.AppendUint64(dst, uint64(ts)), nil
}

func (s *Session) parseTimestamp(t Type, wire []byte) (int64, error) {
	f, err := s.parseDateTime(t, wire)
	if err != nil {
		return 0, err
	}
	loc := s.location()
	switch f.special {
	case "infinity":
		return tsPosInfinity, nil
	case "-infinity":
		return tsNegInfinity, nil
	case "epoch":
		return -unixToPGSecs * usPerSec, nil
	case "now":
		if t == Timestamptz {
			return pgMicros(s.now()), nil
		}
		return s.localNowMicros(), nil
	case "today", "tomorrow", "yesterday":
		days, _ := floorDiv(s.localNowMicros(), usPerDay)
		f = dtFields{hasDate: true, days: days + specialDayShift(f.special)}
	}
	if !f.hasDate {
		return 0, codeErr(t, TextFormat, CodeInvalidDatetimeFormat, "invalid input syntax")
	}
	if f.days < dateMinDays || f.days >= dateEndDays {
		return 0, codeErr(t, TextFormat, CodeDatetimeFieldOverflow, "timestamp out of range")
	}
	local := f.days*usPerDay + f.timeUS
	if t == Timestamp {
		return local, nil
	}
	localSec, _ := floorDiv(local, usPerSec)
	var off int64
	switch {
	case f.hasZone && f.zoneLoc == nil:
		off = f.zoneOff
	case f.hasZone:
		off = localOffset(f.zoneLoc, localSec)
	default:
		off = localOffset(loc, localSec)
	}
	return local - off*usPerSec, nil
}

func encodeDate(dst []byte, format int16, c []byte) ([]byte, error) {
	if len(c) != 4 {
		return dst, corruptErr(Date, format)
	}
	days := int64(int32(binary.BigEndian.Uint32(c)))
	if days != dateNegInfinity && days != datePosInfinity && (days < dateMinDays || days >= dateEndDays) {
		return dst, corruptErr(Date, format)
	}
	if format == BinaryFormat {
		return append(dst, c...), nil
	}
	switch days {
	case dateNegInfinity:
		return append(dst, "-infinity"...), nil
	case datePosInfinity:
		return append(dst, "infinity"...), nil
	}
	dst, bc := appendYMD(dst, days)
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst, nil
}

func (s *Session) encodeTimestamp(dst []byte, t Type, format int16, c []byte) ([]byte, error) {
	if len(c) != 8 {
		return dst, corruptErr(t, format)
	}
	ts := int64(binary.BigEndian.Uint64(c))
	if ts != tsNegInfinity && ts != tsPosInfinity && (ts < timestampMin || ts >= timestampEnd) {
		return dst, corruptErr(t, format)
	}
	if format == BinaryFormat {
		return append(dst, c...), nil
	}
	switch ts {
	case tsNegInfinity:
		return append(dst, "-infinity"...), nil
	case tsPosInfinity:
		return append(dst, "infinity"...), nil
	}
	var off int64
	if t == Timestamptz {
		sec, _ := floorDiv(ts, usPerSec)
		off = offsetAt(s.location(), sec)
		ts += off * usPerSec
	}
	days, us := floorDiv(ts, usPerDay)
	dst, bc := appendYMD(dst, days)
	dst = append(dst, ' ')
	dst = appendClock(dst, us)
	if t == Timestamptz {
		dst = appendOffset(dst, off)
	}
	if bc {
		dst = append(dst, " BC"...)
	}
	return dst, nil
}
