package copyfmt

import (
	"encoding/binary"
	"io"
)

// binarySignature starts binary COPY data.
var binarySignature = [11]byte{'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0}

func (r *Reader) nextBinary() (Row, error) {
	b := r.buf[r.off:]
	if !r.binHeader {
		if len(b) < 19 {
			if r.ended {
				return Row{}, dataErr(0, "invalid COPY file header (missing signature, flags or extension length)")
			}
			return Row{}, ErrNeedMore
		}
		if [11]byte(b[:11]) != binarySignature {
			return Row{}, dataErr(0, "COPY file signature not recognized")
		}
		flags := binary.BigEndian.Uint32(b[11:])
		if flags&(1<<16) != 0 {
			return Row{}, dataErr(0, "invalid COPY file header (WITH OIDS)")
		}
		if flags>>17 != 0 {
			return Row{}, dataErr(0, "unrecognized critical flags in COPY file header")
		}
		ext := int(int32(binary.BigEndian.Uint32(b[15:])))
		if ext < 0 {
			return Row{}, dataErr(0, "invalid COPY file header (extension length)")
		}
		if ext > r.o.maxRow {
			return Row{}, r.tooLarge()
		}
		if len(b) < 19+ext {
			if r.ended {
				return Row{}, dataErr(0, "invalid COPY file header (wrong length)")
			}
			return Row{}, ErrNeedMore
		}
		r.binHeader = true
		r.off += 19 + ext
		r.scan = r.off
		return Row{Header: true, Raw: b[:19+ext]}, nil
	}
	if len(b) == 0 && r.ended {
		r.eof = true
		return Row{}, io.EOF
	}
	truncated := func() (Row, error) {
		if r.ended {
			return Row{}, dataErr(r.rows+1, "unexpected EOF in COPY data")
		}
		if len(b) > r.o.maxRow {
			return Row{}, r.tooLarge()
		}
		return Row{}, ErrNeedMore
	}
	if len(b) < 2 {
		return truncated()
	}
	count := int(int16(binary.BigEndian.Uint16(b)))
	if count == -1 {
		r.marker, r.eof = true, true
		r.off += 2
		if len(b) > 2 {
			return Row{}, dataErr(r.rows+1, "received copy data after EOF marker")
		}
		return Row{}, io.EOF
	}
	if count < 0 || r.o.ncols > 0 && count != r.o.ncols {
		return Row{}, dataErr(r.rows+1, "row field count does not match the columns")
	}
	if r.binPos == 0 {
		r.binPos = 2
		r.binSpans = r.binSpans[:0]
	}
	for len(r.binSpans) < 2*count {
		if len(b) < r.binPos+4 {
			return truncated()
		}
		n := int(int32(binary.BigEndian.Uint32(b[r.binPos:])))
		switch {
		case n == -1:
			r.binSpans = append(r.binSpans, r.binPos+4, -1)
			r.binPos += 4
			continue
		case n < 0:
			return Row{}, dataErr(r.rows+1, "invalid field size")
		case n > r.o.maxRow-r.binPos:
			return Row{}, r.tooLarge()
		}
		if len(b) < r.binPos+4+n {
			return truncated()
		}
		r.binSpans = append(r.binSpans, r.binPos+4, n)
		r.binPos += 4 + n
	}
	fields := r.fields[:0]
	for k := 0; k < len(r.binSpans); k += 2 {
		start, n := r.binSpans[k], r.binSpans[k+1]
		if n < 0 {
			fields = append(fields, nil)
		} else {
			fields = append(fields, b[start:start+n:start+n])
		}
	}
	r.fields = fields
	r.rows++
	row := Row{Fields: fields, Raw: b[:r.binPos], Line: r.rows}
	r.off += r.binPos
	r.scan = r.off
	r.binPos = 0
	return row, nil
}
