package copyfmt

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// benchRows are typical rows: an id, a name, a number, a timestamp, an
// optional note with characters that need escaping, and a NULL.
func benchRows(n int) [][][]byte {
	rows := make([][][]byte, n)
	for i := range rows {
		note := []byte(nil)
		if i%3 == 0 {
			note = []byte(fmt.Sprintf("note %d, with \"quotes\"\tand tab", i))
		}
		rows[i] = [][]byte{
			[]byte(fmt.Sprint(i)),
			[]byte(fmt.Sprintf("user-%d@example.com", i)),
			[]byte(fmt.Sprintf("%d.%02d", i*7, i%100)),
			[]byte("2024-01-15 10:20:30.123456+00"),
			note,
			nil,
		}
	}
	return rows
}

func benchData(b *testing.B, o Options) []byte {
	w, err := NewWriter(o)
	if err != nil {
		b.Fatal(err)
	}
	out, _ := w.AppendHeader(nil)
	for _, r := range benchRows(20000) {
		if out, err = w.AppendRow(out, r); err != nil {
			b.Fatal(err)
		}
	}
	if o.Format == Binary {
		out = w.AppendEnd(out)
	}
	return out
}

// reportCPUThroughput adds an MB per CPU-second metric, steadier than MB/s
// on a machine shared with other work. Call it before the loop and defer
// the function it returns.
func reportCPUThroughput(b *testing.B, size int) func() {
	start := processCPU()
	return func() {
		if cpu := processCPU() - start; cpu > 0 && b.N > 0 {
			b.ReportMetric(float64(size)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
		}
	}
}

// BenchmarkRead parses about 1-2 MB of COPY data fed in 64 KiB chunks, as
// CopyData messages would bring it.
func BenchmarkRead(b *testing.B) {
	for _, o := range []Options{{Format: Text}, {Format: CSV}, {Format: Binary}} {
		b.Run(o.Format.String(), func(b *testing.B) {
			data := benchData(b, o)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			defer reportCPUThroughput(b, len(data))()
			for b.Loop() {
				rd, _ := NewReader(o)
				rows := 0
				for off := 0; off < len(data); off += 64 << 10 {
					if err := rd.Feed(data[off:min(off+64<<10, len(data))]); err != nil {
						b.Fatal(err)
					}
					for {
						_, err := rd.Next()
						if errors.Is(err, ErrNeedMore) || err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
						rows++
					}
				}
				if rows < 20000 {
					b.Fatalf("%d rows", rows)
				}
			}
		})
	}
}

// BenchmarkWrite serialises the same rows.
func BenchmarkWrite(b *testing.B) {
	rows := benchRows(20000)
	for _, o := range []Options{{Format: Text}, {Format: CSV}, {Format: Binary}} {
		b.Run(o.Format.String(), func(b *testing.B) {
			w, _ := NewWriter(o)
			size := len(benchData(b, o))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			defer reportCPUThroughput(b, size)()
			var out []byte
			for b.Loop() {
				out = out[:0]
				for _, r := range rows {
					out, _ = w.AppendRow(out, r)
				}
			}
		})
	}
}
