package datapath

import (
	"encoding/hex"
	"errors"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
)

// errUndecryptable is reported, opaquely, when a stored value does not open.
var errUndecryptable = errors.New("value could not be decrypted")

// errClientEncoding is reported when a text value would go to a client whose
// encoding is not UTF-8.
var errClientEncoding = errors.New("client encoding is not UTF-8")

// Server implements proxy.SessionFilter: it handles one server message in
// the context of the client message that caused it.
func (s *session) Server(typ byte, frame []byte, down proxy.Writer) error {
	switch typ {
	case 'S':
		s.trackParameter(frame)
		_, err := down.Write(frame)
		return err
	case 'd', 'c':
		if s.cout != nil {
			return s.copyOut(typ, frame, down)
		}
		_, err := down.Write(frame)
		return err
	case 'H':
		s.startCopyOut()
		_, err := down.Write(frame)
		return err
	case 'N', 'A', 'G', 'W':
		// Asynchronous messages and COPY data: through unchanged.
		_, err := down.Write(frame)
		return err
	}
	s.mu.Lock()
	var head *expect
	if len(s.queue) > 0 {
		head = &s.queue[0]
	}
	s.mu.Unlock()
	if head == nil {
		_, err := down.Write(frame)
		return err
	}
	switch typ {
	case '1', '2', '3', 'V': // ParseComplete, BindComplete, CloseComplete, FunctionCallResponse
		swallow := head.kind == expInjectedDescribe
		s.pop()
		if swallow {
			return nil
		}
	case 't':
		return s.paramDescription(head, frame, down)
	case 'T':
		return s.rowDescription(head, frame, down)
	case 'n': // NoData
		kind := head.kind
		if kind == expDescribeStmt || kind == expDescribePortal || kind == expInjectedDescribe {
			s.pop()
		}
		if kind == expInjectedDescribe {
			return nil
		}
	case 'D':
		return s.dataRow(head, frame, down)
	case 'C', 'I', 's':
		return s.resultEnd(head, typ, frame, down)
	case 'E':
		return s.errorResponse(head, frame, down)
	case 'Z':
		var rfq pgproto3.ReadyForQuery
		rfq.Decode(frame[5:])
		s.mu.Lock()
		s.txStatus = rfq.TxStatus
		if len(s.queue) > 0 {
			s.queue = s.queue[1:]
		}
		if len(s.queue) == 0 {
			s.queue = nil
		}
		s.mu.Unlock()
		if head.kind == expCatalog {
			s.finishCatalog(head.query)
			return nil
		}
	}
	_, err := down.Write(frame)
	return err
}

// startCopyOut sets up the stream of a COPY TO that moves policy columns.
func (s *session) startCopyOut() {
	s.mu.Lock()
	var head *expect
	if len(s.queue) > 0 {
		head = &s.queue[0]
	}
	s.mu.Unlock()
	if head == nil {
		return
	}
	var p *copyPlan
	switch {
	case head.kind == expQuery && head.query.index < len(head.query.copies):
		p = head.query.copies[head.query.index]
	case head.kind == expExecute && head.portal != nil && head.portal.stmt != nil:
		p = head.portal.stmt.copy
	}
	if p == nil || p.from {
		return
	}
	cs, err := newCopyStream(p)
	if err == nil {
		s.cout = cs
	}
}

func (s *session) pop() {
	s.mu.Lock()
	if len(s.queue) > 0 {
		s.queue = s.queue[1:]
	}
	s.mu.Unlock()
}

// paramDescription shows the declared types of policy parameters.
func (s *session) paramDescription(head *expect, frame []byte, down proxy.Writer) error {
	if head.kind != expDescribeStmt || head.stmt == nil || !hasColumn(head.stmt.params) {
		_, err := down.Write(frame)
		return err
	}
	var pd pgproto3.ParameterDescription
	if err := pd.Decode(frame[5:]); err != nil {
		return err
	}
	for i, col := range head.stmt.params {
		if col == nil || i >= len(pd.ParameterOIDs) {
			continue
		}
		// As PostgreSQL does, a type the client declared stands; else the
		// column's declared type.
		pd.ParameterOIDs[i] = col.Type.OID()
		if i < len(head.stmt.an.ParamElements) && head.stmt.an.ParamElements[i] {
			pd.ParameterOIDs[i] = arrayOIDs[col.Type]
		}
		if i < len(head.stmt.declared) && head.stmt.declared[i] != 0 {
			pd.ParameterOIDs[i] = head.stmt.declared[i]
		}
	}
	return s.writeServerMsg(down, &pd)
}

// rowDescription records the layout of a result and shows policy columns
// with their declared types.
func (s *session) rowDescription(head *expect, frame []byte, down proxy.Writer) error {
	var rd pgproto3.RowDescription
	if err := rd.Decode(frame[5:]); err != nil {
		return err
	}
	cd := s.cat.data.Load()
	var lineage []Lineage
	if head.kind == expQuery && head.query.an != nil && head.query.index < len(head.query.an.Results) {
		lineage = head.query.an.Results[head.query.index]
	} else if head.stmt != nil && len(head.stmt.an.Results) > 0 {
		lineage = head.stmt.an.Results[0]
	} else if head.portal != nil && head.portal.stmt != nil && len(head.portal.stmt.an.Results) > 0 {
		lineage = head.portal.stmt.an.Results[0]
	}
	var fields []field
	for i := range rd.Fields {
		f := &rd.Fields[i]
		col := cd.lookup(f.TableOID, int16(f.TableAttributeNumber))
		var alts []*policy.Column
		if i < len(lineage) && lineage[i].Column != nil {
			if col == nil {
				col = lineage[i].Column
			}
			// PostgreSQL may name the first branch's table for a UNION
			// ALL: the other branches' columns are alternatives.
			for _, c := range append([]*policy.Column{lineage[i].Column}, lineage[i].Alternatives...) {
				if c != col {
					alts = append(alts, c)
				}
			}
		}
		if col == nil {
			continue
		}
		if fields == nil {
			fields = make([]field, len(rd.Fields))
		}
		fields[i] = field{col: col, alts: alts, format: f.Format}
		f.DataTypeOID = col.Type.OID()
		f.DataTypeSize = typeSize(col.Type)
		f.TypeModifier = -1
	}
	switch head.kind {
	case expQuery, expCatalog:
		head.query.fields = fields
		if head.query.swallow {
			return nil
		}
	case expDescribeStmt:
		if head.stmt != nil {
			head.stmt.fields = fields
		}
		s.pop()
	case expDescribePortal, expInjectedDescribe:
		if head.portal != nil {
			head.portal.fields = fields
		}
		s.pop()
		if head.kind == expInjectedDescribe {
			return nil
		}
	}
	if fields == nil {
		_, err := down.Write(frame)
		return err
	}
	return s.writeServerMsg(down, &rd)
}

// dataRow decrypts the policy columns of a row.
func (s *session) dataRow(head *expect, frame []byte, down proxy.Writer) error {
	var fields []field
	switch head.kind {
	case expQuery, expCatalog:
		q := head.query
		if q.swallow {
			var dr pgproto3.DataRow
			if err := dr.Decode(frame[5:]); err != nil {
				return err
			}
			row := make([]string, len(dr.Values))
			for i, v := range dr.Values {
				row[i] = string(v)
			}
			q.catalog = append(q.catalog, row)
			return nil
		}
		if q.failed {
			return nil
		}
		fields = q.fields
	case expExecute:
		if head.portal != nil {
			fields = head.portal.fields
		}
	case expFailedExecute:
		return nil
	}
	if fields == nil {
		_, err := down.Write(frame)
		return err
	}
	row := &s.row
	if err := row.Decode(frame[5:]); err != nil {
		return err
	}
	out := s.vbuf[:0]
	spans := s.rowSpans[:0] // where each decrypted value lies in out; -1: unchanged
	n := 0
	for i, v := range row.Values {
		if i >= len(fields) || fields[i].col == nil || v == nil {
			spans = append(spans, [2]int{-1, -1})
			continue
		}
		start := len(out)
		var err error
		out, err = s.decryptValue(out, fields[i], v)
		if err != nil {
			if !errors.Is(err, errClientEncoding) {
				s.dp.obs.DecryptFailed(fields[i].col.String())
			}
			return s.failResult(head, fields[i].col, down, err)
		}
		spans = append(spans, [2]int{start, len(out)})
		n++
	}
	// Point the row at the decrypted values only now: out may have moved
	// while growing.
	for i, sp := range spans {
		if sp[0] >= 0 {
			row.Values[i] = out[sp[0]:sp[1]]
		}
	}
	s.vbuf, s.rowSpans = out, spans
	s.dp.obs.Decrypted(n)
	return s.writeServerMsg(down, row)
}

// decryptValue appends the client's representation of one stored value.
func (s *session) decryptValue(dst []byte, f field, v []byte) ([]byte, error) {
	if textual(f.col.Type) && s.nonUTF8.Load() {
		return dst, errClientEncoding
	}
	ct := v
	if f.format == codec.TextFormat {
		if len(v) < 2 || v[0] != '\\' || v[1] != 'x' {
			return dst, errUndecryptable
		}
		var err error
		if s.hexbuf, err = hex.AppendDecode(s.hexbuf[:0], v[2:]); err != nil {
			return dst, errUndecryptable
		}
		ct = s.hexbuf
	}
	ciphers := s.snapshot().Ciphers
	// Try the column, then its alternatives (UNION ALL over columns).
	for i := -1; i < len(f.alts); i++ {
		col := f.col
		if i >= 0 {
			col = f.alts[i]
		}
		c, err := ciphers.Column(col)
		if err != nil {
			return dst, err
		}
		s.plainbuf, err = c.Open(s.plainbuf[:0], ct)
		if err != nil {
			// A version this replica has not loaded yet: reload once.
			if nc := refreshed(ciphers, col, c, ct); nc != nil {
				s.plainbuf, err = nc.Open(s.plainbuf[:0], ct)
			}
		}
		if err == nil {
			return s.codec().Encode(dst, col.Type, f.format, s.plainbuf)
		}
	}
	return dst, envelope.ErrDecrypt
}

// failResult replaces the rest of a result with an error when a value does
// not decrypt. The error says which column, never why.
func (s *session) failResult(head *expect, col *policy.Column, down proxy.Writer, cause error) error {
	e := proxy.Errorf("XX001", "pgseal: a value of %s could not be decrypted", col)
	if errors.Is(cause, errClientEncoding) {
		e = proxy.Errorf("22021", "pgseal: encrypted column %s (%s) needs client_encoding UTF8", col, col.Type)
		e.Hint = "SET client_encoding TO 'UTF8'"
	}
	switch head.kind {
	case expQuery:
		head.query.failed = true
	case expExecute:
		if head.portal != nil {
			head.portal.fields = nil
		}
		// Swallow the rest of this result: mark the expectation failed.
		head.kind = expFailedExecute
	}
	return s.writeServerMsg(down, errorResponse(e))
}

// resultEnd handles CommandComplete, EmptyQueryResponse and PortalSuspended.
func (s *session) resultEnd(head *expect, typ byte, frame []byte, down proxy.Writer) error {
	if s.cout != nil {
		failed := s.cout.failed
		s.cout = nil
		if failed && typ == 'C' {
			if head.kind == expExecute {
				s.pop()
			} else if head.kind == expQuery {
				head.query.index++
			}
			return nil
		}
	}
	if typ == 'C' {
		var cc pgproto3.CommandComplete
		if cc.Decode(frame[5:]) == nil && ddlTag(cc.CommandTag) {
			s.cat.stale.Store(true)
		}
	}
	switch head.kind {
	case expQuery, expCatalog:
		q := head.query
		q.index++
		q.fields = nil
		wasFailed := q.failed
		q.failed = false
		if q.swallow || wasFailed {
			return nil
		}
	case expExecute:
		s.pop()
	case expFailedExecute:
		s.pop()
		return nil
	}
	_, err := down.Write(frame)
	return err
}

// errorResponse replaces the server's error for a refused message, and
// drops the responses the server will now skip (up to Sync).
func (s *session) errorResponse(head *expect, frame []byte, down proxy.Writer) error {
	refusal := head.refusal
	s.cout = nil
	s.mu.Lock()
	if s.copyErr != nil {
		refusal, s.copyErr = s.copyErr, nil
	}
	switch head.kind {
	case expQuery, expCatalog:
		// The rest of the query is skipped; ReadyForQuery ends it.
	default:
		// The server now skips every message up to the client's next
		// Sync: drop what was expected for them, and for those still to
		// come (enqueueLocked) if the Sync has not been sent yet.
		i := 0
		for i < len(s.queue) && s.queue[i].kind != expSync {
			i++
		}
		s.queue = s.queue[i:]
		s.skipping = len(s.queue) == 0
	}
	s.mu.Unlock()
	if head.kind == expCatalog {
		// The catalog could not be read (the role may lack rights on
		// pg_catalog views): proceed with what RowDescription says.
		head.query.swallow = true
		return nil
	}
	if refusal != nil {
		s.dp.obs.Refused("", "", refusal.Message)
		return s.writeServerMsg(down, errorResponse(refusal))
	}
	_, err := down.Write(frame)
	return err
}

// finishCatalog installs the catalog an injected query read.
func (s *session) finishCatalog(q *queryState) {
	snap := s.snapshot()
	var tables [][]string
	for _, r := range q.catalog {
		switch {
		case len(r) == 5, len(r) == 4 && r[0] == "v":
			tables = append(tables, r)
		case len(r) == 2 && r[0] == "p":
			s.setSearchPath(r[1])
		}
	}
	if q.relations {
		s.cat.data.Store(buildCatalog(snap.Policy, tables))
	}
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}

func (s *session) writeServerMsg(w proxy.Writer, msg pgproto3.Message) error {
	b, err := msg.Encode(s.sbuf[:0])
	if err != nil {
		return err
	}
	s.sbuf = b
	_, err = w.Write(b)
	return err
}

func errorResponse(e *proxy.Error) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: e.Code, Message: e.Message, Detail: e.Detail, Hint: e.Hint}
}

func hasColumn(cols []*policy.Column) bool {
	for _, c := range cols {
		if c != nil {
			return true
		}
	}
	return false
}

// typeSize is pg_type.typlen of a declared type.
func typeSize(t codec.Type) int16 {
	switch t {
	case codec.Bool:
		return 1
	case codec.Int2:
		return 2
	case codec.Int4, codec.Float4, codec.Date:
		return 4
	case codec.Int8, codec.Float8, codec.Timestamp, codec.Timestamptz:
		return 8
	case codec.UUID:
		return 16
	}
	return -1
}
