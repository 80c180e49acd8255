package rewrite

import (
	"strconv"
	"testing"
)

const benchSQL = "INSERT INTO users (id, email, ssn) VALUES ($1, $2, $3) ON CONFLICT (email) DO UPDATE SET ssn = EXCLUDED.ssn RETURNING id, email"

func BenchmarkAnalyzeHit(b *testing.B) {
	az := New(loadTestPolicy(b), WithCatalog(newTestCatalog()))
	path := []string{"public"}
	if _, err := az.Analyze(benchSQL, path); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := az.Analyze(benchSQL, path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnalyzeMiss(b *testing.B) {
	az := New(loadTestPolicy(b), WithCatalog(newTestCatalog()), WithCacheSize(0, 0))
	path := []string{"public"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := az.Analyze(benchSQL, path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnalyzeMissLiterals(b *testing.B) {
	az := New(loadTestPolicy(b), WithCatalog(newTestCatalog()))
	path := []string{"public"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		sql := "SELECT id, email FROM users WHERE email = 'user" + strconv.Itoa(i) + "@example.com'"
		if _, err := az.Analyze(sql, path); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnalyzeFastPath(b *testing.B) {
	az := New(loadTestPolicy(b), WithCatalog(newTestCatalog()))
	sql := "SELECT o.id, o.total, o.note FROM orders o WHERE o.user_id = $1 AND o.total > 100 ORDER BY o.id LIMIT 50"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := az.Analyze(sql, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRewrite(b *testing.B) {
	az := New(loadTestPolicy(b), WithCatalog(newTestCatalog()))
	sql := "INSERT INTO users (email, ssn) VALUES ('a@b.c', '123-45-6789')"
	plan, err := az.Analyze(sql, []string{"public"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := plan.Rewrite(sql, fakeEncrypt); err != nil {
			b.Fatal(err)
		}
	}
}
