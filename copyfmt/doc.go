// Package copyfmt reads and writes the data of PostgreSQL's COPY command in
// its three formats: text, CSV and binary. It is independent of the proxy:
// it sees bytes, not messages, and knows nothing of encryption.
//
// A Reader is fed the data in chunks of any size (the payloads of CopyData
// messages, whose boundaries need not match row boundaries) and returns
// complete rows as field slices, NULL (nil) distinguished from an empty
// value. It keeps at most one incomplete row buffered, bounded by
// Options.MaxRowSize, so memory does not grow with the size of the copy. A
// Writer appends rows to a buffer in the same format, with the same options,
// exactly as PostgreSQL's COPY TO writes them: data a Reader parses from
// PostgreSQL's output is written back byte for byte.
//
// Options holds the options of the COPY statement (FORMAT, DELIMITER, NULL,
// QUOTE, ESCAPE, HEADER, FORCE_QUOTE, FORCE_NOT_NULL, FORCE_NULL and the
// column list); it is validated as PostgreSQL validates it. Header lines
// and the binary file header come out of a Reader as a Row with Header set,
// to be passed on as they were read.
//
// Semantics follow PostgreSQL 15 to 17: text-format backslash escapes
// (\b \f \n \r \t \v \\ \ooo \xhh), the NULL string compared before
// de-escaping (text) or only when unquoted (CSV), FORCE_NOT_NULL and
// FORCE_NULL applied by the Reader, FORCE_QUOTE by the Writer, a consistent
// line terminator (\n, \r\n or \r) across the data, the end-of-data marker
// `\.` (anywhere in a text line, alone on a line in CSV), and the binary
// signature, flags, header extension, field counts, -1 for NULL and the -1
// trailer. A Writer always ends lines with \n.
//
// It does not convert encodings: the data must be in an encoding where
// bytes below 0x80 are always ASCII (UTF-8 and every PostgreSQL server
// encoding). It refuses the DEFAULT option (PostgreSQL 16) rather than
// guess at it. Errors never contain row data.
package copyfmt
