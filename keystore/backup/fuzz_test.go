package backup

import (
	"os"
	"testing"
)

// FuzzParse checks that Parse never panics on arbitrary input and that
// Open, with the golden identity, either refuses a mutated backup or
// returns exactly the golden keys.
func FuzzParse(f *testing.F) {
	golden, err := os.ReadFile("testdata/golden.backup")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden)
	f.Add(golden[:len(golden)/2])
	f.Add([]byte("pgseal-key-backup v1\n{}\n"))
	id := goldenIdentity(f)
	want := goldenExport(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		got, err := file.Open(id)
		if err != nil {
			return
		}
		sameKeys(t, got, want)
	})
}
