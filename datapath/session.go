package datapath

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgseal/pgseal/codec"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
)

// poisonSQL fails at parse analysis in every PostgreSQL: no role can create a
// relation of that name in pg_catalog. pgseal sends it in place of a refused
// statement so that the server's transaction and pipeline state follow the
// failure, and replaces the server's error with the refusal.
const poisonSQL = `SELECT FROM pg_catalog."pgseal: statement refused"`

// catalogWait bounds the wait for the first catalog load of a session.
const catalogWait = 30 * time.Second

// poisonStatement names no prepared statement; a Bind to it fails.
const poisonStatement = "pgseal\x01refused"

// expectKind says which message a pending server response answers.
type expectKind uint8

const (
	expParse expectKind = iota + 1
	expBind
	expDescribeStmt
	expDescribePortal
	expExecute
	expClose
	expSync
	expQuery
	expFunctionCall
	expCatalog // injected catalog and search_path query, swallowed whole
	expInjectedDescribe
	expFailedExecute // an Execute whose rows failed to decrypt: the rest is swallowed
)

// expect is one response the session waits for from the server.
type expect struct {
	kind    expectKind
	refusal *proxy.Error // replaces the server's error for this message
	stmt    *stmt
	portal  *portal
	query   *queryState
}

// stmt is a prepared statement as the data path knows it.
type stmt struct {
	an       *Analysis
	declared []uint32         // parameter types the client declared in Parse
	copy     *copyPlan        // a COPY that moves policy columns
	params   []*policy.Column // by parameter index
	fields   []field          // from Describe of the statement (formats unknown)
}

// portal is a bound portal.
type portal struct {
	stmt   *stmt
	fields []field // layout of the rows Execute returns; nil: pass rows through
}

// field is one result column as the data path handles it.
type field struct {
	col    *policy.Column   // nil: not encrypted
	alts   []*policy.Column // other columns a value may come from (UNION ALL)
	format int16            // format the server sends and the client asked for
}

// queryState follows a simple Query through its statements.
type queryState struct {
	an        *Analysis
	index     int     // statement being answered
	fields    []field // layout of the current result
	failed    bool
	copies    []*copyPlan // per statement: COPY TO plans
	catalog   [][]string  // rows of an injected catalog query
	relations bool        // the injected query read the relations
	swallow   bool
}

// session is the data-path filter of one proxy session.
type session struct {
	dp   *DataPath
	info proxy.SessionInfo
	cat  *catalog
	csp  atomic.Pointer[codec.Session]
	// nonUTF8 is set while client_encoding is not UTF-8: pgseal holds text
	// values as UTF-8 and does not convert them, so it refuses to hand
	// them out rather than return bytes the client would misread.
	nonUTF8 atomic.Bool

	// Guarded by mu: shared by the client and server goroutines.
	mu         sync.Mutex
	queue      []expect
	stmts      map[string]*stmt
	portals    map[string]*portal
	sqlPrep    map[string]any // SQL-level PREPARE, as the analyzer described it
	skipping   bool           // the server skips the client's messages until Sync
	pathStale  bool           // re-read search_path at the next idle point
	searchPath []string
	txStatus   byte
	ready      chan struct{}     // closed once the first catalog load is in
	params     map[string]string // server parameters (TimeZone, DateStyle)
	started    bool

	copyErr *proxy.Error // replaces the server's error for a COPY FROM pgseal aborted

	// Client goroutine only.
	cin   *copyStream // the COPY FROM in progress, if it moves policy columns
	tmap  *pgtype.Map
	cbuf  []byte
	bind  pgproto3.Bind
	parse pgproto3.Parse
	// Server goroutine only.
	cout     *copyStream // the COPY TO in progress, if it moves policy columns
	hexbuf   []byte      // scratch for decoding bytea text output
	rowSpans [][2]int    // scratch for dataRow
	plainbuf []byte      // scratch for decrypted canonical values
	sbuf     []byte
	row      pgproto3.DataRow
	vbuf     []byte
}

func newSession(d *DataPath, info proxy.SessionInfo) *session {
	s := &session{
		dp:       d,
		info:     info,
		cat:      d.catalogFor(info.Database),
		params:   info.Server,
		stmts:    make(map[string]*stmt),
		portals:  make(map[string]*portal),
		sqlPrep:  make(map[string]any),
		txStatus: 'I',
		ready:    make(chan struct{}),
		// PostgreSQL's default until the server tells the real one.
		searchPath: []string{info.User, "public"},
	}
	s.csp.Store(codecSession(info.Server))
	s.nonUTF8.Store(!utf8Encoding(info.Server["client_encoding"]))
	return s
}

// codec returns the value codec settings in force.
func (s *session) codec() *codec.Session { return s.csp.Load() }

// Close implements proxy.SessionFilter.
func (s *session) Close() {}

func (s *session) push(e expect) {
	s.mu.Lock()
	s.enqueueLocked(e)
	s.mu.Unlock()
}

// enqueueLocked adds an expectation, unless the server is skipping messages
// until Sync after an error: then only the Sync gets an answer.
func (s *session) enqueueLocked(e expect) {
	if s.skipping {
		if e.kind != expSync {
			return
		}
		s.skipping = false
	}
	s.queue = append(s.queue, e)
}

// Client implements proxy.SessionFilter: it handles one client message.
func (s *session) Client(typ byte, frame []byte, up proxy.Writer) error {
	if !s.started {
		// Before the first statement: learn the catalog and the
		// search_path, and wait for them, so the first statement is
		// analysed with both. Nothing else is in flight at this point.
		s.started = true
		if err := s.injectCatalog(up); err != nil {
			return err
		}
		if f, ok := up.(interface{ Flush() error }); ok {
			if err := f.Flush(); err != nil {
				return err
			}
		}
		select {
		case <-s.ready:
		case <-time.After(catalogWait):
			return proxy.Errorf(proxy.CodeConnectionFailure, "pgseal: the database did not answer the catalog query")
		}
	} else if (s.cat.stale.Load() && s.txIdle() || s.pathStale) && s.idle() {
		if err := s.injectCatalog(up); err != nil {
			return err
		}
	}
	if s.cin != nil {
		switch typ {
		case 'd', 'c', 'f':
			return s.copyIn(typ, frame, up)
		case 'H', 'S':
		default:
			// Anything else means the COPY never started (its statement
			// failed): the stream is over.
			s.cin = nil
		}
	}
	switch typ {
	case 'Q':
		return s.clientQuery(frame, up)
	case 'P':
		return s.clientParse(frame, up)
	case 'B':
		return s.clientBind(frame, up)
	case 'D':
		return s.clientDescribe(frame, up)
	case 'E':
		return s.clientExecute(frame, up)
	case 'C':
		return s.clientClose(frame, up)
	case 'S':
		s.push(expect{kind: expSync})
	case 'F':
		s.push(expect{kind: expFunctionCall})
	}
	_, err := up.Write(frame)
	return err
}

// idle reports whether no response is outstanding and no transaction has
// failed, so an injected query can neither interleave nor fail.
func (s *session) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue) == 0 && s.txStatus != 'E' && !s.skipping
}

// txIdle reports whether the session is outside a transaction block.
func (s *session) txIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txStatus == 'I'
}

// injectCatalog sends the search_path query, followed by the relations and
// views queries when the database's catalog is stale or not loaded yet and
// the session is outside a transaction block (the views query sets a
// transaction-local search_path).
func (s *session) injectCatalog(up proxy.Writer) error {
	q := &queryState{swallow: true}
	s.pathStale = false
	text := searchPathQuery
	s.mu.Lock()
	outside := s.txStatus == 'I'
	s.mu.Unlock()
	if outside && (s.cat.stale.Swap(false) || s.cat.data.Load() == nil) {
		q.relations = true
		text += relationsQuery + viewsQuery
	}
	s.push(expect{kind: expCatalog, query: q})
	b, err := (&pgproto3.Query{String: text}).Encode(s.cbuf[:0])
	if err != nil {
		return err
	}
	s.cbuf = b
	_, err = up.Write(b)
	return err
}

func (s *session) snapshot() *Snapshot { return s.dp.Snapshot() }

// encrypter returns the function that encrypts literals.
func (s *session) encrypter(snap *Snapshot) Encrypter {
	return func(col *policy.Column, text string, all bool) ([][]byte, error) {
		canon, err := s.codec().Canonical(nil, col.Type, codec.TextFormat, []byte(text))
		if err != nil {
			return nil, err
		}
		return s.seal(snap, col, canon, all)
	}
}

func (s *session) analyze(sql string) Analysis {
	snap := s.snapshot()
	s.mu.Lock()
	path := s.searchPath
	s.mu.Unlock()
	prepared := func(name string) (any, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		st, ok := s.sqlPrep[name]
		return st, ok
	}
	an := s.cat.data.Load().analyzerFor(snap).Analyze(sql, path, prepared, s.encrypter(snap))
	if an.Refusal != nil {
		s.dp.obs.Statement("query", "refused")
	} else if an.Passthrough {
		s.dp.obs.Statement("query", "passed")
	} else {
		s.dp.obs.Statement("query", "rewritten")
	}
	if an.SearchPathChanged {
		s.mu.Lock()
		if an.SearchPath != nil {
			s.searchPath = an.SearchPath
		}
		s.mu.Unlock()
		// Read the effective path back from the server at the next idle
		// point ("$user", RESET and failed SETs included).
		s.pathStale = true
	}
	if an.Prepares != nil || an.Deallocates != nil || an.DeallocateAll {
		// Remembered optimistically: a PREPARE that fails leaves an entry
		// no EXECUTE can use, since the server knows no such statement.
		s.mu.Lock()
		if an.DeallocateAll {
			clear(s.sqlPrep)
		}
		for _, n := range an.Deallocates {
			delete(s.sqlPrep, n)
		}
		for n, st := range an.Prepares {
			s.sqlPrep[n] = st
		}
		s.mu.Unlock()
	}
	return an
}

func (s *session) clientQuery(frame []byte, up proxy.Writer) error {
	var q pgproto3.Query
	if err := q.Decode(frame[5:]); err != nil {
		return proxy.Errorf(proxy.CodeProtocolViolation, "invalid Query message")
	}
	an := s.analyze(q.String)
	qs := &queryState{an: &an}
	if an.Refusal == nil {
		if err := s.planQueryCopies(&an, qs); err != nil {
			an = Analysis{Refusal: err}
		}
	}
	e := expect{kind: expQuery, query: qs}
	text := an.SQL
	switch {
	case an.Refusal != nil:
		e.refusal = an.Refusal
		text = poisonSQL
	case an.Passthrough:
		s.push(e)
		_, err := up.Write(frame)
		return err
	}
	s.push(e)
	return s.writeMsg(up, &pgproto3.Query{String: text})
}

func (s *session) clientParse(frame []byte, up proxy.Writer) error {
	p := &s.parse
	if err := p.Decode(frame[5:]); err != nil {
		return proxy.Errorf(proxy.CodeProtocolViolation, "invalid Parse message")
	}
	an := s.analyze(p.Query)
	st := &stmt{an: &an, params: an.Params}
	if an.Refusal == nil && len(an.Copies) == 1 {
		cp, err := s.planCopy(an.Copies[0])
		if err != nil {
			an = Analysis{Refusal: err}
		}
		st.copy = cp
	}
	e := expect{kind: expParse, stmt: st}
	s.mu.Lock()
	s.stmts[p.Name] = st
	s.mu.Unlock()
	switch {
	case an.Refusal != nil:
		e.refusal = an.Refusal
		s.push(e)
		return s.writeMsg(up, &pgproto3.Parse{Name: p.Name, Query: poisonSQL})
	case an.Passthrough:
		s.push(e)
		_, err := up.Write(frame)
		return err
	}
	st.declared = append([]uint32(nil), p.ParameterOIDs...)
	oids := p.ParameterOIDs
	for i, col := range an.Params {
		if col == nil {
			continue
		}
		// Policy parameters are bytea (or bytea[] for lookups) to the
		// server whatever type the client declared; the rewritten text
		// says which, so leave the type for the server to infer.
		// ParameterDescription shows the declared type.
		if i < len(oids) {
			oids[i] = 0
		}
	}
	s.push(e)
	return s.writeMsg(up, &pgproto3.Parse{Name: p.Name, Query: an.SQL, ParameterOIDs: oids})
}

func (s *session) clientDescribe(frame []byte, up proxy.Writer) error {
	var d pgproto3.Describe
	if err := d.Decode(frame[5:]); err != nil {
		return proxy.Errorf(proxy.CodeProtocolViolation, "invalid Describe message")
	}
	s.mu.Lock()
	e := expect{kind: expDescribePortal}
	if d.ObjectType == 'S' {
		e.kind, e.stmt = expDescribeStmt, s.stmts[d.Name]
	} else {
		e.portal = s.portals[d.Name]
	}
	s.enqueueLocked(e)
	s.mu.Unlock()
	_, err := up.Write(frame)
	return err
}

func (s *session) clientExecute(frame []byte, up proxy.Writer) error {
	var ex pgproto3.Execute
	if err := ex.Decode(frame[5:]); err != nil {
		return proxy.Errorf(proxy.CodeProtocolViolation, "invalid Execute message")
	}
	s.mu.Lock()
	p := s.portals[ex.Portal]
	s.enqueueLocked(expect{kind: expExecute, portal: p})
	s.mu.Unlock()
	if p != nil && p.stmt != nil && p.stmt.copy != nil && p.stmt.copy.from {
		cs, err := newCopyStream(p.stmt.copy)
		if err != nil {
			return err
		}
		s.cin = cs
	}
	_, err := up.Write(frame)
	return err
}

func (s *session) clientClose(frame []byte, up proxy.Writer) error {
	var c pgproto3.Close
	if err := c.Decode(frame[5:]); err != nil {
		return proxy.Errorf(proxy.CodeProtocolViolation, "invalid Close message")
	}
	s.mu.Lock()
	if c.ObjectType == 'S' {
		delete(s.stmts, c.Name)
	} else {
		delete(s.portals, c.Name)
	}
	s.enqueueLocked(expect{kind: expClose})
	s.mu.Unlock()
	_, err := up.Write(frame)
	return err
}

// writeMsg encodes msg into the client-side scratch buffer and writes it.
func (s *session) writeMsg(w proxy.Writer, msg pgproto3.Message) error {
	b, err := msg.Encode(s.cbuf[:0])
	if err != nil {
		return err
	}
	s.cbuf = b
	_, err = w.Write(b)
	return err
}

// setSearchPath records the search_path the server reported.
func (s *session) setSearchPath(csv string) {
	var path []string
	for _, p := range strings.Split(csv, ",") {
		if p != "" {
			path = append(path, p)
		}
	}
	s.mu.Lock()
	s.searchPath = path
	s.mu.Unlock()
}

// planQueryCopies plans the COPY statements of a simple query: a COPY FROM
// that moves policy columns starts its stream now, before the server even
// answers, so no CopyData can slip through unencrypted; COPY TO plans wait
// for the server's CopyOutResponse.
func (s *session) planQueryCopies(an *Analysis, qs *queryState) *proxy.Error {
	for i, cp := range an.Copies {
		p, err := s.planCopy(cp)
		if err != nil {
			return err
		}
		if p == nil {
			continue
		}
		if qs.copies == nil {
			qs.copies = make([]*copyPlan, len(an.Copies))
		}
		qs.copies[i] = p
		if p.from {
			if s.cin != nil {
				return proxy.Errorf(proxy.CodeFeatureNotSupported, "pgseal: one query text may hold one COPY FROM STDIN into encrypted columns")
			}
			cs, err := newCopyStream(p)
			if err != nil {
				return copyError(err)
			}
			s.cin = cs
		}
	}
	return nil
}
