package auditlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sync"
	"time"
)

// Errors. Callers branch on them with errors.Is.
var (
	// ErrTampered means an entry's MAC, sequence number or link to the
	// previous entry is wrong: the log was changed after it was written.
	ErrTampered = errors.New("auditlog: audit log chain is broken")
	// ErrMalformed means a line is not a well-formed entry (which includes a
	// line torn by a crash).
	ErrMalformed = errors.New("auditlog: malformed audit log entry")
	// ErrBadKey means the key is shorter than MinKeySize.
	ErrBadKey = errors.New("auditlog: key too short")
	// ErrBadEvent means an event name does not match EventPattern.
	ErrBadEvent = errors.New("auditlog: invalid event name")
	// ErrClosed means Append was called after Close.
	ErrClosed = errors.New("auditlog: log is closed")
)

// MinKeySize is the shortest HMAC key accepted.
const MinKeySize = 32

// EventPattern is what an event name must match, e.g. "keys.rotate".
const EventPattern = `^[a-z][a-z0-9_.-]{0,63}$`

var eventRE = regexp.MustCompile(EventPattern)

// maxLineSize bounds one entry.
const maxLineSize = 1 << 20

const macLabel = "pgseal/auditlog/v1 entry"

// Entry is one event of the log.
type Entry struct {
	Seq    uint64
	Time   time.Time
	Event  string
	Fields map[string]any
	Prev   string // mac of the previous entry, hex; empty for the first
	MAC    string // hex
}

// body is an entry as it is encoded, without its mac.
type body struct {
	Seq    uint64         `json:"seq"`
	Time   string         `json:"time"`
	Event  string         `json:"event"`
	Fields map[string]any `json:"fields,omitempty"`
	Prev   string         `json:"prev"`
}

// computeMAC returns the hex HMAC of an encoded body.
func computeMAC(key, encoded []byte) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(macLabel))
	h.Write([]byte{0})
	h.Write(encoded)
	return hex.EncodeToString(h.Sum(nil))
}

// macSuffix is what follows the body's members on a line: `,"mac":"` then
// 64 hex digits then `"}`.
const (
	macPrefix  = `,"mac":"`
	macHexLen  = 2 * sha256.Size
	suffixSize = len(macPrefix) + macHexLen + 2
)

// encodeLine encodes b with its mac, newline included.
func encodeLine(key []byte, b *body) ([]byte, string, error) {
	enc, err := json.Marshal(b)
	if err != nil {
		return nil, "", fmt.Errorf("failed to encode audit entry: %w", err)
	}
	mac := computeMAC(key, enc)
	line := make([]byte, 0, len(enc)+suffixSize+1)
	line = append(line, enc[:len(enc)-1]...)
	line = append(line, macPrefix...)
	line = append(line, mac...)
	return append(line, "\"}\n"...), mac, nil
}

// decodeLine checks one line (without its newline) against key and returns
// the entry. It does not check the chain.
func decodeLine(key, line []byte) (Entry, error) {
	n := len(line)
	if n < suffixSize+2 || !bytes.HasSuffix(line, []byte(`"}`)) ||
		!bytes.Equal(line[n-suffixSize:n-suffixSize+len(macPrefix)], []byte(macPrefix)) {
		return Entry{}, ErrMalformed
	}
	mac := string(line[n-macHexLen-2 : n-2])
	enc := append(bytes.Clone(line[:n-suffixSize]), '}')
	if !hmac.Equal([]byte(computeMAC(key, enc)), []byte(mac)) {
		return Entry{}, ErrTampered
	}
	dec := json.NewDecoder(bytes.NewReader(enc))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var b body
	if err := dec.Decode(&b); err != nil {
		return Entry{}, ErrMalformed
	}
	t, err := time.Parse(time.RFC3339Nano, b.Time)
	if err != nil || !eventRE.MatchString(b.Event) {
		return Entry{}, ErrMalformed
	}
	return Entry{Seq: b.Seq, Time: t, Event: b.Event, Fields: b.Fields, Prev: b.Prev, MAC: mac}, nil
}

// Logger appends entries to one log file. It is safe for concurrent use.
type Logger struct {
	mu     sync.Mutex
	f      *os.File
	key    []byte
	seq    uint64
	prev   string
	now    func() time.Time
	sync   bool
	closed bool
}

// Option configures Open.
type Option func(*Logger)

// WithClock replaces time.Now for entry times.
func WithClock(now func() time.Time) Option { return func(l *Logger) { l.now = now } }

// WithSync sets whether each Append waits for the entry to reach the disk
// (fsync). It does by default; a high-volume caller may turn it off.
func WithSync(sync bool) Option { return func(l *Logger) { l.sync = sync } }

// Open opens or creates (mode 0600) the log at path for appending with the
// HMAC key key, which is copied. It checks the last entry, to continue the
// chain from it, and fails with ErrTampered or ErrMalformed if that entry
// does not verify: the log is then left alone. Close the Logger when done.
func Open(path string, key []byte, opts ...Option) (*Logger, error) {
	if len(key) < MinKeySize {
		return nil, fmt.Errorf("failed to open audit log: %w", ErrBadKey)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("failed to open audit log: %w", err)
	}
	l := &Logger{f: f, key: bytes.Clone(key), now: time.Now, sync: true}
	for _, o := range opts {
		o(l)
	}
	last, err := lastLine(f)
	if err == nil && last != nil {
		var e Entry
		if e, err = decodeLine(l.key, last); err == nil {
			l.seq, l.prev = e.Seq, e.MAC
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("failed to continue audit log %s: %w", path, err)
	}
	return l, nil
}

// lastLine returns the last line of f without its newline, or nil for an
// empty file. A file that does not end with a newline was torn.
func lastLine(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("failed to stat audit log: %w", err)
	}
	size := fi.Size()
	if size == 0 {
		return nil, nil
	}
	n := min(size, maxLineSize+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("failed to read audit log: %w", err)
	}
	if buf[len(buf)-1] != '\n' {
		return nil, fmt.Errorf("last entry incomplete: %w", ErrMalformed)
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && n < size {
		return nil, fmt.Errorf("last entry too long: %w", ErrMalformed)
	}
	return buf[i+1:], nil
}

// Append writes one entry for event with fields, chained to the previous
// entry, and returns it. fields must marshal to JSON and must not hold
// secrets.
func (l *Logger) Append(ctx context.Context, event string, fields map[string]any) (Entry, error) {
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("failed to append audit entry: %w", err)
	}
	if !eventRE.MatchString(event) {
		return Entry{}, fmt.Errorf("failed to append audit entry %q: %w", event, ErrBadEvent)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return Entry{}, ErrClosed
	}
	t := l.now().UTC()
	b := body{Seq: l.seq + 1, Time: t.Format(time.RFC3339Nano), Event: event, Fields: fields, Prev: l.prev}
	line, mac, err := encodeLine(l.key, &b)
	if err != nil {
		return Entry{}, err
	}
	if len(line) > maxLineSize {
		return Entry{}, fmt.Errorf("failed to append audit entry: longer than %d bytes: %w", maxLineSize, ErrMalformed)
	}
	if _, err := l.f.Write(line); err != nil {
		return Entry{}, fmt.Errorf("failed to write audit entry: %w", err)
	}
	if l.sync {
		if err := l.f.Sync(); err != nil {
			return Entry{}, fmt.Errorf("failed to sync audit log: %w", err)
		}
	}
	l.seq, l.prev = b.Seq, mac
	return Entry{Seq: b.Seq, Time: t, Event: event, Fields: fields, Prev: b.Prev, MAC: mac}, nil
}

// Close closes the log file. It is safe to call more than once.
func (l *Logger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	clear(l.key)
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("failed to close audit log: %w", err)
	}
	return nil
}

// String describes the logger without its key.
func (l *Logger) String() string { return "auditlog.Logger(" + l.f.Name() + ")" }

// Summary is what Verify found in a valid log.
type Summary struct {
	Entries uint64
	First   time.Time // zero for an empty log
	Last    time.Time
	LastMAC string // anchor it elsewhere to detect truncation later
}

// Verify reads a whole log from r and checks every entry's MAC, sequence
// number and link to the previous entry. It fails with ErrTampered or
// ErrMalformed, wrapped with the line number, at the first bad line.
func Verify(r io.Reader, key []byte) (Summary, error) {
	if len(key) < MinKeySize {
		return Summary{}, fmt.Errorf("failed to verify audit log: %w", ErrBadKey)
	}
	var s Summary
	br := newLineReader(r)
	for lineNo := 1; ; lineNo++ {
		line, err := br.next()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return s, fmt.Errorf("failed to verify audit log at line %d: %w", lineNo, err)
		}
		e, err := decodeLine(key, line)
		if err != nil {
			return s, fmt.Errorf("failed to verify audit log at line %d: %w", lineNo, err)
		}
		if e.Seq != s.Entries+1 || e.Prev != s.LastMAC {
			return s, fmt.Errorf("failed to verify audit log at line %d: entry %d does not follow entry %d: %w", lineNo, e.Seq, s.Entries, ErrTampered)
		}
		if s.Entries == 0 {
			s.First = e.Time
		}
		s.Entries, s.Last, s.LastMAC = e.Seq, e.Time, e.MAC
	}
}
