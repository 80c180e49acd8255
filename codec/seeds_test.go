package codec

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

type seed struct {
	typ   Type
	input []byte
}

// loadSeeds reads testdata/seeds.txt.
func loadSeeds(tb testing.TB) []seed {
	tb.Helper()
	f, err := os.Open("testdata/seeds.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []seed
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, quoted, ok := strings.Cut(text, "\t")
		typ, okType := ParseType(name)
		value, err := strconv.Unquote(quoted)
		if !ok || !okType || err != nil {
			tb.Fatalf("testdata/seeds.txt:%d: malformed seed", line)
		}
		out = append(out, seed{typ, []byte(value)})
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}
