package auditlog

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// lineReader splits a log into lines of at most maxLineSize bytes and
// reports a last line without a newline as torn.
type lineReader struct {
	r *bufio.Reader
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// next returns the next line without its newline, or io.EOF at the end.
func (lr *lineReader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := lr.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxLineSize+1 {
			return nil, fmt.Errorf("entry too long: %w", ErrMalformed)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(line) == 0 {
				return nil, io.EOF
			}
			return nil, fmt.Errorf("last entry incomplete: %w", ErrMalformed)
		default:
			return nil, fmt.Errorf("failed to read audit log: %w", err)
		}
	}
}
