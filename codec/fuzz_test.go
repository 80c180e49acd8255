package codec

import (
	"strings"
	"testing"
)

// addSeeds seeds f with testdata/seeds.txt, in text form or, for binary
// targets, as the binary encoding of each seed.
func addSeeds(f *testing.F, format int16) {
	for _, sd := range loadSeeds(f) {
		in := sd.input
		if format == BinaryFormat {
			c, err := Canonical(nil, sd.typ, TextFormat, sd.input)
			if err != nil {
				f.Fatalf("seed %s %q: %v", sd.typ, sd.input, err)
			}
			if in, err = Encode(nil, sd.typ, BinaryFormat, c); err != nil {
				f.Fatalf("seed %s %q: %v", sd.typ, sd.input, err)
			}
		}
		f.Add(uint8(sd.typ), in)
	}
}

func fuzzType(t uint8) Type { return Type(t%uint8(Bytea) + 1) }

// checkNoValueInError fails when an error message quotes a long input.
func checkNoValueInError(t *testing.T, err error, in []byte) {
	if err != nil && len(in) >= 16 && strings.Contains(err.Error(), string(in)) {
		t.Fatalf("error quotes the value: %v", err)
	}
}

func FuzzCanonicalText(f *testing.F) {
	addSeeds(f, TextFormat)
	f.Fuzz(func(t *testing.T, typ uint8, in []byte) {
		ty := fuzzType(typ)
		_, err := Canonical(nil, ty, TextFormat, in)
		checkNoValueInError(t, err, in)
		if msg := checkRoundTrip(nil, ty, TextFormat, in); msg != "" {
			t.Fatalf("%s %q: %s", ty, in, msg)
		}
	})
}

func FuzzCanonicalBinary(f *testing.F) {
	addSeeds(f, BinaryFormat)
	f.Fuzz(func(t *testing.T, typ uint8, in []byte) {
		ty := fuzzType(typ)
		_, err := Canonical(nil, ty, BinaryFormat, in)
		checkNoValueInError(t, err, in)
		if msg := checkRoundTrip(nil, ty, BinaryFormat, in); msg != "" {
			t.Fatalf("%s %x: %s", ty, in, msg)
		}
	})
}

// FuzzEncode feeds arbitrary bytes to Encode as if they were canonical: it
// must refuse or write something that reads back to the same bytes.
func FuzzEncode(f *testing.F) {
	for _, sd := range loadSeeds(f) {
		c, err := Canonical(nil, sd.typ, TextFormat, sd.input)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(sd.typ), c)
	}
	f.Fuzz(func(t *testing.T, typ uint8, c []byte) {
		ty := fuzzType(typ)
		for _, format := range []int16{TextFormat, BinaryFormat} {
			out, err := Encode(nil, ty, format, c)
			if err != nil {
				continue
			}
			if _, err := Canonical(nil, ty, format, out); err != nil {
				t.Fatalf("%s: Encode accepted %x but its %s output %q does not read back: %v", ty, c, formatName(format), out, err)
			}
		}
	})
}
