package proxy

// DataPath builds the per-session filters of the encryption data path. It is
// installed with WithDataPath and must be safe for concurrent use.
type DataPath interface {
	// NewSession returns the filter for a session that has just finished
	// authentication.
	NewSession(info SessionInfo) SessionFilter
}

// SessionInfo describes an authenticated session to a data path.
type SessionInfo struct {
	User     string
	Database string
	// Startup holds the parameters the client sent in its StartupMessage.
	Startup map[string]string
	// Server holds the ParameterStatus values the server reported during
	// startup (server_version, TimeZone, DateStyle, ...).
	Server map[string]string
}

// SessionFilter sees every message of one session after authentication.
//
// Client is called, in order, from the goroutine that reads the client;
// Server from the goroutine that reads the server. A filter synchronises the
// state the two share. Frames passed in are valid only during the call.
// Writes go to the other peer, buffered; the proxy flushes.
//
// An error returned by either method ends the session: a *Error is sent to
// the client as a FATAL ErrorResponse first. Statement-level refusals are not
// errors of this kind; a filter reports them in band, in order, through the
// server's responses.
type SessionFilter interface {
	Client(typ byte, frame []byte, toServer Writer) error
	Server(typ byte, frame []byte, toClient Writer) error
	// Close releases the filter's resources. It is called once, after both
	// goroutines have stopped.
	Close()
}

// Writer appends frames to a peer's buffered output. The frame is copied
// before Write returns.
type Writer interface {
	Write(frame []byte) (int, error)
}

// Observer receives session events for metrics and the audit log. It must be
// safe for concurrent use and must not block.
type Observer interface {
	SessionOpened(tlsVersion string)
	SessionClosed()
	AuthFailed(user, remote, reason string)
	TLSRefused(remote, reason string)
	UpstreamConnectFailed(reason string)
}

type nopObserver struct{}

func (nopObserver) SessionOpened(string)              {}
func (nopObserver) SessionClosed()                    {}
func (nopObserver) AuthFailed(string, string, string) {}
func (nopObserver) TLSRefused(string, string)         {}
func (nopObserver) UpstreamConnectFailed(string)      {}
