// Package proxy is pgseal's PostgreSQL wire-protocol proxy: the listener, TLS
// towards clients and towards the database, the startup and authentication
// relay, the per-session message loop, cancel requests and shutdown.
//
// Entry points: build a Server with New, run it with Serve on a listener (or
// ListenAndServe), stop it with Shutdown. A Server is safe for concurrent use.
//
// The proxy forwards every message it does not need to change as raw bytes.
// Where a data path is installed (WithDataPath) it hands the messages that
// carry statements, parameters, row descriptions and rows to it; without one
// it is a pure pass-through proxy.
//
// It does not parse SQL, hold keys or read configuration: cmd wires those in.
package proxy
