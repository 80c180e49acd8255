package reload

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/rewrite"
)

// Source names a file the Reloader loads.
type Source string

// The sources.
const (
	SourcePolicy   Source = "policy"
	SourceKeystore Source = "keystore"
)

// Cause says why a load was attempted.
type Cause string

// The causes.
const (
	CauseStart          Cause = "start"
	CauseSignal         Cause = "signal"
	CauseFileChanged    Cause = "file changed"
	CauseUnknownVersion Cause = "unknown key version"
)

// Event reports one load attempt of one source.
type Event struct {
	Source Source
	Cause  Cause
	// Err is nil when the loaded file is now in force, else why it was
	// refused. It never holds key material.
	Err error
	// Policy and Keystore are in force after the attempt (the old ones
	// when it failed).
	Policy   *policy.Policy
	Keystore *keystore.Keystore
}

// LoadError is the error of a failed load: which source, and why.
type LoadError struct {
	Source Source
	Err    error
}

// Error implements error.
func (e *LoadError) Error() string { return fmt.Sprintf("failed to load %s: %v", e.Source, e.Err) }

// Unwrap returns the cause.
func (e *LoadError) Unwrap() error { return e.Err }

// Target receives new snapshots; *datapath.DataPath is one.
type Target interface {
	Swap(*datapath.Snapshot)
}

// Config names the files to load.
type Config struct {
	PolicyPath   string
	KeystorePath string
	MasterKey    keystore.MasterKeySource
}

// Option configures a Reloader.
type Option func(*options)

type options struct {
	observe         func(Event)
	analyzer        func(*policy.Policy) datapath.Analyzer
	refreshInterval time.Duration
	refreshTimeout  time.Duration
	now             func() time.Time
}

// WithObserver receives every load attempt, including the first. It is
// called with the Reloader's lock held: it must not call the Reloader.
func WithObserver(f func(Event)) Option { return func(o *options) { o.observe = f } }

// WithAnalyzer replaces how a policy becomes the snapshot's analyzer
// (default: datapath.RewriteAnalyzer over rewrite.New). Metrics use it to
// time analysis.
func WithAnalyzer(f func(*policy.Policy) datapath.Analyzer) Option {
	return func(o *options) { o.analyzer = f }
}

// WithRefreshInterval sets the least time between two keystore reloads
// caused by unknown key versions (default DefaultRefreshInterval).
func WithRefreshInterval(d time.Duration) Option { return func(o *options) { o.refreshInterval = d } }

// WithClock replaces time.Now for the refresh rate limit.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// DefaultRefreshInterval bounds how often values naming unknown key
// versions make the keystore reload.
const DefaultRefreshInterval = time.Second

// Reloader owns the policy and keystore in force and the snapshot built from
// them. It is safe for concurrent use.
type Reloader struct {
	cfg  Config
	opts options
	snap atomic.Pointer[datapath.Snapshot]

	mu          sync.Mutex // serialises loads; guards the fields below
	target      Target
	pol         *policy.Policy
	ks          *keystore.Keystore
	polSeen     [sha256.Size]byte // content last tried, loaded or not
	ksSeen      [sha256.Size]byte
	lastRefresh time.Time
}

// New loads the policy and the keystore and builds the first snapshot. It
// fails with a *LoadError when either file is unusable or they do not fit
// together.
func New(ctx context.Context, cfg Config, opts ...Option) (*Reloader, error) {
	o := options{
		observe:         func(Event) {},
		analyzer:        func(p *policy.Policy) datapath.Analyzer { return datapath.RewriteAnalyzer{A: rewrite.New(p)} },
		refreshInterval: DefaultRefreshInterval,
		refreshTimeout:  30 * time.Second,
		now:             time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	r := &Reloader{cfg: cfg, opts: o}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.load(ctx, CauseStart, true); err != nil {
		return nil, err
	}
	return r, nil
}

// Snapshot returns the snapshot in force.
func (r *Reloader) Snapshot() *datapath.Snapshot { return r.snap.Load() }

// Keystore returns the keystore in force.
func (r *Reloader) Keystore() *keystore.Keystore {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ks
}

// Attach makes t receive every new snapshot, and the current one if t does
// not hold it yet.
func (r *Reloader) Attach(t Target) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.target = t
	t.Swap(r.snap.Load())
}

// Reload loads both files now, changed or not. It returns nil when both are
// in force, else the failures joined; the snapshot in force then keeps what
// did not load.
func (r *Reloader) Reload(ctx context.Context, cause Cause) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.load(ctx, cause, true)
}

// ReloadChanged loads whichever file's content differs from what was last
// tried. It is one step of Run.
func (r *Reloader) ReloadChanged(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.load(ctx, CauseFileChanged, false)
}

// Run checks the files every interval until ctx ends, reloading those that
// changed. Failures are reported to the observer only.
func (r *Reloader) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.ReloadChanged(ctx)
		}
	}
}

// unreadable stands for the content of a file that could not be read, so
// that a missing file is reported once, not at every poll.
var unreadable = [sha256.Size]byte{0: 0xff, sha256.Size - 1: 0xff}

// readFile returns path's content and its hash, read up to limit+1 bytes.
func readFile(path string, limit int64) ([]byte, [sha256.Size]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, unreadable, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, unreadable, err
	}
	return data, sha256.Sum256(data), nil
}

// maxKeystoreRead bounds what is hashed of a keystore file; keystore.Open
// applies its own limit.
const maxKeystoreRead = 64 << 20

// attempt is the outcome of trying one source.
type attempt struct {
	tried bool
	err   error
}

// loadPolicy parses the policy file unless its content was tried before
// (force: always). r.mu must be held.
func (r *Reloader) loadPolicy(force bool) (*policy.Policy, attempt) {
	data, sum, err := readFile(r.cfg.PolicyPath, policy.MaxFileSize)
	if !force && sum == r.polSeen {
		return nil, attempt{}
	}
	r.polSeen = sum
	if err != nil {
		return nil, attempt{tried: true, err: fmt.Errorf("failed to read policy: %w", err)}
	}
	p, err := policy.Parse(data, r.cfg.PolicyPath)
	return p, attempt{tried: true, err: err}
}

// loadKeystore opens the keystore unless its content was tried before
// (force: always). r.mu must be held.
func (r *Reloader) loadKeystore(ctx context.Context, force bool) (*keystore.Keystore, attempt) {
	_, sum, _ := readFile(r.cfg.KeystorePath, maxKeystoreRead)
	if !force && sum == r.ksSeen {
		return nil, attempt{}
	}
	r.ksSeen = sum
	ks, err := keystore.Open(ctx, r.cfg.KeystorePath, r.cfg.MasterKey)
	return ks, attempt{tried: true, err: err}
}

// load is the whole reload: r.mu must be held. force loads files whose
// content was tried before.
func (r *Reloader) load(ctx context.Context, cause Cause, force bool) error {
	newPol, pa := r.loadPolicy(force)
	newKs, ka := r.loadKeystore(ctx, force)
	return r.install(cause, newPol, pa, newKs, ka)
}

// install builds and swaps in the snapshot of the sources that loaded, and
// reports each attempt. r.mu must be held.
func (r *Reloader) install(cause Cause, newPol *policy.Policy, pa attempt, newKs *keystore.Keystore, ka attempt) error {
	pol, ks := r.pol, r.ks
	if pa.tried && pa.err == nil {
		pol = newPol
	}
	if ka.tried && ka.err == nil {
		ks = newKs
	}
	changed := pol != r.pol || ks != r.ks
	if changed && pol != nil && ks != nil {
		// A pair that does not fit: refuse whichever side is new.
		if problems := pol.Validate(func(name string) bool { _, err := ks.KeySet(name); return err == nil }); len(problems) > 0 {
			err := errors.Join(problems...)
			if pol != r.pol {
				pa.err, pol = err, r.pol
			} else {
				ka.err, ks = err, r.ks
			}
			changed = pol != r.pol || ks != r.ks
		}
	}
	if changed && pol != nil && ks != nil {
		snap := &datapath.Snapshot{Policy: pol, Ciphers: newCiphers(r, ks)}
		if old := r.snap.Load(); old != nil && pol == r.pol {
			snap.Analyzer = old.Analyzer // keeps its plan cache
		} else {
			snap.Analyzer = r.opts.analyzer(pol)
		}
		r.snap.Store(snap)
		if r.target != nil {
			r.target.Swap(snap)
		}
	}
	r.pol, r.ks = pol, ks
	var failed []error
	for _, x := range []struct {
		src Source
		a   attempt
	}{{SourcePolicy, pa}, {SourceKeystore, ka}} {
		if !x.a.tried {
			continue
		}
		if x.a.err != nil {
			x.a.err = &LoadError{Source: x.src, Err: x.a.err}
			failed = append(failed, x.a.err)
		}
		r.opts.observe(Event{Source: x.src, Cause: cause, Err: x.a.err, Policy: r.pol, Keystore: r.ks})
	}
	return errors.Join(failed...)
}
