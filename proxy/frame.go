package proxy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrMessageTooLarge is returned when a peer sends a message longer than the
// configured maximum.
var ErrMessageTooLarge = errors.New("protocol message exceeds the maximum size")

// errMalformed is returned for a frame whose length field is impossible.
var errMalformed = errors.New("malformed protocol message")

const (
	// readBufSize is the size of the buffered reader on each connection. A
	// frame that fits is handed out without copying.
	readBufSize  = 64 << 10
	writeBufSize = 64 << 10
)

// msgReader reads typed protocol frames (type byte, int32 length, body).
//
// A frame returned by next is valid only until the following call: it may
// point into the reader's buffer. Callers that keep one must bytes.Clone it.
// A msgReader is not safe for concurrent use.
type msgReader struct {
	r        *bufio.Reader
	max      int // maximum body length
	discard  int // bytes of the previous frame still in r
	big      []byte
	oversize int // length of a frame refused as too large, still unread
}

func newMsgReader(r io.Reader, max int) *msgReader {
	return &msgReader{r: bufio.NewReaderSize(r, readBufSize), max: max}
}

// next returns the next frame's type and its whole raw bytes, header included.
func (m *msgReader) next() (byte, []byte, error) {
	if m.discard > 0 {
		if _, err := m.r.Discard(m.discard); err != nil {
			return 0, nil, err
		}
		m.discard = 0
	}
	hdr, err := m.r.Peek(5)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	typ := hdr[0]
	n := int(int32(binary.BigEndian.Uint32(hdr[1:5])))
	if n < 4 {
		return 0, nil, fmt.Errorf("%w: type %q, length %d", errMalformed, typ, n)
	}
	if n-4 > m.max {
		m.oversize = n + 1
		return 0, nil, fmt.Errorf("%w: type %q, %d bytes, limit %d", ErrMessageTooLarge, typ, n-4, m.max)
	}
	total := n + 1
	if total <= m.r.Size() {
		frame, err := m.r.Peek(total)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
		m.discard = total
		return typ, frame, nil
	}
	if cap(m.big) < total {
		m.big = make([]byte, total)
	}
	frame := m.big[:total]
	if _, err := io.ReadFull(m.r, frame); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	// Do not pin a huge buffer for the rest of the session.
	if cap(m.big) > 4*readBufSize {
		m.big = nil
	}
	return typ, frame, nil
}

// frameReady reports whether a complete frame is already buffered, so that
// the next call to next will not block. Writers use it to decide whether to
// flush: output is held back only while more input is waiting.
func (m *msgReader) frameReady() bool {
	avail := m.r.Buffered() - m.discard
	if avail < 5 {
		return false
	}
	hdr, err := m.r.Peek(m.discard + 5)
	if err != nil {
		return false
	}
	n := int(int32(binary.BigEndian.Uint32(hdr[m.discard+1:])))
	return n >= 4 && avail >= n+1
}

// body returns the body of a raw frame.
func body(frame []byte) []byte { return frame[5:] }

// drainOversize reads and discards, up to limit bytes, the frame that next
// refused as too large, so that a peer still sending it can finish and read
// the error instead of meeting a reset connection.
func (m *msgReader) drainOversize(limit int) {
	n := min(m.oversize, limit)
	m.oversize = 0
	io.CopyN(io.Discard, m.r, int64(n))
}
