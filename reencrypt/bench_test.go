package reencrypt

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/pgseal/pgseal/envelope"
	"github.com/pgseal/pgseal/policy"
)

// BenchmarkRun re-encrypts a table of two encrypted columns once per
// iteration, rotating first. PGSEAL_BENCH_ROWS sets its size (default
// 100000). It reports rows per second; scripts/bench-reencrypt.sh runs the
// CLI on a million rows, with and without an application workload.
func BenchmarkRun(b *testing.B) {
	n := 100_000
	if s := os.Getenv("PGSEAL_BENCH_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	for _, batch := range []int{500, 1000, 2000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			k := newKeys(b)
			name := fmt.Sprintf("bench_run_%d", batch)
			c := conn(b)
			exec(b, c, fmt.Sprintf(`CREATE TABLE %s (id int8 PRIMARY KEY, email bytea, ssn bytea)`, name))
			email := k.cipher(b, name, "email", envelope.Deterministic)
			ssn := k.cipher(b, name, "ssn", envelope.Randomized)
			e1, s1 := seal(b, email, "someone@example.com"), seal(b, ssn, "123-45-6789")
			exec(b, c, fmt.Sprintf(`INSERT INTO %s SELECT g, $1, $2 FROM generate_series(1, %d) g`, name, n), e1, s1)
			exec(b, c, "VACUUM ANALYZE "+name)
			b.ResetTimer()
			var rows int64
			for b.Loop() {
				b.StopTimer()
				k.rotate(b)
				email := k.cipher(b, name, "email", envelope.Deterministic)
				ssn := k.cipher(b, name, "ssn", envelope.Randomized)
				b.StartTimer()
				res, err := Run(testCtx(b), testDB(b), Target{Table: policy.QualifiedName{Schema: "public", Name: name},
					Columns: []Column{{"email", email}, {"ssn", ssn}}}, Options{BatchSize: batch})
				if err != nil {
					b.Fatal(err)
				}
				rows += res.Rewritten
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
