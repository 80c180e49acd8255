package sqlshape

import "testing"

// BenchmarkOf is what a statement costs at debug level.
func BenchmarkOf(b *testing.B) {
	const sql = `INSERT INTO customers (name, email, ssn, birth_date) VALUES ('Ann', 'ann@example.com', '123-45-6789', '1990-01-02') /* app */`
	b.ReportAllocs()
	for b.Loop() {
		Of(sql)
	}
}
