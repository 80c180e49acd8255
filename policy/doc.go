// Package policy is the typed form of a pgseal policy file: which columns of
// which tables must be stored encrypted, with their declared type, their
// encryption mode and the key set that protects them.
//
// Load (or Parse) reads a policy strictly: an unknown key, a duplicate table
// or column, an unknown type or mode, or a missing key set is an error that
// names the file and line. Every problem found is reported, each as an
// *Error, joined with errors.Join. Key sets are checked later against the
// keystore with (*Policy).Validate.
//
// The file looks like this:
//
//	version: 1
//	tables:
//	  public.users:
//	    email: {type: text, mode: deterministic, key: pii}
//	  payroll:               # unqualified: public.payroll
//	    salary: {type: numeric, mode: randomized, key: finance}
//	  '"MixedCase".Accounts': # quoted parts keep their case
//	    '"IBAN"': {type: text, mode: randomized, key: finance}
//
// Table and column names follow PostgreSQL's rules for identifiers: an
// unquoted name is folded to lower case, a double-quoted name keeps its case
// (write "" for a double quote inside it), and a table name without a schema
// is in schema public. Names longer than 63 bytes are rejected rather than
// truncated. In YAML, a name that starts with a double quote has to be
// written inside single quotes.
//
// A loaded *Policy is immutable and safe for concurrent use; a reload builds
// a new one. The package does not encrypt, read keys or talk to the database.
package policy
