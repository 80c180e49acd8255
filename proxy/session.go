package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/rs/zerolog"
)

// A session moves through these states, in order; it never goes back.
//
//	stateStartup  reading SSLRequest / GSSENCRequest / CancelRequest / StartupMessage
//	stateAuth     connected upstream, relaying or performing authentication
//	stateReady    both message pumps running (the data path, if any, tracks
//	              extended batches, skip-until-Sync and COPY within this state)
//	stateClosed   both connections closed
type sessionState int32

const (
	stateStartup sessionState = iota
	stateAuth
	stateReady
	stateClosed
)

// session is one client connection and its upstream connection.
type session struct {
	srv    *Server
	log    zerolog.Logger
	remote string

	client, server net.Conn
	clientTLS      bool
	tlsVersion     string
	user           string
	serverParams   map[string]string

	cr, sr *msgReader // client and server readers, kept from auth into the pumps

	state       atomic.Int32
	clientGone  atomic.Bool // the client loop has ended; server read errors are expected
	serverFatal bool        // the server sent a FATAL error: its hang-up is expected (server loop only)
	closeOnce   sync.Once
	fatalMu     sync.Mutex
	fatalErr    *Error // set once by fail; sent to the client by the server pump
	cancel      context.CancelFunc
}

func newSession(srv *Server, c net.Conn) *session {
	remote := c.RemoteAddr().String()
	return &session{
		srv:          srv,
		client:       c,
		remote:       remote,
		log:          srv.log.With().Str("client", remote).Logger(),
		serverParams: make(map[string]string),
	}
}

// run drives the session from startup to close.
func (s *session) run() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	defer cancel()
	defer s.closeConns()

	s.client.SetDeadline(time.Now().Add(handshakeTimeout))
	sm, err := s.clientStartup(ctx)
	if err != nil {
		if !errors.Is(err, errCancelHandled) {
			s.reportStartupError(err)
		}
		return
	}
	s.client.SetDeadline(time.Time{})
	s.user = sm.Parameters["user"]
	s.log = s.log.With().Str("user", s.user).Str("database", sm.Parameters["database"]).Logger()

	if !s.clientTLS && s.srv.tlsRequired {
		s.srv.obs.TLSRefused(s.remote, "client did not request TLS")
		s.sendClientError(Errorf(CodeInvalidAuthorization, "pgseal requires TLS: connect with sslmode=require or stronger").fatal())
		s.log.Info().Msg("refused plaintext client: TLS is required")
		return
	}

	s.state.Store(int32(stateAuth))
	s.server, err = s.srv.upstream.dial(ctx)
	if err != nil {
		s.srv.obs.UpstreamConnectFailed(err.Error())
		s.log.Error().Err(err).Str("upstream", s.srv.upstream.String()).Msg("failed to connect to upstream")
		e := Errorf(CodeConnectionFailure, "pgseal could not connect to the database server").fatal()
		e.Detail = err.Error()
		s.sendClientError(e)
		return
	}
	if s.shuttingDown() {
		return
	}
	s.cr = newMsgReader(s.client, s.srv.maxMsg)
	s.sr = newMsgReader(s.server, s.srv.maxMsg)
	if err := s.sendServer(sm); err != nil {
		s.log.Error().Err(err).Msg("failed to send startup message upstream")
		return
	}
	if err := s.authenticate(s.user); err != nil {
		if !errors.Is(err, errAuthFailed) {
			s.reportStartupError(err)
		} else {
			s.log.Info().Msg("authentication refused by server")
		}
		return
	}

	s.state.Store(int32(stateReady))
	s.srv.obs.SessionOpened(s.tlsVersion)
	defer s.srv.obs.SessionClosed()
	var filter SessionFilter
	if s.srv.dataPath != nil {
		filter = s.srv.dataPath.NewSession(SessionInfo{
			User:     s.user,
			Database: sm.Parameters["database"],
			Startup:  sm.Parameters,
			Server:   s.serverParams,
		})
		defer filter.Close()
	}
	s.pump(filter)
}

// reportStartupError tells the client about an error before the pumps run.
func (s *session) reportStartupError(err error) {
	var pe *Error
	if errors.As(err, &pe) {
		s.log.Warn().Err(err).Msg("session ended during startup")
		s.sendClientError(pe)
		return
	}
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	s.log.Info().Err(err).Msg("session ended during startup")
}

// pump runs the two message loops until either side ends.
func (s *session) pump(filter SessionFilter) {
	cw := bufio.NewWriterSize(s.client, writeBufSize)
	sw := bufio.NewWriterSize(s.server, writeBufSize)
	done := make(chan struct{})
	// The client→server goroutine is owned by pump: it ends when the client
	// hangs up or a write upstream fails, or when pump closes the
	// connections after the server→client loop has ended.
	go func() {
		defer close(done)
		err := s.clientLoop(filter, sw)
		if err != nil && !errors.Is(err, errTerminate) {
			s.fail(err)
		} else {
			s.clientGone.Store(true)
		}
		// Unblock the server loop: with the client gone nothing more
		// will come back that anyone reads.
		s.closeServer()
	}()
	s.serverLoop(filter, cw)
	s.closeConns()
	<-done
}

var errTerminate = errors.New("client sent Terminate")

// maxDrain bounds what the proxy reads of an oversize message before it
// answers with an error.
const maxDrain = 16 << 20

// clientLoop forwards messages from the client to the server.
func (s *session) clientLoop(filter SessionFilter, sw *bufio.Writer) error {
	for {
		if !s.cr.frameReady() {
			if err := sw.Flush(); err != nil {
				return nil // the server loop reports the upstream failure
			}
		}
		typ, frame, err := s.cr.next()
		if err != nil {
			if errors.Is(err, ErrMessageTooLarge) {
				s.client.SetReadDeadline(time.Now().Add(2 * time.Second))
				s.cr.drainOversize(maxDrain)
				return Errorf(CodeProgramLimitExceeded, "message from client exceeds the maximum size of %d bytes", s.srv.maxMsg).fatal().withCause(err)
			}
			if errors.Is(err, errMalformed) {
				return Errorf(CodeProtocolViolation, "malformed message from client").fatal().withCause(err)
			}
			return errTerminate // client went away
		}
		if filter != nil {
			err = filter.Client(typ, frame, sw)
		} else {
			_, err = sw.Write(frame)
		}
		if err != nil {
			return err
		}
		if typ == 'X' {
			sw.Flush()
			return errTerminate
		}
	}
}

// serverLoop forwards messages from the server to the client. When it ends
// because the server failed, it tells the client with an ErrorResponse.
func (s *session) serverLoop(filter SessionFilter, cw *bufio.Writer) {
	for {
		if !s.sr.frameReady() {
			if err := cw.Flush(); err != nil {
				return
			}
		}
		typ, frame, err := s.sr.next()
		if err != nil {
			e := s.takeFatal()
			if e == nil {
				if s.shuttingDown() || s.clientGone.Load() || s.serverFatal {
					return // the client side ended first, or the server said why
				}
				e = s.upstreamFailure(err)
			}
			s.writeClientError(cw, e)
			return
		}
		if typ == 'E' && isFatal(frame) {
			s.serverFatal = true
		}
		if filter != nil {
			err = filter.Server(typ, frame, cw)
		} else {
			_, err = cw.Write(frame)
		}
		if err != nil {
			var pe *Error
			if errors.As(err, &pe) {
				s.writeClientError(cw, pe.fatal())
			}
			return
		}
	}
}

// upstreamFailure logs err and returns the error the client is told.
func (s *session) upstreamFailure(err error) *Error {
	if errors.Is(err, ErrMessageTooLarge) {
		return Errorf(CodeProgramLimitExceeded, "message from server exceeds the maximum size of %d bytes", s.srv.maxMsg).fatal().withCause(err)
	}
	s.log.Warn().Err(err).Msg("upstream connection lost")
	return Errorf(CodeConnectionFailure, "pgseal lost the connection to the database server").fatal().withCause(err)
}

// fail records the first fatal error of the session and closes the server
// connection, so that the server loop ends and delivers it to the client.
func (s *session) fail(err error) {
	pe := asError(err)
	if pe.Severity == "" {
		pe.fatal()
	}
	s.fatalMu.Lock()
	if s.fatalErr == nil {
		s.fatalErr = pe
		s.log.Warn().Err(err).Msg("ending session")
	}
	s.fatalMu.Unlock()
	s.closeServer()
}

func (s *session) takeFatal() *Error {
	s.fatalMu.Lock()
	defer s.fatalMu.Unlock()
	e := s.fatalErr
	s.fatalErr = nil
	return e
}

// shutdown ends the session on the server's behalf.
func (s *session) shutdown() {
	if sessionState(s.state.Load()) != stateReady {
		s.closeConns()
		return
	}
	s.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
	s.fail(Errorf(CodeAdminShutdown, "terminating connection because pgseal is shutting down"))
}

func (s *session) shuttingDown() bool { return sessionState(s.state.Load()) == stateClosed }

func (s *session) writeClientError(cw *bufio.Writer, e *Error) {
	b, err := e.response().Encode(nil)
	if err == nil {
		cw.Write(b)
		cw.Flush()
	}
}

// sendClientError writes e to the client unbuffered (before the pumps run).
func (s *session) sendClientError(e *Error) {
	if b, err := e.response().Encode(nil); err == nil {
		s.client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		s.client.Write(b)
	}
}

func (s *session) toClient(frame []byte) error {
	_, err := s.client.Write(frame)
	return err
}

func (s *session) toServer(frame []byte) error {
	_, err := s.server.Write(frame)
	return err
}

func (s *session) closeServer() {
	if s.server != nil {
		s.server.Close()
	}
}

// closeConns closes both connections; safe to call more than once.
func (s *session) closeConns() {
	s.closeOnce.Do(func() {
		s.state.Store(int32(stateClosed))
		if s.cancel != nil {
			s.cancel()
		}
		s.client.Close()
		s.closeServer()
	})
}

// isFatal reports whether an ErrorResponse frame has severity FATAL or
// PANIC: the server ends the session after it.
func isFatal(frame []byte) bool {
	var e pgproto3.ErrorResponse
	if e.Decode(frame[5:]) != nil {
		return false
	}
	return e.SeverityUnlocalized == "FATAL" || e.SeverityUnlocalized == "PANIC" || e.Severity == "FATAL" || e.Severity == "PANIC"
}
