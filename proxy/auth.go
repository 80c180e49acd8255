package proxy

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Authentication request codes (AuthenticationXXX messages).
const (
	authOK                = 0
	authCleartextPassword = 3
	authMD5Password       = 5
	authGSS               = 7
	authGSSContinue       = 8
	authSSPI              = 9
	authSASL              = 10
	authSASLContinue      = 11
	authSASLFinal         = 12
)

// errAuthFailed ends a session whose authentication the server refused; the
// server's ErrorResponse has already been relayed to the client.
var errAuthFailed = errors.New("authentication failed")

// authenticate carries the client's authentication to the server, in the
// session's auth mode, until the server sends AuthenticationOk; then it relays
// the startup messages up to the first ReadyForQuery.
func (s *session) authenticate(user string) error {
	mode := s.srv.authMode
	if mode == AuthAuto {
		mode = AuthRelay
		if s.clientTLS {
			mode = AuthPassword
		}
	}
	if mode == AuthPassword && !s.clientTLS && s.srv.tlsRequired {
		mode = AuthRelay
	}
	var password []byte
	defer clear(password)
	getPassword := func() (string, error) {
		if password == nil {
			pw, err := s.askPassword()
			if err != nil {
				return "", err
			}
			password = pw
		}
		return string(password), nil
	}

	for {
		typ, frame, err := s.sr.next()
		if err != nil {
			return s.upstreamFailure(err)
		}
		switch typ {
		case 'R':
			b := body(frame)
			if len(b) < 4 {
				return Errorf(CodeProtocolViolation, "invalid authentication message from server").fatal()
			}
			switch sub := binary.BigEndian.Uint32(b); {
			case sub == authOK:
				if err := s.toClient(frame); err != nil {
					return err
				}
				return s.relayStartup()
			case mode == AuthPassword && sub == authCleartextPassword:
				pw, err := getPassword()
				if err != nil {
					return err
				}
				if err := s.sendServer(&pgproto3.PasswordMessage{Password: pw}); err != nil {
					return err
				}
			case mode == AuthPassword && sub == authMD5Password && len(b) >= 8:
				pw, err := getPassword()
				if err != nil {
					return err
				}
				resp := md5Response(user, pw, [4]byte(b[4:8]))
				if err := s.sendServer(&pgproto3.PasswordMessage{Password: resp}); err != nil {
					return err
				}
			case mode == AuthPassword && sub == authSASL:
				var m pgproto3.AuthenticationSASL
				if err := m.Decode(b); err != nil {
					return Errorf(CodeProtocolViolation, "invalid SASL offer from server").fatal()
				}
				pw, err := getPassword()
				if err != nil {
					return err
				}
				if err := s.scramUpstream(pw, m.AuthMechanisms); err != nil {
					return err
				}
			case sub == authSASL:
				if err := s.relaySASLOffer(b); err != nil {
					return err
				}
			case sub == authSASLFinal:
				if err := s.toClient(frame); err != nil {
					return err
				}
			default:
				// Cleartext, MD5, SASL continue, GSS, SSPI in relay
				// mode: the client answers each with one message.
				if err := s.toClient(frame); err != nil {
					return err
				}
				if err := s.relayClientAuthMessage(false); err != nil {
					return err
				}
			}
		case 'E':
			// Count before the client can see the error, so that whoever
			// reacts to it finds the event recorded.
			s.srv.obs.AuthFailed(user, s.remote, "refused by server")
			s.toClient(frame)
			return errAuthFailed
		case 'v', 'N':
			if err := s.toClient(frame); err != nil {
				return err
			}
		default:
			return Errorf(CodeProtocolViolation, "unexpected message %q from server during authentication", typ).fatal()
		}
	}
}

// askPassword asks the client for its password in cleartext. It is only
// called on TLS connections.
func (s *session) askPassword() ([]byte, error) {
	req, _ := (&pgproto3.AuthenticationCleartextPassword{}).Encode(nil)
	if err := s.toClient(req); err != nil {
		return nil, err
	}
	typ, frame, err := s.cr.next()
	if err != nil {
		return nil, err
	}
	if typ != 'p' {
		return nil, Errorf(CodeProtocolViolation, "expected password response, got message type %q", typ).fatal()
	}
	var pm pgproto3.PasswordMessage
	if err := pm.Decode(body(frame)); err != nil {
		return nil, Errorf(CodeProtocolViolation, "invalid password message").fatal()
	}
	return []byte(pm.Password), nil
}

// relaySASLOffer forwards the server's SASL mechanisms without
// SCRAM-SHA-256-PLUS: channel binding binds to the TLS connection the client
// sees, which pgseal terminates.
func (s *session) relaySASLOffer(b []byte) error {
	var m pgproto3.AuthenticationSASL
	if err := m.Decode(b); err != nil {
		return Errorf(CodeProtocolViolation, "invalid SASL offer from server").fatal()
	}
	m.AuthMechanisms = slices.DeleteFunc(m.AuthMechanisms, func(x string) bool { return x == mechSCRAMPlus })
	if len(m.AuthMechanisms) == 0 {
		return Errorf(CodeInvalidAuthorization, "server offers only SCRAM-SHA-256-PLUS, which cannot cross pgseal").fatal()
	}
	out, err := m.Encode(nil)
	if err != nil {
		return err
	}
	if err := s.toClient(out); err != nil {
		return err
	}
	return s.relayClientAuthMessage(true)
}

// relayClientAuthMessage forwards one authentication message from the client.
// For a SASLInitialResponse it first checks the channel-binding flag.
func (s *session) relayClientAuthMessage(saslInitial bool) error {
	typ, frame, err := s.cr.next()
	if err != nil {
		return err
	}
	if typ != 'p' {
		return Errorf(CodeProtocolViolation, "expected authentication response, got message type %q", typ).fatal()
	}
	if saslInitial {
		var m pgproto3.SASLInitialResponse
		if err := m.Decode(body(frame)); err != nil {
			return Errorf(CodeProtocolViolation, "invalid SASL initial response").fatal()
		}
		if m.AuthMechanism == mechSCRAMPlus {
			return Errorf(CodeInvalidAuthorization, "SCRAM-SHA-256-PLUS was not offered").fatal()
		}
		if _, upTLS := s.server.(*tls.Conn); upTLS && len(m.Data) > 0 && m.Data[0] == 'y' {
			e := Errorf(CodeInvalidAuthorization, "SCRAM channel binding cannot cross pgseal in relay auth mode").fatal()
			e.Hint = "Connect with channel_binding=disable, or run pgseal with auth.mode=password (the default for TLS clients)."
			return e
		}
	}
	return s.toServer(frame)
}

// scramUpstream authenticates to the server with SCRAM-SHA-256 (or -PLUS,
// bound to the upstream TLS connection) using the client's password.
func (s *session) scramUpstream(password string, offered []string) error {
	var state *tls.ConnectionState
	if tc, ok := s.server.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		state = &cs
	}
	sc, err := newSCRAMClient(password, offered, state)
	if err != nil {
		return Errorf(CodeInvalidAuthorization, "%v", err).fatal()
	}
	if err := s.sendServer(&pgproto3.SASLInitialResponse{AuthMechanism: sc.mechanism, Data: sc.first()}); err != nil {
		return err
	}
	serverFirst, err := s.saslStep(authSASLContinue)
	if err != nil || serverFirst == nil {
		return err
	}
	final, err := sc.final(serverFirst)
	if err != nil {
		return Errorf(CodeProtocolViolation, "%v", err).fatal()
	}
	if err := s.sendServer(&pgproto3.SASLResponse{Data: final}); err != nil {
		return err
	}
	serverFinal, err := s.saslStep(authSASLFinal)
	if err != nil || serverFinal == nil {
		return err
	}
	if err := sc.verify(serverFinal); err != nil {
		return Errorf(CodeInvalidAuthorization, "the database server failed to prove its identity (SCRAM)").fatal().withCause(err)
	}
	return nil
}

// saslStep reads the next SASL message from the server. An ErrorResponse is
// relayed to the client and reported as errAuthFailed.
func (s *session) saslStep(want uint32) ([]byte, error) {
	typ, frame, err := s.sr.next()
	if err != nil {
		return nil, s.upstreamFailure(err)
	}
	switch typ {
	case 'E':
		s.srv.obs.AuthFailed(s.user, s.remote, "refused by server")
		s.toClient(frame)
		return nil, errAuthFailed
	case 'R':
		b := body(frame)
		if len(b) >= 4 && binary.BigEndian.Uint32(b) == want {
			return append([]byte(nil), b[4:]...), nil
		}
	}
	return nil, Errorf(CodeProtocolViolation, "unexpected message %q during SCRAM exchange", typ).fatal()
}

// relayStartup forwards ParameterStatus, BackendKeyData and notices up to the
// first ReadyForQuery, recording the server's parameters.
func (s *session) relayStartup() error {
	for {
		typ, frame, err := s.sr.next()
		if err != nil {
			return s.upstreamFailure(err)
		}
		switch typ {
		case 'S':
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body(frame)); err == nil {
				s.serverParams[ps.Name] = ps.Value
			}
		case 'E':
			s.toClient(frame)
			return errAuthFailed
		}
		if err := s.toClient(frame); err != nil {
			return err
		}
		if typ == 'Z' {
			return nil
		}
	}
}

// sendServer encodes msg and writes it to the server unbuffered.
func (s *session) sendServer(msg pgproto3.FrontendMessage) error {
	b, err := msg.Encode(nil)
	if err != nil {
		return fmt.Errorf("failed to encode %T: %w", msg, err)
	}
	return s.toServer(b)
}
