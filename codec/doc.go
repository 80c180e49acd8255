// Package codec converts values of the declared types of policy columns
// between their PostgreSQL wire representations (text and binary format) and
// a canonical byte encoding, which is what pgseal encrypts.
//
// The canonical encoding makes deterministic encryption useful: values that
// PostgreSQL considers equal give equal canonical bytes however the client
// spelled them ("1.0" and "1.00" as numeric, jsonb with keys in another
// order or with other whitespace, timestamps in another input style or time
// zone, uuids in upper case or with braces).
//
// # Entry points
//
//   - Canonical (or Session.Canonical) parses a client value in text
//     (format 0) or binary (format 1) format and appends its canonical
//     encoding. Use it on Bind parameters, literals and COPY fields bound
//     for a policy column, before encryption.
//   - Encode (or Session.Encode) appends a canonical value in the format a
//     client asked for: text as PostgreSQL prints it with DateStyle ISO,
//     binary as the type's send function writes it. Use it after
//     decryption, for DataRow values and COPY TO fields.
//   - A Session carries the client's TimeZone and DateStyle, updated from
//     ParameterStatus with SetParameter. A nil *Session means UTC and
//     "ISO, MDY".
//
// Both functions append to dst and never retain their inputs. A non-NULL
// empty value is returned as an empty, non-nil slice; NULL is the caller's
// business and never reaches this package.
//
// # Errors
//
// Errors are *ValueError values that wrap ErrInvalidValue (the client value
// is malformed or out of range), ErrUnsupported (unknown type or format
// code) or ErrCorrupt (bytes given to Encode are not canonical). Each
// carries the SQLSTATE PostgreSQL would report (22P02, 22P03, 22003, 22007,
// 22008, 22009, 22021, 22023, 22P05...), available through
// (*ValueError).SQLState or SQLState(err). Error messages name the type, the
// format and the problem, and never contain the value.
//
// # Canonical encodings
//
// The canonical encoding is part of the ciphertext contract: deterministic
// lookups compare ciphertexts of canonical bytes, so changing an encoding
// below breaks lookups of values stored before the change. The full
// specification with examples is docs/canonical.md; in short:
//
//	text, varchar  the UTF-8 bytes as given (valid UTF-8, no NUL; no Unicode normalisation)
//	int2/4/8       2/4/8 bytes, big-endian two's complement
//	numeric        ASCII plain decimal in normal form: "-12.5", "0", "0.001";
//	               no exponent, no leading zeros, no trailing fraction zeros,
//	               no negative zero; or "NaN", "Infinity", "-Infinity"
//	float4/8       4/8 bytes IEEE 754 big-endian; -0 stored as +0, every NaN
//	               as the quiet NaN 0x7fc00000 / 0x7ff8000000000000
//	bool           1 byte, 0x00 or 0x01
//	date           4 bytes big-endian int32 days since 2000-01-01;
//	               infinity 0x7fffffff, -infinity 0x80000000
//	timestamp      8 bytes big-endian int64 microseconds since 2000-01-01 00:00:00
//	timestamptz    the same, as a UTC instant; ±infinity are the int64 extremes
//	uuid           16 bytes
//	jsonb          UTF-8 JSON exactly as PostgreSQL prints jsonb: keys ordered
//	               by length then bytes, last duplicate wins, ", " and ": "
//	               separators, numbers in canonical numeric form
//	bytea          the raw bytes
//
// Two consequences a user sees: numeric values and jsonb numbers read back
// in normal form (1.50 is stored and shown as 1.5, since PostgreSQL holds
// 1.5 = 1.50 and an equality-searchable column must find one with the
// other), and float -0 reads back as 0.
//
// # What it does not do
//
// It does not encrypt, and it does not know about tables or policies. It
// assumes client_encoding UTF8. Text output follows DateStyle ISO only (the
// order part of DateStyle affects input). Type modifiers (varchar(n),
// numeric(p,s), timestamp(p)) are not applied: the database column is bytea
// and cannot apply them either.
package codec
