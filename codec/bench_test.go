package codec

import "testing"

func benchmarkRoundTrip(b *testing.B, t Type, format int16, in string) {
	wire := []byte(in)
	var c, out []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	start := processCPU()
	defer func() {
		// CPU time per operation is steadier than wall time on a machine
		// shared with other work.
		if cpu := processCPU() - start; cpu > 0 && b.N > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}()
	for b.Loop() {
		var err error
		c, err = Canonical(c[:0], t, format, wire)
		if err != nil {
			b.Fatal(err)
		}
		out, err = Encode(out[:0], t, format, c)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func binaryOf(b *testing.B, t Type, text string) string {
	c, err := Canonical(nil, t, TextFormat, []byte(text))
	if err != nil {
		b.Fatal(err)
	}
	out, err := Encode(nil, t, BinaryFormat, c)
	if err != nil {
		b.Fatal(err)
	}
	return string(out)
}

func BenchmarkCanonicalEncode(b *testing.B) {
	cases := []struct {
		name string
		typ  Type
		in   string
	}{
		{"int4", Int4, "123456789"},
		{"text", Text, "alice.smith@example.com"},
		{"numeric", Numeric, "-12345.6789000"},
		{"timestamptz", Timestamptz, "2024-01-15 10:20:30.123456+02"},
	}
	for _, tc := range cases {
		b.Run(tc.name+"/text", func(b *testing.B) { benchmarkRoundTrip(b, tc.typ, TextFormat, tc.in) })
		b.Run(tc.name+"/binary", func(b *testing.B) {
			benchmarkRoundTrip(b, tc.typ, BinaryFormat, binaryOf(b, tc.typ, tc.in))
		})
	}
}
