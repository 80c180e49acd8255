package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

// Analyzer wraps a statement analyzer so that each analysis is timed
// (pgseal_statement_analysis_seconds). Catalog-aware analyzers stay
// catalog-aware.
func (m *Metrics) Analyzer(a datapath.Analyzer) datapath.Analyzer {
	t := timedAnalyzer{a: a, h: m.analysis}
	if ca, ok := a.(datapath.CatalogAnalyzer); ok {
		return timedCatalogAnalyzer{timedAnalyzer: t, ca: ca, m: m}
	}
	return t
}

type timedAnalyzer struct {
	a datapath.Analyzer
	h prometheus.Histogram
}

func (t timedAnalyzer) Analyze(sql string, searchPath []string, prepared func(string) (any, bool), enc datapath.Encrypter) datapath.Analysis {
	start := time.Now()
	an := t.a.Analyze(sql, searchPath, prepared, enc)
	t.h.Observe(time.Since(start).Seconds())
	return an
}

type timedCatalogAnalyzer struct {
	timedAnalyzer
	ca datapath.CatalogAnalyzer
	m  *Metrics
}

func (t timedCatalogAnalyzer) WithCatalog(c rewrite.Catalog) datapath.Analyzer {
	return t.m.Analyzer(t.ca.WithCatalog(c))
}

// DataPath wraps a data path (nil: none, every message passes unchanged)
// so that each round trip is timed: from a client's Query, Sync or
// FunctionCall to the ReadyForQuery the client receives for it
// (pgseal_statement_duration_seconds). Statements the data path injects
// for itself are not counted, because only what reaches the client ends a
// round trip.
func (m *Metrics) DataPath(inner proxy.DataPath) proxy.DataPath {
	return &timedDataPath{inner: inner, h: m.duration}
}

type timedDataPath struct {
	inner proxy.DataPath
	h     prometheus.Histogram
}

func (d *timedDataPath) NewSession(info proxy.SessionInfo) proxy.SessionFilter {
	f := &timedFilter{h: d.h}
	if d.inner != nil {
		f.inner = d.inner.NewSession(info)
	}
	f.down.f = f
	return f
}

// maxPending bounds the round trips a session may have outstanding that
// are timed; a client that pipelines more is timed for the first ones.
const maxPending = 1 << 12

// timedFilter times one session's round trips. Client runs on the client
// goroutine and Server on the server goroutine; mu guards the queue they
// share.
type timedFilter struct {
	inner proxy.SessionFilter
	h     prometheus.Histogram
	down  readyWriter // Server goroutine only

	mu      sync.Mutex
	pending []time.Time // pending[head:] are the open round trips
	head    int
	dropped int // round trips begun while pending was full
}

func (f *timedFilter) Client(typ byte, frame []byte, up proxy.Writer) error {
	switch typ {
	case 'Q', 'S', 'F':
		f.mu.Lock()
		// Once one is dropped, later ones are too until the dropped are
		// answered, so that answers still pair with their requests.
		if f.dropped == 0 && len(f.pending)-f.head < maxPending {
			f.pending = append(f.pending, time.Now())
		} else {
			f.dropped++
		}
		f.mu.Unlock()
	}
	if f.inner == nil {
		_, err := up.Write(frame)
		return err
	}
	return f.inner.Client(typ, frame, up)
}

func (f *timedFilter) Server(typ byte, frame []byte, down proxy.Writer) error {
	if f.inner == nil {
		if typ == 'Z' {
			f.ready()
		}
		_, err := down.Write(frame)
		return err
	}
	f.down.w = down
	return f.inner.Server(typ, frame, &f.down)
}

// ready ends the oldest round trip.
func (f *timedFilter) ready() {
	f.mu.Lock()
	if f.head == len(f.pending) {
		if f.dropped > 0 {
			f.dropped--
		}
		f.mu.Unlock()
		return
	}
	start := f.pending[f.head]
	f.head++
	if f.head == len(f.pending) {
		// Drained: reuse the array, unless a deep pipeline grew it.
		f.head = 0
		f.pending = f.pending[:0]
		if cap(f.pending) > 64 {
			f.pending = nil
		}
	}
	f.mu.Unlock()
	f.h.Observe(time.Since(start).Seconds())
}

func (f *timedFilter) Close() {
	if f.inner != nil {
		f.inner.Close()
	}
}

// readyWriter passes frames to the client and notices ReadyForQuery.
type readyWriter struct {
	f *timedFilter
	w proxy.Writer
}

func (r *readyWriter) Write(frame []byte) (int, error) {
	if len(frame) > 0 && frame[0] == 'Z' {
		r.f.ready()
	}
	return r.w.Write(frame)
}
