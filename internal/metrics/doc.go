// Package metrics is pgseal's Prometheus instrumentation and its health
// endpoints.
//
// Entry points: New builds a Metrics with its own registry (nothing is
// registered globally). A Metrics is a proxy.Observer and a
// datapath.Observer, so the command installs it with proxy.WithObserver and
// datapath.WithObserver; Analyzer and DataPath wrap the statement analyzer
// and the data path to time them; Reloaded and SetKeystore follow hot
// reloads and the keys in force. Handler serves /metrics, /healthz and
// /readyz, and Serve runs it on a listener.
//
// Every metric is named pgseal_*; see docs/operations.md for the list.
// Labels carry only bounded values the code chooses (TLS versions, statement
// kinds and outcomes, policy column and key set names), never statement
// text, values, user names or addresses.
//
// The package does not log and reads no configuration.
package metrics
