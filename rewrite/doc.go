// Package rewrite analyses SQL statement texts against a policy: which
// parameters and literals are bound for encrypted columns, which result
// columns carry ciphertext, and what a session must remember (prepared
// statements, search_path). It refuses, with a SQLSTATE, every statement
// that touches an encrypted column in a way it cannot account for.
//
// Entry points: New builds an Analyzer from a *policy.Policy (and optionally
// a Catalog); (*Analyzer).Analyze returns a *Plan for a query text, cached
// by (text, search_path); (*Plan).Rewrite replaces bound literals with
// bytea ciphertext literals; (*Plan).BindExecute completes SQL-level
// EXECUTE plans from the session's prepared statements.
//
// # Fast path
//
// Before parsing, Analyze scans the text for identifier-like words. A text
// in which no word (case-folded, truncated to 63 bytes) is the name of a
// policy table, policy column or catalog-listed view over one, and which
// holds none of the words that have session effects (EXECUTE, PREPARE,
// DEALLOCATE, DISCARD, RESET, search_path, set_config, SCHEMA) and no U&""
// identifier, cannot name a policy table: it passes through unparsed.
// Words inside strings and comments count too, which only costs a parse.
//
// # Rules
//
// Deterministic columns allow =, <>, IN (...), IS [NOT] DISTINCT FROM and
// IS [NOT] NULL against a literal, a parameter or NULL, joins of a column
// with itself (self-joins), GROUP BY, DISTINCT, PARTITION BY, count(col) and
// count(DISTINCT col). Randomized columns allow storage, retrieval, IS [NOT]
// NULL and count(col). Everything else that compares, orders, aggregates,
// transforms or casts an encrypted column is refused with SQLSTATE 0A000 and
// a message naming the column, its mode and the operation.
//
// Ciphertext is bound to its column (associated data), so values of two
// different encrypted columns never compare equal and cannot be copied
// from one to the other: joins between different encrypted columns, UNION
// (without ALL), INTERSECT and EXCEPT across different columns, and
// INSERT ... SELECT or UPDATE SET moving one column's ciphertext into
// another are refused. UNION ALL of columns with the same key set and
// declared type is allowed: the result lists the candidate columns.
//
// A cast on a literal or parameter bound for an encrypted column is
// removed (the server must see bytea) when it casts to the declared type
// (text and varchar count as one); any other cast is refused. Statement
// texts that mention a policy name but do not parse are refused with
// SQLSTATE 42601, never passed on.
//
// # Results and RowDescription
//
// Statement.Results lists, by output position, the policy column each
// output carries. PostgreSQL's RowDescription reports the table OID and
// attribute number of outputs that are plain table columns (also through
// subqueries and CTEs), but a view's OID for view columns and nothing for
// UNION outputs or computed values; the analysis supplies those. When
// SELECT * meets a table whose columns the catalog cannot list, positions
// are unknown: if every output that can carry ciphertext is a direct table
// column, Statement.ResultsFromRowDescription is set and the caller decides
// each field from RowDescription; otherwise the statement is refused. The
// caller should also decrypt by RowDescription's table OID and attribute
// number whenever a plan says nothing (pass-through plans, FETCH from a
// cursor), and treat a field RowDescription attributes to a policy column
// but Results does not as an internal error.
//
// # Names
//
// Identifiers follow PostgreSQL: unquoted names are folded to lower case by
// the parser, quoted names keep their case. Unqualified relation names
// resolve through pg_catalog (unless listed) and then the search_path given
// to Analyze; "$user" entries are skipped, so callers substitute the
// session user first. CTE names shadow tables, aliases shadow relation
// names. Without a Catalog, an unqualified name resolves to the first
// policy table of that name on the path (pgseal cannot know whether an
// earlier schema holds a table of that name), and a column name that may
// belong to a relation of unknown columns at an inner level while an outer
// level has a policy column of that name is refused as ambiguous.
//
// # What it does not do
//
// It does not encrypt, talk to the database, or read keys. It cannot see
// into function, procedure, trigger or DO bodies (those that mention a
// policy name are refused at creation), does not follow writes into a
// partition named directly (list partitions in the policy), and learns
// about views only from the Catalog: views created after New are seen once
// the caller builds a new Analyzer. A transaction rollback that undoes a SET
// search_path is the session's to track. COPY of encrypted columns is
// refused until COPY support lands; Statement.Copy describes the COPY.
package rewrite
