package audit

import (
	"context"
	"errors"
	"sync"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/internal/auditlog"
	"github.com/pgseal/pgseal/internal/reload"
	"github.com/pgseal/pgseal/proxy"
)

// Event names written by a Recorder.
const (
	EventStart          = "proxy.start"
	EventStop           = "proxy.stop"
	EventAuthFailure    = "auth.failure"
	EventTLSRefused     = "tls.refused"
	EventRefused        = "statement.refused"
	EventDecryptFailure = "decrypt.failure"
	EventPolicyReload   = "policy.reload"
	EventKeystoreReload = "keystore.reload"
	EventDropped        = "audit.dropped"
)

// DefaultQueueSize is how many events may wait for the writer.
const DefaultQueueSize = 4096

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: recorder is closed")

// Option configures Open.
type Option func(*config)

type config struct {
	queue   int
	onError func(error)
	log     []auditlog.Option
}

// WithQueueSize sets how many events may wait for the writer.
func WithQueueSize(n int) Option { return func(c *config) { c.queue = n } }

// WithErrorHandler is called, from the writer goroutine, for each event
// that could not be written or was dropped; it must not block for long.
func WithErrorHandler(f func(error)) Option { return func(c *config) { c.onError = f } }

// WithLogOptions passes options to auditlog.Open (a clock, fsync policy).
func WithLogOptions(opts ...auditlog.Option) Option {
	return func(c *config) { c.log = append(c.log, opts...) }
}

// ErrDropped is passed to the error handler for each dropped event.
var ErrDropped = errors.New("audit: queue full, event dropped")

type event struct {
	name   string
	fields map[string]any
}

// Recorder queues security events and writes them to an audit log. It is
// safe for concurrent use.
type Recorder struct {
	log     *auditlog.Logger
	onError func(error)
	queue   chan event
	done    chan struct{}

	mu      sync.Mutex // guards closed and dropped against Close
	closed  bool
	dropped uint64
}

// Open opens (or creates, mode 0600) the audit log at path, continuing its
// chain, with the HMAC key key (see keystore.Keystore.AuditLogKey), and
// starts the writer.
func Open(path string, key []byte, opts ...Option) (*Recorder, error) {
	c := config{queue: DefaultQueueSize, onError: func(error) {}}
	for _, o := range opts {
		o(&c)
	}
	l, err := auditlog.Open(path, key, c.log...)
	if err != nil {
		return nil, err
	}
	r := newRecorder(l, c)
	r.start()
	return r, nil
}

func newRecorder(l *auditlog.Logger, c config) *Recorder {
	return &Recorder{log: l, onError: c.onError, queue: make(chan event, c.queue), done: make(chan struct{})}
}

func (r *Recorder) start() {
	// The writer goroutine is owned by the Recorder; Close closes the
	// queue, which ends it once drained.
	go r.write()
}

func (r *Recorder) write() {
	defer close(r.done)
	for ev := range r.queue {
		if _, err := r.log.Append(context.Background(), ev.name, ev.fields); err != nil {
			r.onError(err)
		}
	}
}

// Record queues one event. It never blocks: with the queue full the event
// is dropped and counted. fields must not hold secrets.
func (r *Recorder) Record(name string, fields map[string]any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.dropped > 0 {
		select {
		case r.queue <- event{name: EventDropped, fields: map[string]any{"count": r.dropped}}:
			r.dropped = 0
		default:
			r.drop()
			return ErrDropped
		}
	}
	select {
	case r.queue <- event{name: name, fields: fields}:
		return nil
	default:
		r.drop()
		return ErrDropped
	}
}

// drop counts a dropped event; r.mu must be held.
func (r *Recorder) drop() {
	r.dropped++
	r.onError(ErrDropped)
}

// Close writes what is queued, records how many events were dropped if
// any, and closes the log. It is safe to call more than once.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		<-r.done
		return nil
	}
	r.closed = true
	close(r.queue)
	dropped := r.dropped
	r.mu.Unlock()
	<-r.done
	var errs []error
	if dropped > 0 {
		if _, err := r.log.Append(context.Background(), EventDropped, map[string]any{"count": dropped}); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, r.log.Close())
	return errors.Join(errs...)
}

// String describes the recorder without its key.
func (r *Recorder) String() string { return "audit.Recorder(" + r.log.String() + ")" }

func (r *Recorder) record(name string, fields map[string]any) { _ = r.Record(name, fields) }

// Started records that the proxy accepts clients on listen.
func (r *Recorder) Started(listen, upstream string) {
	r.record(EventStart, map[string]any{"listen": listen, "upstream": upstream})
}

// Stopped records that the proxy stopped.
func (r *Recorder) Stopped() { r.record(EventStop, map[string]any{}) }

// SessionOpened implements proxy.Observer; sessions are not audited.
func (r *Recorder) SessionOpened(string) {}

// SessionClosed implements proxy.Observer.
func (r *Recorder) SessionClosed() {}

// AuthFailed implements proxy.Observer.
func (r *Recorder) AuthFailed(user, remote, reason string) {
	r.record(EventAuthFailure, map[string]any{"user": user, "remote": remote, "reason": reason})
}

// TLSRefused implements proxy.Observer.
func (r *Recorder) TLSRefused(remote, reason string) {
	r.record(EventTLSRefused, map[string]any{"remote": remote, "reason": reason})
}

// UpstreamConnectFailed implements proxy.Observer; it is an operational
// event (see the metrics), not a security one.
func (r *Recorder) UpstreamConnectFailed(string) {}

// Statement implements datapath.Observer.
func (r *Recorder) Statement(string, string) {}

// Refused implements datapath.Observer: a statement refused by policy.
// The reason names tables and columns, never values.
func (r *Recorder) Refused(table, column, reason string) {
	f := map[string]any{"reason": reason}
	if table != "" {
		f["table"] = table
	}
	if column != "" {
		f["column"] = column
	}
	r.record(EventRefused, f)
}

// Encrypted implements datapath.Observer.
func (r *Recorder) Encrypted(int) {}

// Decrypted implements datapath.Observer.
func (r *Recorder) Decrypted(int) {}

// DecryptFailed implements datapath.Observer.
func (r *Recorder) DecryptFailed(column string) {
	r.record(EventDecryptFailure, map[string]any{"column": column})
}

// Reloaded records a policy or keystore load after start.
func (r *Recorder) Reloaded(ev reload.Event) {
	name := EventPolicyReload
	if ev.Source == reload.SourceKeystore {
		name = EventKeystoreReload
	}
	f := map[string]any{"cause": string(ev.Cause), "result": "success"}
	if ev.Err != nil {
		f["result"] = "failure"
		f["error"] = ev.Err.Error()
	}
	if ev.Policy != nil {
		f["policy"] = ev.Policy.File()
		f["tables"] = len(ev.Policy.Tables())
	}
	if ev.Keystore != nil {
		f["keystore_id"] = ev.Keystore.ID()
		primaries := map[string]uint32{}
		for _, s := range ev.Keystore.KeySets() {
			primaries[s.Name] = s.Primary
		}
		f["primary_versions"] = primaries
	}
	r.record(name, f)
}

var (
	_ proxy.Observer    = (*Recorder)(nil)
	_ datapath.Observer = (*Recorder)(nil)
)
