// Package sqlshape reduces a statement text to its shape, for logs: every
// literal (strings, dollar-quoted bodies, numbers, bit strings) becomes "?"
// and every comment disappears, so that what remains names tables,
// columns, keywords and operators but carries no value.
//
// Entry point: Of. It uses PostgreSQL's own lexer (pg_query_go's Scan), so
// it works on statements that do not parse; a text the lexer rejects (an
// unterminated quote) is not shown at all.
//
// Why not pg_query's Normalize: it keeps comments, and it keeps the bodies
// of PREPARE and the arguments of EXECUTE, where values are found.
package sqlshape
