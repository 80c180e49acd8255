// Package codec converts values of the declared types of policy columns
// between their PostgreSQL wire representations (text and binary format) and
// a canonical byte encoding, which is what pgseal encrypts.
//
// The canonical encoding makes deterministic encryption useful: equal values
// give equal canonical bytes however the client spelled them ("1.0" and
// "1.00" as numeric, jsonb with keys in another order, timestamps in another
// style).
//
// It does not encrypt, and it does not know about tables or policies.
package codec
