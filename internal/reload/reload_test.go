package reload

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
)

const policyV1 = `version: 1
tables:
  public.users:
    email: {type: text, mode: deterministic, key: pii}
`

const policyV2 = `version: 1
tables:
  public.users:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
`

// fixture is a policy file and a keystore with the key set "pii".
type fixture struct {
	dir, policy, keystore string
	mk                    keystore.MasterKeySource

	mu     sync.Mutex
	events []Event
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	dir := tb.TempDir()
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(7 * i)
	}
	mk, err := keystore.NewStaticMasterKey(raw)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{dir: dir, policy: filepath.Join(dir, "policy.yaml"), keystore: filepath.Join(dir, "keystore.json"), mk: mk}
	ctx := context.Background()
	if _, err := keystore.Create(ctx, f.keystore, mk); err != nil {
		tb.Fatal(err)
	}
	f.edit(tb, func(ed *keystore.Editor) error { _, err := ed.AddKeySet(ctx, "pii"); return err })
	f.writePolicy(tb, policyV1)
	return f
}

// writePolicy replaces the policy file atomically, as operators should.
func (f *fixture) writePolicy(tb testing.TB, text string) {
	tb.Helper()
	tmp := f.policy + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, f.policy); err != nil {
		tb.Fatal(err)
	}
}

func (f *fixture) edit(tb testing.TB, change func(*keystore.Editor) error) {
	tb.Helper()
	ctx := context.Background()
	ed, err := keystore.Edit(ctx, f.keystore, f.mk)
	if err != nil {
		tb.Fatal(err)
	}
	if err := change(ed); err != nil {
		tb.Fatal(err)
	}
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
}

func (f *fixture) observe(e Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, e)
}

// take returns the events so far and forgets them.
func (f *fixture) take() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events
	f.events = nil
	return ev
}

func (f *fixture) start(tb testing.TB, opts ...Option) *Reloader {
	tb.Helper()
	r, err := New(context.Background(), Config{PolicyPath: f.policy, KeystorePath: f.keystore, MasterKey: f.mk},
		append([]Option{WithObserver(f.observe)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// swaps records the snapshots a Target receives.
type swaps struct {
	mu sync.Mutex
	n  int
}

func (s *swaps) Swap(*datapath.Snapshot) { s.mu.Lock(); s.n++; s.mu.Unlock() }

func TestStartReportsBothSources(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	ev := f.take()
	if len(ev) != 2 || ev[0].Source != SourcePolicy || ev[1].Source != SourceKeystore || ev[0].Cause != CauseStart || ev[0].Err != nil || ev[1].Err != nil {
		t.Fatalf("events %+v", ev)
	}
	if r.Snapshot() == nil || r.Snapshot().Policy != ev[1].Policy || r.Keystore() != ev[1].Keystore {
		t.Fatal("snapshot does not match the reported files")
	}
	var tg swaps
	r.Attach(&tg)
	if tg.n != 1 {
		t.Fatalf("Attach swapped %d times", tg.n)
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name   string
		spoil  func(f *fixture)
		source Source
		is     error
	}{
		{"missing keystore", func(f *fixture) { os.Remove(f.keystore) }, SourceKeystore, fs.ErrNotExist},
		{"missing policy", func(f *fixture) { os.Remove(f.policy) }, SourcePolicy, fs.ErrNotExist},
		{"invalid policy", func(f *fixture) { os.WriteFile(f.policy, []byte("version: 1\ntables: [\n"), 0o644) }, SourcePolicy, policy.ErrInvalid},
		{"unknown key set", func(f *fixture) {
			os.WriteFile(f.policy, []byte("version: 1\ntables:\n  public.t:\n    c: {type: text, mode: randomized, key: nope}\n"), 0o644)
		}, SourcePolicy, policy.ErrInvalid},
		{"wrong master key", func(f *fixture) {
			f.mk, _ = keystore.NewStaticMasterKey(make([]byte, 32))
		}, SourceKeystore, keystore.ErrWrongMasterKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.spoil(f)
			_, err := New(context.Background(), Config{PolicyPath: f.policy, KeystorePath: f.keystore, MasterKey: f.mk})
			var le *LoadError
			if !errors.As(err, &le) || le.Source != tt.source || !errors.Is(err, tt.is) {
				t.Fatalf("got %v, want a %s error wrapping %v", err, tt.source, tt.is)
			}
		})
	}
}

func TestPolicyChanges(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	var tg swaps
	r.Attach(&tg)
	f.take()
	ctx := context.Background()
	old := r.Snapshot()

	// Nothing changed: nothing happens.
	if err := r.ReloadChanged(ctx); err != nil || len(f.take()) != 0 || r.Snapshot() != old {
		t.Fatalf("unchanged files reloaded: %v", err)
	}

	f.writePolicy(t, policyV2)
	if err := r.ReloadChanged(ctx); err != nil {
		t.Fatal(err)
	}
	ev := f.take()
	if len(ev) != 1 || ev[0].Source != SourcePolicy || ev[0].Cause != CauseFileChanged || ev[0].Err != nil {
		t.Fatalf("events %+v", ev)
	}
	snap := r.Snapshot()
	if snap == old || snap.Analyzer == old.Analyzer || snap.Ciphers == old.Ciphers {
		t.Fatal("a new policy did not give a new snapshot with a new analyzer and ciphers")
	}
	if _, ok := snap.Policy.Lookup(policy.QualifiedName{Schema: "public", Name: "users"}, "ssn"); !ok {
		t.Fatal("new policy not in force")
	}

	for _, bad := range []struct{ name, text string }{
		{"syntax", "version: 1\ntables: [\n"},
		{"unknown key set", "version: 1\ntables:\n  public.users:\n    email: {type: text, mode: deterministic, key: missing}\n"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			f.writePolicy(t, bad.text)
			err := r.ReloadChanged(ctx)
			var le *LoadError
			if !errors.As(err, &le) || le.Source != SourcePolicy {
				t.Fatalf("got %v", err)
			}
			ev := f.take()
			if len(ev) != 1 || ev[0].Err == nil || ev[0].Policy != snap.Policy {
				t.Fatalf("events %+v", ev)
			}
			if r.Snapshot() != snap {
				t.Fatal("a broken policy replaced the snapshot")
			}
			// Reported once, not at every poll.
			if err := r.ReloadChanged(ctx); err != nil || len(f.take()) != 0 {
				t.Fatalf("broken file reported again: %v", err)
			}
		})
	}
	// A forced reload tries the broken file again.
	if err := r.Reload(ctx, CauseSignal); err == nil {
		t.Fatal("forced reload of a broken policy succeeded")
	}
	if ev := f.take(); len(ev) != 2 || ev[0].Cause != CauseSignal || ev[0].Err == nil || ev[1].Err != nil {
		t.Fatalf("events %+v", ev)
	}
	f.writePolicy(t, policyV1)
	if err := r.ReloadChanged(ctx); err != nil {
		t.Fatal(err)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if tg.n != 4 { // Attach, v2, the forced keystore reload, v1
		t.Fatalf("target swapped %d times, want 4", tg.n)
	}
}

func TestKeystoreGainsVersion(t *testing.T) {
	f := newFixture(t)
	r := f.start(t)
	f.take()
	old := r.Snapshot()
	f.edit(t, func(ed *keystore.Editor) error { _, err := ed.Rotate(context.Background(), "pii"); return err })
	if err := r.ReloadChanged(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := f.take()
	if len(ev) != 1 || ev[0].Source != SourceKeystore || ev[0].Err != nil {
		t.Fatalf("events %+v", ev)
	}
	snap := r.Snapshot()
	if snap.Analyzer != old.Analyzer || snap.Policy != old.Policy {
		t.Fatal("a keystore change rebuilt the analyzer")
	}
	col := column(t, snap.Policy)
	c, err := snap.Ciphers.Column(col)
	if err != nil || c.Primary() != 2 {
		t.Fatalf("primary %v, %v", c, err)
	}
}

func column(tb testing.TB, p *policy.Policy) *policy.Column {
	tb.Helper()
	col, ok := p.Lookup(policy.QualifiedName{Schema: "public", Name: "users"}, "email")
	if !ok {
		tb.Fatal("no column public.users.email")
	}
	return col
}

// TestRefreshOnUnknownVersion: a value sealed under a version that another
// process added opens after one reload; the reloads are rate-limited.
func TestRefreshOnUnknownVersion(t *testing.T) {
	f := newFixture(t)
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	r := f.start(t, WithClock(clock))
	f.take()
	snap := r.Snapshot()
	col := column(t, snap.Policy)
	oldCipher, err := snap.Ciphers.Column(col)
	if err != nil {
		t.Fatal(err)
	}
	ref, ok := snap.Ciphers.(datapath.Refresher)
	if !ok {
		t.Fatal("snapshot ciphers are not a datapath.Refresher")
	}
	id := oldCipher.Spec().KeySetID

	// A version the keystore knows: a reload cannot help.
	if _, ok := ref.Refresh(col, id, 1); ok {
		t.Fatal("refresh for a known version")
	}
	// Another process rotates; this one has not polled yet.
	f.edit(t, func(ed *keystore.Editor) error { _, err := ed.Rotate(context.Background(), "pii"); return err })
	sealed := sealWithFile(t, f, col)
	if _, err := oldCipher.Open(nil, sealed); err == nil {
		t.Fatal("old cipher opened a value of a version it lacks")
	}
	c, ok := ref.Refresh(col, id, 2)
	if !ok {
		t.Fatal("refresh failed")
	}
	if pt, err := c.Open(nil, sealed); err != nil || string(pt) != "v2 value" {
		t.Fatalf("after refresh: %q, %v", pt, err)
	}
	if ev := f.take(); len(ev) != 1 || ev[0].Cause != CauseUnknownVersion || ev[0].Err != nil {
		t.Fatalf("events %+v", ev)
	}
	// Later callers holding the old snapshot get the loaded one at once.
	if _, ok := ref.Refresh(col, id, 2); !ok || len(f.take()) != 0 {
		t.Fatal("second refresh for the same version reloaded again")
	}
	// A version nobody has: one reload, then none within the interval.
	if _, ok := ref.Refresh(col, id, 9); ok {
		t.Fatal("refresh invented a version")
	}
	if _, ok := ref.Refresh(col, id, 10); ok {
		t.Fatal("refresh invented a version")
	}
	if ev := f.take(); len(ev) != 0 {
		t.Fatalf("rate limit let %d reloads through", len(ev))
	}
	now = now.Add(DefaultRefreshInterval)
	if _, ok := ref.Refresh(col, id, 10); ok {
		t.Fatal("refresh invented a version")
	}
	if ev := f.take(); len(ev) != 1 {
		t.Fatalf("after the interval: %d reloads, want 1", len(ev))
	}
}

// sealWithFile seals "v2 value" for col with the keystore file as it is now.
func sealWithFile(tb testing.TB, f *fixture, col *policy.Column) []byte {
	tb.Helper()
	ks, err := keystore.Open(context.Background(), f.keystore, f.mk)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := ks.Column(col.KeySet, datapath.ColumnTable(col), col.Name, envelope.Deterministic)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := c.Seal(nil, []byte("v2 value"))
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestRunPollsUntilCancelled(t *testing.T) {
	f := newFixture(t)
	got := make(chan Event, 8)
	r, err := New(context.Background(), Config{PolicyPath: f.policy, KeystorePath: f.keystore, MasterKey: f.mk},
		WithObserver(func(e Event) {
			if e.Cause == CauseFileChanged {
				got <- e
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// The poller belongs to the test; cancel ends it.
	go func() { r.Run(ctx, 5*time.Millisecond); close(done) }()
	f.writePolicy(t, policyV2)
	select {
	case e := <-got:
		if e.Source != SourcePolicy || e.Err != nil {
			t.Fatalf("event %+v", e)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the poller did not see the change")
	}
	cancel()
	<-done
}
