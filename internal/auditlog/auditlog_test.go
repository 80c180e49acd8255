package auditlog

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var testKey = bytes.Repeat([]byte{0x42}, 32)

// tick returns a clock that advances one second per call from a fixed time.
func tick() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

// writeLog appends n entries to a new log and returns its path.
func writeLog(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audit.jsonl")
	l, err := Open(path, testKey, WithClock(tick()))
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	for i := range n {
		if _, err := l.Append(context.Background(), "keys.rotate", map[string]any{"key_set": "pii", "version": i + 1}); err != nil {
			tb.Fatal(err)
		}
	}
	return path
}

func verifyFile(tb testing.TB, path string, key []byte) (Summary, error) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	return Verify(f, key)
}

func TestAppendAndVerify(t *testing.T) {
	path := writeLog(t, 3)
	s, err := verifyFile(t, path, testKey)
	if err != nil || s.Entries != 3 || len(s.LastMAC) != 64 {
		t.Fatalf("Verify = %+v, %v", s, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %04o, want 0600", fi.Mode().Perm())
	}

	l, err := Open(path, testKey)
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Append(context.Background(), "keys.disable", map[string]any{"big": uint64(math.MaxUint64)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Append(context.Background(), "x", nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if e.Seq != 4 || e.Prev != s.LastMAC {
		t.Errorf("reopened log continued at seq %d prev %s; want 4, %s", e.Seq, e.Prev, s.LastMAC)
	}
	s2, err := verifyFile(t, path, testKey)
	if err != nil || s2.Entries != 4 || s2.LastMAC != e.MAC {
		t.Fatalf("Verify after reopen = %+v, %v", s2, err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"big":18446744073709551615`) {
		t.Errorf("large number not kept exactly:\n%s", data)
	}
}

func TestVerifyDetects(t *testing.T) {
	path := writeLog(t, 4)
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")[:4]
	otherKey := bytes.Repeat([]byte{0x43}, 32)
	forged := writeLogWithKey(t, otherKey, 5)
	forgedLines := strings.SplitAfter(forged, "\n")
	tests := []struct {
		name    string
		log     string
		key     []byte
		wantErr error
	}{
		{"intact", string(data), testKey, nil},
		{"wrong key", string(data), otherKey, ErrTampered},
		{"edited field", strings.Replace(string(data), `"version":2`, `"version":3`, 1), testKey, ErrTampered},
		{"middle line deleted", lines[0] + lines[1] + lines[3], testKey, ErrTampered},
		{"first line deleted", lines[1] + lines[2] + lines[3], testKey, ErrTampered},
		{"lines swapped", lines[0] + lines[2] + lines[1] + lines[3], testKey, ErrTampered},
		{"line duplicated", lines[0] + lines[1] + lines[1] + lines[2], testKey, ErrTampered},
		{"foreign line appended", string(data) + forgedLines[4], testKey, ErrTampered},
		{"torn last line", string(data) + lines[0][:20], testKey, ErrMalformed},
		{"missing final newline", strings.TrimSuffix(string(data), "\n"), testKey, ErrMalformed},
		{"blank line", lines[0] + "\n" + lines[1], testKey, ErrMalformed},
		{"extra member", strings.Replace(lines[0], `{"seq"`, `{"x":1,"seq"`, 1), testKey, ErrTampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(strings.NewReader(tt.log), tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func writeLogWithKey(t testing.TB, key []byte, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "other.jsonl")
	l, err := Open(path, key, WithClock(tick()))
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := l.Append(context.Background(), "keys.add", nil); err != nil {
			t.Fatal(err)
		}
	}
	_ = l.Close()
	data, _ := os.ReadFile(path)
	return string(data)
}

// TestEverySingleByteChange flips each byte of a log: Verify must fail.
func TestEverySingleByteChange(t *testing.T) {
	data, _ := os.ReadFile(writeLog(t, 2))
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x01
		if _, err := Verify(bytes.NewReader(bad), testKey); !errors.Is(err, ErrTampered) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("byte %d (%q) changed: Verify error = %v", i, data[i], err)
		}
	}
}

func TestOpenRefusesBrokenTail(t *testing.T) {
	path := writeLog(t, 2)
	data, _ := os.ReadFile(path)
	tests := []struct {
		name    string
		content string
		wantErr error
	}{
		{"torn", string(data) + `{"seq":3`, ErrMalformed},
		{"edited last", strings.Replace(string(data), `"version":2`, `"version":9`, 1), ErrTampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "log")
			_ = os.WriteFile(p, []byte(tt.content), 0o600)
			if _, err := Open(p, testKey); !errors.Is(err, tt.wantErr) {
				t.Errorf("Open error = %v, want %v", err, tt.wantErr)
			}
			if after, _ := os.ReadFile(p); string(after) != tt.content {
				t.Errorf("Open changed a broken log")
			}
		})
	}
}

func TestRejects(t *testing.T) {
	if _, err := Open(filepath.Join(t.TempDir(), "x"), testKey[:16]); !errors.Is(err, ErrBadKey) {
		t.Errorf("short key: %v", err)
	}
	if _, err := Verify(strings.NewReader(""), nil); !errors.Is(err, ErrBadKey) {
		t.Errorf("Verify with no key: %v", err)
	}
	l, err := Open(filepath.Join(t.TempDir(), "x"), testKey)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, ev := range []string{"", "Keys.add", "keys add", "1keys", strings.Repeat("a", 65)} {
		if _, err := l.Append(context.Background(), ev, nil); !errors.Is(err, ErrBadEvent) {
			t.Errorf("event %q: %v, want ErrBadEvent", ev, err)
		}
	}
	if _, err := l.Append(context.Background(), "x", map[string]any{"f": func() {}}); err == nil {
		t.Errorf("unmarshalable field accepted")
	}
}

// TestConcurrentAppend appends from several goroutines; run with -race.
func TestConcurrentAppend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, testKey, WithSync(false))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		// Owned by this test; stops after its loop.
		wg.Go(func() {
			for i := range 25 {
				if _, err := l.Append(context.Background(), "proxy.refused", map[string]any{"g": g, "i": i}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	_ = l.Close()
	if s, err := verifyFile(t, path, testKey); err != nil || s.Entries != 100 {
		t.Errorf("Verify = %+v, %v", s, err)
	}
}

const goldenLog = "testdata/audit.jsonl"

// TestGoldenLog checks a log written by an earlier build (key 0x42 * 32).
func TestGoldenLog(t *testing.T) {
	if *update {
		path := writeLog(t, 3)
		data, _ := os.ReadFile(path)
		if err := os.WriteFile(goldenLog, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := verifyFile(t, goldenLog, testKey)
	if err != nil || s.Entries != 3 {
		t.Fatalf("golden log: %+v, %v", s, err)
	}
	if got := fmt.Sprint(s.First); got != "2026-01-02 03:04:06.000000006 +0000 UTC" {
		t.Errorf("first entry time %s", got)
	}
}

// FuzzVerify checks that Verify never panics and fails only with the
// documented errors.
func FuzzVerify(f *testing.F) {
	data, err := os.ReadFile(goldenLog)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		f.Add(line)
	}
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, log []byte) {
		s, err := Verify(bytes.NewReader(log), testKey)
		if err != nil && !errors.Is(err, ErrTampered) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("Verify error %v", err)
		}
		if err == nil && s.Entries > 0 && len(s.LastMAC) != 64 {
			t.Fatalf("summary %+v", s)
		}
	})
}
