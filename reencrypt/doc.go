// Package reencrypt changes encrypted data in place while the application
// keeps running: it re-encrypts the values of policy columns under the
// primary key version after a rotation, and it migrates a plaintext column
// to an encrypted one (and back) without downtime.
//
// Entry points:
//
//   - [ParseDSN] or [NewDB] says where the database is. The engine opens
//     its own connections, with the session settings it relies on.
//   - [Run] re-encrypts the chosen columns of one table ([Target]) and
//     returns a [Result] with the counts per key version before and after.
//     `pgseal reencrypt` calls it per table.
//   - [Count] counts the values of columns per key version without
//     changing anything (`reencrypt --dry-run`); [CountPolicy] does it for
//     every column of a policy (`keys disable --check-db`).
//   - [Migrate] runs `encrypt-column` or `decrypt-column` up to the
//     backfill or, with MigrateOptions.Finish, through the switch; [Abort]
//     undoes a migration that has not switched; [MigrationState] reads
//     where one stands.
//
// How it stays safe next to a live application. Tables are walked by
// primary key (keyset pagination, composite keys included), one page per
// short statement. A page's update only changes a row that still holds the
// value that was read (compare-and-swap on the bytea or text value) and
// skips rows the application has locked, so an application write is never
// overwritten and the engine never waits on, or deadlocks with, an
// application transaction; rows that changed are re-read and tried again.
// A run holds no state of its own: killed at any moment, it is run again
// and continues from what the data says.
//
// Migrations add a shadow column next to the source column, with a
// trigger that empties the shadow whenever the application changes the
// source, so the backfill (the same compare-and-swap pages) converges; the
// switch fills the rows written since the last pass and swaps the columns
// in one short transaction under an ACCESS EXCLUSIVE lock with a bounded
// wait. The steps are recorded in a pgseal_migrations table in the
// table's schema. docs/migration.md is the runbook, docs/rotation.md the
// rotation procedure.
//
// The package does not read configuration, log or decide which columns to
// work on: the CLI resolves the policy and the keystore into ciphers. It
// never puts a plaintext or a key in an error.
package reencrypt
