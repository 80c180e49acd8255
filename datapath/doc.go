// Package datapath is pgseal's encryption data path: the per-session filter
// the proxy installs (proxy.WithDataPath) to encrypt values bound for policy
// columns and decrypt them in result rows.
//
// Entry point: New builds a DataPath from a Snapshot (policy, statement
// analyzer and column ciphers); Swap replaces the snapshot on reload. Each
// session takes the current snapshot for each statement it analyses.
//
// What it does, message by message:
//
//   - Query and Parse: the statement is analysed (package rewrite). A
//     statement that touches no policy table is forwarded as it is. A refused
//     statement is replaced upstream by one that fails at once, and the
//     server's error is replaced by the refusal, so the server's
//     transaction and pipeline state match what the client is told. Literals
//     bound for policy columns are replaced by bytea literals of their
//     ciphertext; declared parameter types of policy parameters become bytea.
//   - Bind: parameters bound for policy columns are canonicalised, encrypted
//     and sent as binary bytea. After a Bind of a policy statement the
//     filter describes the portal itself, so it always knows the layout of
//     the rows that Execute will return.
//   - ParameterDescription and RowDescription: bytea OIDs of policy columns
//     become the declared types'.
//   - DataRow: policy columns are decrypted and re-encoded in the format the
//     client asked for.
//
// It keeps, per session, the server responses it expects in order (an
// expectation queue), so that each response is read in the context of the
// message that caused it, through pipelining and skip-to-Sync after errors.
//
// It does not parse SQL itself, hold keys or read configuration.
package datapath
