// Package auditlog is an append-only log of security events in JSON lines,
// each entry chained to the one before it with HMAC-SHA256, so that an
// edited, reordered, inserted or deleted entry breaks the chain.
//
// Entry points: [Open] a log for appending, [Logger.Append] an event,
// [Verify] a whole log. pgseal records key-lifecycle events (keys init, add,
// rotate, disable, rewrap) and, later, the proxy's security events.
//
// One line is one entry:
//
//	{"seq":1,"time":"2026-01-02T03:04:05.000000006Z","event":"keys.add","fields":{"key_set":"pii"},"prev":"","mac":"<64 hex>"}
//
// mac is HMAC-SHA256, under the log key, of the label
// "pgseal/auditlog/v1 entry", a zero byte, and the line's bytes without the
// mac member (up to and including the closing brace, i.e. the line with
// `,"mac":"..."` removed). prev is the previous entry's mac, empty for the
// first entry; seq counts from 1. The key comes from the keystore (see
// keystore.Keystore.AuditLogKey and docs/keystore.md).
//
// What the chain cannot show: entries cut off the end of the log. Verify
// returns the count and the last mac so that an operator can anchor them
// elsewhere. The package assumes one writer per file at a time.
//
// Fields must never hold secrets: the log is integrity-protected, not
// encrypted. The package does not log anything itself.
package auditlog
