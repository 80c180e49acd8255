package codec

import (
	"math"
	"time"
)

// PostgreSQL counts dates in days and timestamps in microseconds from
// 2000-01-01 00:00:00, on the proleptic Gregorian calendar.
const (
	usPerSec  = 1_000_000
	usPerDay  = 86_400 * usPerSec
	secPerDay = 86_400

	// unixToPGDays is the number of days from 1970-01-01 to 2000-01-01.
	unixToPGDays = 10957
	unixToPGSecs = unixToPGDays * secPerDay

	// dateMinDays is 4714-11-24 BC (Julian day 0) and dateEndDays the first
	// day past the range, 5874898-01-01.
	dateMinDays = -2451545
	dateEndDays = 2147483494 - 2451545

	// timestampMin is 4714-11-24 00:00:00 BC and timestampEnd the first
	// instant past the range, 294277-01-01 00:00:00.
	timestampMin = -211813488000000000
	timestampEnd = 9223371331200000000

	dateNegInfinity = math.MinInt32
	datePosInfinity = math.MaxInt32
	tsNegInfinity   = math.MinInt64
	tsPosInfinity   = math.MaxInt64
)

// daysFromCivil returns the day number (days since 2000-01-01) of a date on
// the proleptic Gregorian calendar; y is astronomical (1 BC is year 0).
func daysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := int64(m) + 9
	if m > 2 {
		mp = int64(m) - 3
	}
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468 - unixToPGDays
}

// civilFromDays is the inverse of daysFromCivil.
func civilFromDays(z int64) (y int64, m, d int) {
	z += 719468 + unixToPGDays
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysInMonth(y int64, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// floorDiv divides rounding towards negative infinity.
func floorDiv(a, b int64) (q, r int64) {
	q, r = a/b, a%b
	if r < 0 {
		q--
		r += b
	}
	return q, r
}

// offsetAt returns the UTC offset in seconds east of loc at an instant
// given in seconds since 2000-01-01 UTC.
func offsetAt(loc *time.Location, pgSec int64) int64 {
	if loc == time.UTC {
		return 0
	}
	_, off := time.Unix(pgSec+unixToPGSecs, 0).In(loc).Zone()
	return int64(off)
}

// localOffset returns the UTC offset (seconds east) that applies to a
// wall-clock time in loc, given in seconds since 2000-01-01 on the local
// clock. At a transition the
// choice follows PostgreSQL: a wall time that does not exist or exists
// twice gets the offset that yields the later instant.
func localOffset(loc *time.Location, localSec int64) int64 {
	if loc == time.UTC {
		return 0
	}
	before := offsetAt(loc, localSec-secPerDay)
	after := offsetAt(loc, localSec+secPerDay)
	validBefore := offsetAt(loc, localSec-before) == before
	validAfter := offsetAt(loc, localSec-after) == after
	switch {
	case before == after || validBefore && !validAfter:
		return before
	case validAfter && !validBefore:
		return after
	}
	// Both valid (fall back) or neither (spring forward): the later instant.
	return min(before, after)
}

// pgMicros converts a time.Time to microseconds since 2000-01-01 UTC.
func pgMicros(t time.Time) int64 {
	return (t.Unix()-unixToPGSecs)*usPerSec + int64(t.Nanosecond()/1000)
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var buf [24]byte
	i := len(buf)
	for v > 0 || i == len(buf) {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	for n := len(buf) - i; n < width; n++ {
		dst = append(dst, '0')
	}
	return append(dst, buf[i:]...)
}

// appendYMD writes an ISO date; bc reports whether " BC" must follow.
func appendYMD(dst []byte, days int64) (out []byte, bc bool) {
	y, m, d := civilFromDays(days)
	if y <= 0 {
		y = 1 - y
		bc = true
	}
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, int64(m), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, int64(d), 2)
	return dst, bc
}

func appendClock(dst []byte, us int64) []byte {
	sec := us / usPerSec
	frac := us % usPerSec
	dst = appendPadded(dst, sec/3600, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, sec/60%60, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, sec%60, 2)
	if frac != 0 {
		n := 6
		for frac%10 == 0 {
			frac /= 10
			n--
		}
		dst = append(dst, '.')
		dst = appendPadded(dst, frac, n)
	}
	return dst
}

// appendOffset writes a UTC offset as ISO DateStyle does: +HH, +HH:MM or
// +HH:MM:SS.
func appendOffset(dst []byte, off int64) []byte {
	sign := byte('+')
	if off < 0 {
		sign = '-'
		off = -off
	}
	dst = append(dst, sign)
	dst = appendPadded(dst, off/3600, 2)
	if off%3600 != 0 {
		dst = append(dst, ':')
		dst = appendPadded(dst, off/60%60, 2)
		if off%60 != 0 {
			dst = append(dst, ':')
			dst = appendPadded(dst, off%60, 2)
		}
	}
	return dst
}
