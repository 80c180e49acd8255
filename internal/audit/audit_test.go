package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgseal/pgseal/internal/auditlog"
	"github.com/pgseal/pgseal/internal/reload"
	"github.com/pgseal/pgseal/keystore"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

type entry struct {
	Event  string         `json:"event"`
	Fields map[string]any `json:"fields"`
}

// readLog verifies the log at path and returns its entries.
func readLog(tb testing.TB, path string) []entry {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := auditlog.Verify(bytes.NewReader(data), testKey); err != nil {
		tb.Fatalf("log does not verify: %v", err)
	}
	var out []entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	r, err := Open(path, testKey, WithLogOptions(auditlog.WithSync(false)))
	if err != nil {
		t.Fatal(err)
	}
	ks := testKeystore(t)
	r.Started("127.0.0.1:6432", "db:5432")
	r.SessionOpened("TLS 1.3")
	r.AuthFailed("alice", "10.0.0.1:5555", "refused by server")
	r.TLSRefused("10.0.0.2:5555", "client did not request TLS")
	r.Statement("query", "refused")
	r.Refused("", "", "pgseal: ORDER BY is not supported on encrypted column public.t.ssn (randomized)")
	r.DecryptFailed("public.t.ssn")
	r.Encrypted(3)
	r.UpstreamConnectFailed("x")
	r.Reloaded(reload.Event{Source: reload.SourceKeystore, Cause: reload.CauseSignal, Keystore: ks})
	r.Reloaded(reload.Event{Source: reload.SourcePolicy, Cause: reload.CauseFileChanged, Err: errors.New("line 3: bad"), Keystore: ks})
	r.Stopped()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.Record("late", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close: %v", err)
	}
	got := readLog(t, path)
	want := []struct {
		event, field string
		value        any
	}{
		{EventStart, "listen", "127.0.0.1:6432"},
		{EventAuthFailure, "user", "alice"},
		{EventTLSRefused, "remote", "10.0.0.2:5555"},
		{EventRefused, "reason", "pgseal: ORDER BY is not supported on encrypted column public.t.ssn (randomized)"},
		{EventDecryptFailure, "column", "public.t.ssn"},
		{EventKeystoreReload, "result", "success"},
		{EventPolicyReload, "error", "line 3: bad"},
		{EventStop, "", nil},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Event != w.event || (w.field != "" && got[i].Fields[w.field] != w.value) {
			t.Errorf("entry %d: %+v, want %s with %s=%v", i, got[i], w.event, w.field, w.value)
		}
	}
	if pv, ok := got[5].Fields["primary_versions"].(map[string]any); !ok || pv["pii"] != float64(1) {
		t.Errorf("keystore reload fields %v", got[5].Fields)
	}
}

func testKeystore(tb testing.TB) *keystore.Keystore {
	tb.Helper()
	ctx := context.Background()
	mk, _ := keystore.NewStaticMasterKey(make([]byte, 32))
	path := filepath.Join(tb.TempDir(), "ks.json")
	if _, err := keystore.Create(ctx, path, mk); err != nil {
		tb.Fatal(err)
	}
	ed, err := keystore.Edit(ctx, path, mk)
	if err != nil {
		tb.Fatal(err)
	}
	ed.AddKeySet(ctx, "pii")
	if err := ed.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	ks, err := keystore.Open(ctx, path, mk)
	if err != nil {
		tb.Fatal(err)
	}
	return ks
}

// TestDropsAreRecorded: with the writer stalled and the queue full, events
// are dropped without blocking, and the count enters the chain.
func TestDropsAreRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := auditlog.Open(path, testKey, auditlog.WithSync(false), auditlog.WithClock(func() time.Time { return time.Unix(0, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	var errs []error
	r := newRecorder(l, config{queue: 2, onError: func(err error) { errs = append(errs, err) }})
	for i := range 5 {
		err := r.Record("e"+string(rune('0'+i)), map[string]any{})
		if (i < 2) != (err == nil) {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	r.start()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	got := readLog(t, path)
	if len(got) != 3 || got[0].Event != "e0" || got[1].Event != "e1" || got[2].Event != EventDropped || got[2].Fields["count"] != float64(3) {
		t.Fatalf("log %+v", got)
	}
	if len(errs) != 3 || !errors.Is(errs[0], ErrDropped) {
		t.Fatalf("error handler saw %v", errs)
	}
}

// TestDropCountBeforeNextEvent: once there is room, the count of dropped
// events is written before the next event.
func TestDropCountBeforeNextEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := auditlog.Open(path, testKey, auditlog.WithSync(false))
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder(l, config{queue: 3, onError: func(error) {}})
	for _, name := range []string{"a", "b", "c"} {
		if err := r.Record(name, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Record("d", nil); !errors.Is(err, ErrDropped) {
		t.Fatalf("d: %v", err)
	}
	<-r.queue // the writer is not running: make room by hand (a, b are lost
	<-r.queue // to the test, not to the recorder)
	if err := r.Record("e", nil); err != nil {
		t.Fatalf("e: %v", err)
	}
	r.start()
	r.Close()
	got := readLog(t, path)
	if len(got) != 3 || got[0].Event != "c" || got[1].Event != EventDropped || got[1].Fields["count"] != float64(1) || got[2].Event != "e" {
		t.Fatalf("log %+v", got)
	}
}
