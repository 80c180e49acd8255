package datapath

import (
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/codec"
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
	if st != nil && st.an.Touches {
		p = &portal{stmt: st}
		s.portals[b.DestinationPortal] = p
	} else {
		delete(s.portals, b.DestinationPortal)
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
	n := 0
	for i, col := range st.params {
		if col == nil || i >= len(b.Parameters) || b.Parameters[i] == nil {
			continue
		}
		canon, err := s.codec().Canonical(nil, col.Type, formats[i], b.Parameters[i])
		if err != nil {
			code := codec.SQLState(err)
			if code == "" {
				code = proxy.CodeInvalidTextRepr
			}
			return proxy.Errorf(code, "pgseal: parameter $%d is not a valid %s for %s", i+1, col.Type, col)
		}
		c, err := snap.Ciphers.Column(col)
		if err != nil {
			return proxy.Errorf(proxy.CodeInternalError, "pgseal: no key for %s", col)
		}
		ct, err := c.Seal(nil, canon)
		if err != nil {
			return proxy.Errorf(proxy.CodeInternalError, "pgseal: failed to encrypt %s", col)
		}
		b.Parameters[i] = ct
		formats[i] = codec.BinaryFormat
		n++
	}
	b.ParameterFormatCodes = formats
	s.dp.obs.Encrypted(n)
	return nil
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
