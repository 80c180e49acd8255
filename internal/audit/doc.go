// Package audit records pgseal's security events in the HMAC-chained audit
// log of package auditlog: authentication failures, TLS refusals,
// statements refused by policy, values that did not decrypt, policy and
// keystore reloads, and the proxy's start and stop.
//
// Entry point: Open returns a Recorder, which is a proxy.Observer and a
// datapath.Observer (the counting methods do nothing) and takes reload
// events through Reloaded. Close it to flush the queue and close the log.
// `pgseal audit verify FILE` checks a log it wrote.
//
// Events are queued and written by one goroutine, so the proxy never waits
// for the disk. A full queue drops events and counts them; once there is
// room again an "audit.dropped" entry records how many were lost, so the
// gap is itself in the chain. Entries hold names, addresses, SQLSTATE-style
// reasons and key versions: never statement values, keys or passwords.
//
// The package does not log.
package audit
