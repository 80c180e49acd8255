package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"

	"github.com/rs/zerolog"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("proxy: server closed")

// Server accepts client connections and proxies each to the upstream
// PostgreSQL. It is safe for concurrent use.
type Server struct {
	upstream    *Upstream
	clientTLS   *tls.Config
	tlsRequired bool
	log         zerolog.Logger
	maxMsg      int
	authMode    AuthMode
	dataPath    DataPath
	obs         Observer

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   bool
	wg        sync.WaitGroup // one per session goroutine
	idle      chan struct{}  // closed when closing and no session is left
}

// New returns a Server proxying to upstream.
func New(upstream *Upstream, opts ...Option) *Server {
	s := &Server{
		upstream:    upstream,
		tlsRequired: true,
		log:         zerolog.Nop(),
		maxMsg:      DefaultMaxMessageSize,
		obs:         nopObserver{},
		listeners:   make(map[net.Listener]struct{}),
		sessions:    make(map[*session]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Serve accepts connections on l until Shutdown or Close. It always returns a
// non-nil error; after Shutdown or Close it is ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		sess := newSession(s, c)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.sessions[sess] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		// The session goroutine is owned by the Server: it ends when the
		// session ends, and Close ends every session.
		go func() {
			defer s.wg.Done()
			sess.run()
			s.mu.Lock()
			delete(s.sessions, sess)
			if s.closing && len(s.sessions) == 0 && s.idle != nil {
				close(s.idle)
				s.idle = nil
			}
			s.mu.Unlock()
		}()
	}
}

// ListenAndServe listens on the TCP address addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(l)
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown stops accepting connections and waits for open sessions to end
// until ctx is done; then it closes the remaining sessions, telling their
// clients the server is shutting down (SQLSTATE 57P01). It returns ctx.Err()
// when it had to close sessions.
func (s *Server) Shutdown(ctx context.Context) error {
	idle := s.beginClose()
	select {
	case <-idle:
		s.wg.Wait()
		return nil
	case <-ctx.Done():
	}
	s.closeSessions()
	s.wg.Wait()
	return ctx.Err()
}

// Close stops accepting connections and closes every session at once. It is
// safe to call more than once.
func (s *Server) Close() error {
	s.beginClose()
	s.closeSessions()
	s.wg.Wait()
	return nil
}

func (s *Server) beginClose() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	ch := make(chan struct{})
	if len(s.sessions) == 0 {
		close(ch)
	} else {
		s.idle = ch
	}
	return ch
}

func (s *Server) closeSessions() {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		list = append(list, sess)
	}
	s.mu.Unlock()
	for _, sess := range list {
		sess.shutdown()
	}
}
