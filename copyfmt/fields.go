package copyfmt

import "bytes"

// attrSpace makes room for de-escaped fields of a line of n bytes, so that
// fields stored earlier in the row stay valid: a de-escaped field is never
// longer than its raw form.
func (r *Reader) attrSpace(n int) {
	if cap(r.attr) < n {
		r.attr = make([]byte, 0, n+n/4)
	}
	r.attr = r.attr[:0]
}

// textFields splits a text-format line into fields and de-escapes them as
// PostgreSQL's CopyReadAttributesText does. A field whose raw form equals
// the NULL string is NULL, except in the header.
func (r *Reader) textFields(line []byte, header bool) [][]byte {
	r.attrSpace(len(line))
	fields := r.fields[:0]
	delim := r.o.delim
	if bytes.IndexByte(line, '\\') < 0 {
		// No escapes: split on the delimiter.
		for {
			k := bytes.IndexByte(line, delim)
			end := k
			if k < 0 {
				end = len(line)
			}
			raw := line[:end:end]
			if !header && bytes.Equal(raw, r.o.null) {
				raw = nil
			}
			fields = append(fields, raw)
			if k < 0 {
				break
			}
			line = line[k+1:]
		}
		r.fields = fields
		return fields
	}
	start := 0
	for {
		i := start
		escaped := false
		for i < len(line) {
			c := line[i]
			if c == delim {
				break
			}
			if c == '\\' {
				escaped = true
				i += 2
				continue
			}
			i++
		}
		end := min(i, len(line))
		raw := line[start:end:end]
		switch {
		case !header && bytes.Equal(raw, r.o.null):
			fields = append(fields, nil)
		case !escaped:
			fields = append(fields, raw)
		default:
			fields = append(fields, r.unescape(raw))
		}
		if i >= len(line) {
			break
		}
		start = i + 1
	}
	r.fields = fields
	return fields
}

// unescape decodes the backslash escapes of a text-format field into the
// attribute buffer: \b \f \n \r \t \v, \ooo (one to three octal digits),
// \xh or \xhh, and a backslash before any other byte stands for that byte.
// A backslash at the very end is dropped.
func (r *Reader) unescape(raw []byte) []byte {
	start := len(r.attr)
	out := r.attr
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			break
		}
		c = raw[i]
		switch c {
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(c - '0')
			for k := 0; k < 2 && i+1 < len(raw) && raw[i+1] >= '0' && raw[i+1] <= '7'; k++ {
				i++
				v = v<<3 + int(raw[i]-'0')
			}
			c = byte(v)
		case 'x':
			if i+1 < len(raw) && hexVal(raw[i+1]) >= 0 {
				i++
				v := hexVal(raw[i])
				if i+1 < len(raw) && hexVal(raw[i+1]) >= 0 {
					i++
					v = v<<4 + hexVal(raw[i])
				}
				c = byte(v)
			}
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'v':
			c = '\v'
		}
		out = append(out, c)
	}
	r.attr = out
	return out[start:len(out):len(out)]
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// csvFields splits a CSV record into fields as PostgreSQL's
// CopyReadAttributesCSV does, then applies FORCE_NOT_NULL and FORCE_NULL.
// An unquoted field equal to the NULL string is NULL.
func (r *Reader) csvFields(line []byte, header bool) [][]byte {
	r.attrSpace(len(line))
	fields := r.fields[:0]
	delim, quote, esc := r.o.delim, r.o.quote, r.o.escape
	noQuotes := bytes.IndexByte(line, quote) < 0
	i := 0
	for {
		start := i
		if noQuotes {
			k := bytes.IndexByte(line[i:], delim)
			if k < 0 {
				i = len(line)
			} else {
				i += k
			}
		}
		sawQuote := false
		foundDelim := false
		var value []byte // set once a quote forces copying
		for i < len(line) {
			c := line[i]
			if c == delim {
				foundDelim = true
				break
			}
			if c != quote {
				i++
				continue
			}
			// Quoted part: copy what came before, then de-quote.
			if !sawQuote {
				sawQuote = true
				value = append(r.attr, line[start:i]...)
			}
			i++
			for {
				if i >= len(line) {
					// The record scanner guarantees a closing quote.
					break
				}
				c = line[i]
				if c == esc && i+1 < len(line) && (line[i+1] == esc || line[i+1] == quote) {
					value = append(value, line[i+1])
					i += 2
					continue
				}
				i++
				if c == quote {
					break
				}
				value = append(value, c)
			}
			// Unquoted text may follow the closing quote.
			for i < len(line) && line[i] != delim && line[i] != quote {
				value = append(value, line[i])
				i++
			}
		}
		var f []byte
		if sawQuote {
			off := len(r.attr)
			r.attr = value
			f = value[off:len(value):len(value)]
		} else {
			f = line[start:i:i]
			if !header && bytes.Equal(f, r.o.null) {
				f = nil
			}
		}
		if !header {
			col := len(fields)
			switch {
			case f == nil && flagAt(r.o.forceNotNull, r.o.notNullAll, col):
				f = r.o.null[:len(r.o.null):len(r.o.null)]
			case f != nil && flagAt(r.o.forceNull, r.o.nullAll, col) && bytes.Equal(f, r.o.null):
				f = nil
			}
		}
		fields = append(fields, f)
		if !foundDelim {
			break
		}
		i++
	}
	r.fields = fields
	return fields
}
