package datapath

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/copyfmt"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

// copyPlan is what the data path needs to stream one COPY.
type copyPlan struct {
	from    bool
	opts    copyfmt.Options
	columns []*policy.Column // by data column; nil entries pass through
}

// copyStream rewrites the data of one COPY as it streams: rows are parsed,
// their policy fields encrypted (FROM) or decrypted (TO), and written back
// in the same format. Memory is bounded by the largest row.
type copyStream struct {
	plan   *copyPlan
	r      *copyfmt.Reader
	w      *copyfmt.Writer
	out    []byte
	fields [][]byte
	failed bool // an error ended the COPY: drop the rest of its data
	conv   convFunc
	vals   []byte   // storage for converted values of the current row
	spans  [][2]int // where each converted field lies in vals; -1: unchanged
}

// convFunc appends the converted value of one policy field to dst.
type convFunc func(dst []byte, line int64, col *policy.Column, v []byte) ([]byte, error)

// planCopy turns a COPY statement's analysis into a copyPlan. It returns
// nil when the COPY moves no policy column, and a refusal when pgseal
// cannot stream it.
func (s *session) planCopy(cp *rewrite.Copy) (*copyPlan, *proxy.Error) {
	if cp == nil {
		return nil, nil
	}
	opts, err := copyOptions(cp.Options)
	if err != nil {
		return nil, proxy.Errorf(proxy.CodeFeatureNotSupported, "pgseal: %v", err)
	}
	p := &copyPlan{from: cp.From, opts: opts}
	switch {
	case cp.Query != nil:
		if cp.Query.ResultsFromRowDescription {
			return nil, proxy.Errorf(proxy.CodeFeatureNotSupported, "pgseal: COPY (query) TO with * over a table with encrypted columns needs catalog information; list the columns")
		}
		for _, rc := range cp.Query.Results {
			p.columns = append(p.columns, rc.Column)
		}
	default:
		names := cp.Columns
		if names == nil {
			cols, ok := s.cat.data.Load().Columns(cp.Table.Schema, cp.Table.Name)
			if !ok {
				return nil, proxy.Errorf(proxy.CodeFeatureNotSupported, "pgseal: COPY %s without a column list needs catalog information; list the columns", cp.Table)
			}
			names = cols
		}
		t, _ := s.snapshot().Policy.Table(cp.Table.Schema, cp.Table.Name)
		for _, n := range names {
			var col *policy.Column
			if t != nil {
				col, _ = t.Column(n)
			}
			p.columns = append(p.columns, col)
		}
		p.opts.Columns = names
	}
	if !hasColumn(p.columns) {
		return nil, nil
	}
	return p, nil
}

// copyOptions converts the options of a COPY statement.
func copyOptions(list []rewrite.CopyOption) (copyfmt.Options, error) {
	var o copyfmt.Options
	names := func(v string) ([]string, bool) {
		if v == "*" {
			return nil, true
		}
		return strings.Split(v, ","), false
	}
	for _, opt := range list {
		v := opt.Value
		switch strings.ToLower(opt.Name) {
		case "format":
			switch strings.ToLower(v) {
			case "text":
				o.Format = copyfmt.Text
			case "csv":
				o.Format = copyfmt.CSV
			case "binary":
				o.Format = copyfmt.Binary
			default:
				return o, fmt.Errorf("COPY format %q is not supported", v)
			}
		case "delimiter":
			if len(v) != 1 {
				return o, errors.New("COPY delimiter must be a single one-byte character")
			}
			o.Delimiter = v[0]
		case "null":
			nv := v
			o.Null = &nv
		case "default":
			dv := v
			o.Default = &dv
		case "quote":
			if len(v) != 1 {
				return o, errors.New("COPY quote must be a single one-byte character")
			}
			o.Quote = v[0]
		case "escape":
			if len(v) != 1 {
				return o, errors.New("COPY escape must be a single one-byte character")
			}
			o.Escape = v[0]
		case "header":
			switch strings.ToLower(v) {
			case "match":
				o.HeaderMatch = true
			case "", "true", "on", "1":
				o.Header = true
			}
		case "force_quote":
			o.ForceQuote, o.ForceQuoteAll = names(v)
		case "force_not_null":
			o.ForceNotNull, o.ForceNotNullAll = names(v)
		case "force_null":
			o.ForceNull, o.ForceNullAll = names(v)
		case "encoding":
			if !strings.EqualFold(strings.ReplaceAll(v, "-", ""), "utf8") {
				return o, fmt.Errorf("COPY with ENCODING %q on encrypted columns is not supported (UTF8 only)", v)
			}
		case "freeze", "oids":
		default:
			return o, fmt.Errorf("COPY option %q is not supported on encrypted columns", opt.Name)
		}
	}
	return o, nil
}

func newCopyStream(p *copyPlan) (*copyStream, error) {
	r, err := copyfmt.NewReader(p.opts)
	if err != nil {
		return nil, err
	}
	w, err := copyfmt.NewWriter(p.opts)
	if err != nil {
		return nil, err
	}
	return &copyStream{plan: p, r: r, w: w}, nil
}

// valueFormat is the wire format of a COPY field.
func (c *copyStream) valueFormat() int16 {
	if c.plan.opts.Format == copyfmt.Binary {
		return codec.BinaryFormat
	}
	return codec.TextFormat
}

// pump feeds data (nil at the end) and converts every complete row with
// conv, appending the output to c.out.
func (c *copyStream) pump(data []byte, end bool, conv convFunc) error {
	if data != nil {
		if err := c.r.Feed(data); err != nil {
			return err
		}
	}
	if end {
		c.r.End()
	}
	for {
		row, err := c.r.Next()
		if errors.Is(err, copyfmt.ErrNeedMore) || errors.Is(err, io.EOF) {
			if end && c.r.EndMarker() || end && c.plan.opts.Format == copyfmt.Binary {
				c.out = c.w.AppendEnd(c.out)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if row.Header {
			c.out = append(c.out, row.Raw...)
			continue
		}
		// Converted values go into one buffer per row; the fields point
		// into it only once the row is complete, as it may move while it
		// grows.
		c.fields, c.vals, c.spans = c.fields[:0], c.vals[:0], c.spans[:0]
		for i, f := range row.Fields {
			span := [2]int{-1, -1}
			if i < len(c.plan.columns) && c.plan.columns[i] != nil && f != nil {
				start := len(c.vals)
				if c.vals, err = conv(c.vals, row.Line, c.plan.columns[i], f); err != nil {
					return err
				}
				span = [2]int{start, len(c.vals)}
			}
			c.spans = append(c.spans, span)
			c.fields = append(c.fields, f)
		}
		for i, sp := range c.spans {
			if sp[0] >= 0 {
				c.fields[i] = c.vals[sp[0]:sp[1]:sp[1]]
			}
		}
		if c.out, err = c.w.AppendRow(c.out, c.fields); err != nil {
			return err
		}
	}
}

// flushTo sends what the stream produced as one CopyData message.
func (c *copyStream) flushTo(w proxy.Writer, buf *[]byte) error {
	if len(c.out) == 0 {
		return nil
	}
	b, err := (&pgproto3.CopyData{Data: c.out}).Encode((*buf)[:0])
	if err != nil {
		return err
	}
	*buf = b
	c.out = c.out[:0]
	_, err = w.Write(b)
	return err
}

// copyIn handles a client's COPY data for a COPY FROM that moves policy
// columns. It runs on the client goroutine.
func (s *session) copyIn(typ byte, frame []byte, up proxy.Writer) error {
	c := s.cin
	switch typ {
	case 'd':
		if c.failed {
			return nil
		}
		err := c.pump(frame[5:], false, s.encryptCopyField(c))

		if err != nil {
			return s.failCopyIn(up, err)
		}
		return c.flushTo(up, &s.cbuf)
	case 'c':
		s.cin = nil
		if c.failed {
			return nil
		}
		if err := c.pump(nil, true, s.encryptCopyField(c)); err != nil {
			return s.failCopyIn(up, err)
		}
		if err := c.flushTo(up, &s.cbuf); err != nil {
			return err
		}
	case 'f':
		s.cin = nil
		if c.failed {
			return nil
		}
	}
	_, err := up.Write(frame)
	return err
}

// encryptCopyField returns the conversion of one incoming policy field.
func (s *session) encryptCopyField(c *copyStream) convFunc {
	if c.conv != nil {
		return c.conv
	}
	snap := s.snapshot()
	format := c.valueFormat()
	var canon, ct []byte // scratch, reused for every value
	c.conv = func(dst []byte, line int64, col *policy.Column, v []byte) ([]byte, error) {
		var err error
		canon, err = s.codec().Canonical(canon[:0], col.Type, format, v)
		if err != nil {
			code := codec.SQLState(err)
			if code == "" {
				code = proxy.CodeInvalidTextRepr
			}
			return dst, proxy.Errorf(code, "pgseal: COPY line %d, column %s: not a valid %s", line, col.Name, col.Type)
		}
		cipher, err := snap.Ciphers.Column(col)
		if err == nil {
			ct, err = cipher.Seal(ct[:0], canon)
		}
		if err != nil {
			return dst, proxy.Errorf(proxy.CodeInternalError, "pgseal: failed to encrypt a value for %s", col)
		}
		s.dp.obs.Encrypted(1)
		if format == codec.BinaryFormat {
			return append(dst, ct...), nil
		}
		dst = append(dst, '\\', 'x')
		return hex.AppendEncode(dst, ct), nil
	}
	return c.conv
}

// failCopyIn aborts a COPY FROM: the server is sent CopyFail, and the error
// it answers with is replaced by err. The rest of the client's data is
// dropped: it must not reach the server.
func (s *session) failCopyIn(up proxy.Writer, err error) error {
	pe := copyError(err)
	s.cin.failed = true
	s.mu.Lock()
	s.copyErr = pe
	s.mu.Unlock()
	return s.writeMsg(up, &pgproto3.CopyFail{Message: "pgseal: " + pe.Message})
}

func copyError(err error) *proxy.Error {
	var pe *proxy.Error
	if errors.As(err, &pe) {
		return pe
	}
	var ce *copyfmt.Error
	if errors.As(err, &ce) {
		return proxy.Errorf(ce.SQLState(), "pgseal: %s", ce.Error())
	}
	return proxy.Errorf(proxy.CodeInternalError, "pgseal: COPY failed")
}

// copyOut handles the server's COPY data for a COPY TO that moves policy
// columns. It runs on the server goroutine.
func (s *session) copyOut(typ byte, frame []byte, down proxy.Writer) error {
	c := s.cout
	switch typ {
	case 'd':
		if c.failed {
			return nil
		}
		if err := c.pump(frame[5:], false, s.decryptCopyField(c)); err != nil {
			return s.failCopyOut(down, err)
		}
		return c.flushTo(down, &s.sbuf)
	case 'c':
		if c.failed {
			return nil
		}
		if err := c.pump(nil, true, s.decryptCopyField(c)); err != nil {
			return s.failCopyOut(down, err)
		}
		if err := c.flushTo(down, &s.sbuf); err != nil {
			return err
		}
	}
	_, err := down.Write(frame)
	return err
}

// decryptCopyField returns the conversion of one outgoing policy field.
func (s *session) decryptCopyField(c *copyStream) convFunc {
	if c.conv != nil {
		return c.conv
	}
	format := c.valueFormat()
	c.conv = func(dst []byte, line int64, col *policy.Column, v []byte) ([]byte, error) {
		out, err := s.decryptValue(dst, field{col: col, format: format}, v)
		if errors.Is(err, errClientEncoding) {
			return dst, proxy.Errorf("22021", "pgseal: encrypted column %s (%s) needs client_encoding UTF8", col, col.Type)
		}
		if err != nil {
			s.dp.obs.DecryptFailed(col.String())
			return dst, proxy.Errorf("XX001", "pgseal: a value of %s could not be decrypted", col)
		}
		s.dp.obs.Decrypted(1)
		return out, nil
	}
	return c.conv
}

// failCopyOut ends a COPY TO with an error; the rest of its data and its
// CommandComplete are dropped.
func (s *session) failCopyOut(down proxy.Writer, err error) error {
	s.cout.failed = true
	return s.writeServerMsg(down, errorResponse(copyError(err)))
}
