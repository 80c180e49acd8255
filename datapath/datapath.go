package datapath

import (
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

// Analysis is what the data path needs to know about one statement text.
type Analysis struct {
	// Passthrough is true when the text is forwarded unchanged and needs
	// nothing from the session.
	Passthrough bool
	// Touches is true when the text references a policy table: its results
	// are followed (RowDescription decides which columns to decrypt).
	Touches bool
	// Refusal, when set, is the error the client gets instead.
	Refusal *proxy.Error
	// SQL is the text to send upstream: the client's, with each literal
	// bound for a policy column replaced by a bytea literal of its
	// ciphertext.
	SQL string
	// Params maps $n (index n-1) to the policy column it is bound for.
	Params []*policy.Column
	// ParamArrays[n-1] is set when $n is bound as a bytea array of its
	// ciphertexts under every active key version (a deterministic lookup
	// that must find rows during a rotation).
	ParamArrays []bool
	// ParamElements[n-1] is set when $n is an array of values (the
	// parameter of "= ANY($n)"): each element is encrypted, under every
	// active key version, into one bytea array.
	ParamElements []bool
	// Results holds, per statement in the text, the policy column each
	// output position carries where RowDescription cannot tell (views,
	// UNION); nil entries defer to RowDescription.
	Results [][]Lineage
	// Copies holds, per statement in the text, its COPY description (nil
	// for statements that are not COPY).
	Copies []*rewrite.Copy
	// SearchPath is the new search_path when SearchPathChanged (nil: the
	// session default, read back from the server).
	SearchPath        []string
	SearchPathChanged bool
	// Prepares lists the SQL-level PREPAREs of the text, by name, with what
	// the analyzer needs to bind a later EXECUTE (opaque to the session).
	Prepares map[string]any
	// Deallocates lists SQL-level DEALLOCATEs; DeallocateAll is DEALLOCATE
	// ALL or DISCARD ALL.
	Deallocates   []string
	DeallocateAll bool
}

// Lineage says which policy column's ciphertext an output column carries.
// Alternatives are further columns (same key set and declared type) a value
// may come from, as in a UNION ALL over different columns: each value opens
// under exactly one of them.
type Lineage struct {
	Column       *policy.Column
	Alternatives []*policy.Column
}

// Analyzer analyses a statement text for a session. Implementations encrypt
// literals with enc.
type Analyzer interface {
	Analyze(sql string, searchPath []string, prepared func(name string) (any, bool), enc Encrypter) Analysis
}

// CatalogAnalyzer is an Analyzer that can use catalog information (column
// order, view definitions) of the session's database.
type CatalogAnalyzer interface {
	Analyzer
	WithCatalog(c rewrite.Catalog) Analyzer
}

// Encrypter encrypts one value, given in the text format, for a column:
// under the primary key version, or under every active version, primary
// first, when all is set.
type Encrypter func(col *policy.Column, text string, all bool) ([][]byte, error)

// Ciphers gives the cipher of a policy column.
type Ciphers interface {
	Column(col *policy.Column) (*envelope.ColumnCipher, error)
}

// Snapshot is one consistent view of the policy, its analyzer and the keys.
// A reload builds a new Snapshot and swaps it in whole.
type Snapshot struct {
	Policy   *policy.Policy
	Analyzer Analyzer
	Ciphers  Ciphers
}

// Observer counts data-path events for metrics and the audit log. It must be
// safe for concurrent use.
type Observer interface {
	Statement(kind, outcome string)
	Refused(table, column, reason string)
	Encrypted(n int)
	Decrypted(n int)
	DecryptFailed(column string)
}

type nopObserver struct{}

func (nopObserver) Statement(string, string)       {}
func (nopObserver) Refused(string, string, string) {}
func (nopObserver) Encrypted(int)                  {}
func (nopObserver) Decrypted(int)                  {}
func (nopObserver) DecryptFailed(string)           {}

// DataPath implements proxy.DataPath. It is safe for concurrent use.
type DataPath struct {
	snap atomic.Pointer[Snapshot]
	log  zerolog.Logger
	obs  Observer

	mu       sync.Mutex
	catalogs map[string]*catalog // by database name
}

// Option configures a DataPath.
type Option func(*DataPath)

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(d *DataPath) { d.log = l } }

// WithObserver sets the event observer.
func WithObserver(o Observer) Option { return func(d *DataPath) { d.obs = o } }

// New returns a DataPath serving snap.
func New(snap *Snapshot, opts ...Option) *DataPath {
	d := &DataPath{log: zerolog.Nop(), obs: nopObserver{}, catalogs: make(map[string]*catalog)}
	for _, o := range opts {
		o(d)
	}
	d.snap.Store(snap)
	return d
}

// Swap installs a new snapshot. Sessions use it from their next statement.
func (d *DataPath) Swap(snap *Snapshot) {
	d.snap.Store(snap)
	d.mu.Lock()
	for _, c := range d.catalogs {
		c.stale.Store(true)
	}
	d.mu.Unlock()
}

// Snapshot returns the snapshot in force.
func (d *DataPath) Snapshot() *Snapshot { return d.snap.Load() }

// NewSession implements proxy.DataPath.
func (d *DataPath) NewSession(info proxy.SessionInfo) proxy.SessionFilter {
	return newSession(d, info)
}

func (d *DataPath) catalogFor(db string) *catalog {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.catalogs[db]
	if !ok {
		c = &catalog{}
		c.stale.Store(true)
		d.catalogs[db] = c
	}
	return c
}

var _ proxy.DataPath = (*DataPath)(nil)
