package datapath

import (
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
)

// clientBind encrypts the parameters bound for policy columns and, for
// statements that touch policy tables, describes the portal so the layout
// of its rows is known whatever the client asks.
func (s *session) clientBind(frame []byte, up proxy.Writer) error {
	b := &s.bind
	if err := b.Decode(frame[5:]); err != nil {
		return proxy.Errorf(proxy.CodeProtocolViolation, "invalid Bind message")
	}
	s.mu.Lock()
	st := s.stmts[b.PreparedStatement]
	var p *portal
	switch {
	case st != nil && st.an.Touches:
		p = &portal{stmt: st} // described below
		s.portals[b.DestinationPortal] = p
	case st != nil && st.fields != nil:
		// A statement the analysis did not follow (FETCH from a cursor
		// over a policy table, say) whose description showed policy
		// columns: its rows carry ciphertext in the formats Bind asks.
		p = &portal{stmt: st, fields: withFormats(st.fields, b.ResultFormatCodes)}
		s.portals[b.DestinationPortal] = p
	default:
		// Known too, so that a Describe of the portal (its rows may
		// still come from policy columns, as in FETCH) records its
		// layout.
		s.portals[b.DestinationPortal] = &portal{stmt: st}
	}
	s.mu.Unlock()
	if st != nil && st.an.Refusal != nil {
		s.push(expect{kind: expBind, refusal: st.an.Refusal})
		_, err := up.Write(frame)
		return err
	}
	if st == nil || !st.an.Touches {
		s.push(expect{kind: expBind})
		_, err := up.Write(frame)
		return err
	}
	if err := s.encryptParams(b, st); err != nil {
		s.push(expect{kind: expBind, refusal: err})
		return s.writeMsg(up, &pgproto3.Bind{DestinationPortal: b.DestinationPortal, PreparedStatement: poisonStatement})
	}
	s.push(expect{kind: expBind})
	if err := s.writeMsg(up, b); err != nil {
		return err
	}
	s.push(expect{kind: expInjectedDescribe, portal: p})
	return s.writeMsg(up, &pgproto3.Describe{ObjectType: 'P', Name: b.DestinationPortal})
}

// encryptParams replaces each parameter bound for a policy column with its
// ciphertext, sent in binary format as bytea.
func (s *session) encryptParams(b *pgproto3.Bind, st *stmt) *proxy.Error {
	if !hasColumn(st.params) {
		return nil
	}
	snap := s.snapshot()
	formats := make([]int16, len(b.Parameters))
	for i := range formats {
		formats[i] = paramFormat(b.ParameterFormatCodes, i)
	}
	// seal reports each value to the observer.
	for i, col := range st.params {
		if col == nil || i >= len(b.Parameters) || b.Parameters[i] == nil {
			continue
		}
		v := b.Parameters[i]
		if i < len(st.an.ParamElements) && st.an.ParamElements[i] {
			arr, err := s.encryptElements(snap, col, formats[i], v)
			if err != nil {
				return err
			}
			b.Parameters[i] = arr
			formats[i] = codec.BinaryFormat
			continue
		}
		if formats[i] == codec.BinaryFormat && i < len(st.declared) {
			// Binary values are in the type the client declared (a
			// Python int as int2, a Java long as int8): read them as that
			// type and take its text form, as PostgreSQL would cast.
			if t, ok := typeForOID(st.declared[i]); ok && t != col.Type {
				canon, err := s.codec().Canonical(nil, t, codec.BinaryFormat, v)
				if err == nil {
					v, err = s.codec().Encode(nil, t, codec.TextFormat, canon)
				}
				if err != nil {
					return proxy.Errorf(proxy.CodeInvalidBinaryRepr, "pgseal: parameter $%d is not a valid %s", i+1, t)
				}
				formats[i] = codec.TextFormat
			}
		}
		canon, err := s.codec().Canonical(nil, col.Type, formats[i], v)
		if err != nil {
			code := codec.SQLState(err)
			if code == "" {
				code = proxy.CodeInvalidTextRepr
			}
			return proxy.Errorf(code, "pgseal: parameter $%d is not a valid %s for %s", i+1, col.Type, col)
		}
		all := i < len(st.an.ParamArrays) && st.an.ParamArrays[i]
		cts, err := s.seal(snap, col, canon, all)
		if err != nil {
			return proxy.Errorf(proxy.CodeInternalError, "pgseal: failed to encrypt a value for %s", col)
		}
		if all {
			arr, err := s.byteaArray(cts)
			if err != nil {
				return proxy.Errorf(proxy.CodeInternalError, "pgseal: failed to encode a lookup for %s", col)
			}
			b.Parameters[i] = arr
		} else {
			b.Parameters[i] = cts[0]
		}
		formats[i] = codec.BinaryFormat
	}
	b.ParameterFormatCodes = formats
	return nil
}

// seal encrypts canonical plaintext for col: under the primary version, or
// under every active version (primary first) when all is set.
func (s *session) seal(snap *Snapshot, col *policy.Column, canon []byte, all bool) ([][]byte, error) {
	c, err := snap.Ciphers.Column(col)
	if err != nil {
		return nil, err
	}
	if !all {
		ct, err := c.Seal(nil, canon)
		if err != nil {
			return nil, err
		}
		s.dp.obs.Encrypted(1)
		return [][]byte{ct}, nil
	}
	vs := c.Versions()
	out := make([][]byte, 0, len(vs))
	for _, v := range vs {
		ct, err := c.SealWith(nil, canon, v)
		if err != nil {
			return nil, err
		}
		out = append(out, ct)
	}
	s.dp.obs.Encrypted(len(out))
	return out, nil
}

// byteaArray encodes ciphertexts as a one-dimensional bytea[] in binary
// format. Client goroutine only: the type map is not safe for concurrent
// use.
func (s *session) byteaArray(cts [][]byte) ([]byte, error) {
	if s.tmap == nil {
		s.tmap = pgtype.NewMap()
	}
	return s.tmap.Encode(pgtype.ByteaArrayOID, pgtype.BinaryFormatCode, cts, nil)
}

// encryptElements turns an array parameter of values into a bytea array
// of their ciphertexts under every active key version.
func (s *session) encryptElements(snap *Snapshot, col *policy.Column, format int16, v []byte) ([]byte, *proxy.Error) {
	elems, et, ef, err := s.arrayElements(col.Type, format, v)
	if err != nil {
		return nil, proxy.Errorf(proxy.CodeInvalidTextRepr, "pgseal: the array parameter for %s is not a valid array", col)
	}
	var cts [][]byte
	for _, e := range elems {
		if et != col.Type {
			canon, err := s.codec().Canonical(nil, et, ef, e)
			if err == nil {
				e, err = s.codec().Encode(nil, et, codec.TextFormat, canon)
			}
			if err != nil {
				return nil, proxy.Errorf(proxy.CodeInvalidBinaryRepr, "pgseal: an element of the array for %s is not a valid %s", col, et)
			}
			ef = codec.TextFormat
		}
		canon, err := s.codec().Canonical(nil, col.Type, ef, e)
		if err != nil {
			return nil, proxy.Errorf(proxy.CodeInvalidTextRepr, "pgseal: an element of the array for %s is not a valid %s", col, col.Type)
		}
		all, err := s.seal(snap, col, canon, true)
		if err != nil {
			return nil, proxy.Errorf(proxy.CodeInternalError, "pgseal: failed to encrypt a value for %s", col)
		}
		cts = append(cts, all...)
	}
	if cts == nil {
		cts = [][]byte{}
	}
	arr, err := s.byteaArray(cts)
	if err != nil {
		return nil, proxy.Errorf(proxy.CodeInternalError, "pgseal: failed to encode a lookup for %s", col)
	}
	return arr, nil
}

// withFormats returns a copy of fields with the result formats a Bind asked
// for (none: all text; one: for all; else one per column).
func withFormats(fields []field, codes []int16) []field {
	out := make([]field, len(fields))
	for i, f := range fields {
		f.format = paramFormat(codes, i)
		out[i] = f
	}
	return out
}

// typeForOID maps a type OID a client declared to a declared type.
func typeForOID(oid uint32) (codec.Type, bool) {
	if oid == 0 {
		return codec.Invalid, false
	}
	for t := codec.Text; t <= codec.Bytea; t++ {
		if t.OID() == oid {
			return t, true
		}
	}
	return codec.Invalid, false
}

// paramFormat returns the format code of parameter i: no codes mean all
// text, one code applies to all.
func paramFormat(codes []int16, i int) int16 {
	switch len(codes) {
	case 0:
		return codec.TextFormat
	case 1:
		return codes[0]
	}
	if i < len(codes) {
		return codes[i]
	}
	return codec.TextFormat
}
