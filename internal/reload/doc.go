// Package reload keeps pgseal's policy and keystore current while the proxy
// runs: it loads both files, builds the data path's snapshot from them, and
// swaps a new snapshot in whole when a file changes, on request (SIGHUP), or
// when a stored value names a key version this process has not loaded yet.
//
// Entry points: New loads the files once and fails if either is unusable;
// Attach names the data path that receives new snapshots; Run polls the
// files until its context ends; Reload reloads both at once. Every attempt
// is reported to the observer (WithObserver) as an Event, success or not.
//
// A file that fails to load, or a pair that does not fit together (a
// policy naming a key set the keystore lacks), leaves the snapshot in force
// untouched. A content that failed is not retried until it changes again,
// so a broken file is reported once, not at every poll. Sessions take the
// snapshot per statement, so a statement sees either the old files or the
// new ones, never a mix.
//
// The snapshot's ciphers implement datapath.Refresher: meeting a version of
// a column's key set that the loaded keystore does not know, the data path
// asks for one reload of the keystore before it fails the value. Such
// reloads are rate-limited (WithRefreshInterval) so that crafted ciphertext
// cannot keep the process reading its keystore.
//
// The package does not log, read configuration or handle signals: the
// command wires those in.
package reload
