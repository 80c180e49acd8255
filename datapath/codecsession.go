package datapath

import (
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgseal/pgseal/codec"
)

// codecSession builds the value codec settings from the server's
// TimeZone and DateStyle parameters.
func codecSession(params map[string]string) *codec.Session {
	cs := &codec.Session{}
	if tz := params["TimeZone"]; tz != "" {
		if loc, err := time.LoadLocation(tz); err == nil {
			cs.Location = loc
		}
	}
	ds := strings.ToUpper(params["DateStyle"])
	switch {
	case strings.Contains(ds, "DMY"):
		cs.DateOrder = codec.DMY
	case strings.Contains(ds, "YMD"):
		cs.DateOrder = codec.YMD
	}
	return cs
}

// trackParameter follows changes of TimeZone and DateStyle. It runs on the
// server goroutine; the client goroutine reads the pointer.
func (s *session) trackParameter(frame []byte) {
	var ps pgproto3.ParameterStatus
	if ps.Decode(frame[5:]) != nil || (ps.Name != "TimeZone" && ps.Name != "DateStyle") {
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
