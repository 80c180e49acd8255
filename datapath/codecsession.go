package datapath

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/codec"
)

// codecSession builds the value codec settings from the server's
// TimeZone and DateStyle parameters. A value the codec does not accept
// leaves its default (UTC, ISO MDY).
func codecSession(params map[string]string) *codec.Session {
	cs := &codec.Session{}
	for _, name := range []string{"TimeZone", "DateStyle"} {
		if v, ok := params[name]; ok {
			_ = cs.SetParameter(name, v)
		}
	}
	return cs
}

// trackParameter follows changes of TimeZone and DateStyle. It runs on the
// server goroutine; the client goroutine reads the pointer.
func (s *session) trackParameter(frame []byte) {
	var ps pgproto3.ParameterStatus
	if ps.Decode(frame[5:]) != nil {
		return
	}
	if ps.Name == "client_encoding" {
		s.nonUTF8.Store(!utf8Encoding(ps.Value))
		return
	}
	if ps.Name != "TimeZone" && ps.Name != "DateStyle" {
		return
	}
	s.mu.Lock()
	params := make(map[string]string, len(s.params)+1)
	for k, v := range s.params {
		params[k] = v
	}
	params[ps.Name] = ps.Value
	s.params = params
	s.mu.Unlock()
	s.csp.Store(codecSession(params))
}

// utf8Encoding reports whether a client_encoding sends text as UTF-8 bytes
// (SQL_ASCII passes bytes unconverted).
func utf8Encoding(enc string) bool {
	switch strings.ToUpper(strings.ReplaceAll(enc, "-", "")) {
	case "", "UTF8", "UNICODE", "SQL_ASCII":
		return true
	}
	return false
}

// textual reports whether values of a declared type are text the server
// would convert to the client's encoding.
func textual(t codec.Type) bool {
	return t == codec.Text || t == codec.Varchar || t == codec.JSONB
}
