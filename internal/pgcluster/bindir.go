package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNoServer is returned when no PostgreSQL server binaries are found.
var ErrNoServer = errors.New("pgcluster: no PostgreSQL server binaries found (install postgresql, e.g. via `make deps`)")

// systemBinGlob is where Debian and Ubuntu install each major version.
const systemBinGlob = "/usr/lib/postgresql/*/bin"

// FindBinDir returns the bin directory of the highest PostgreSQL version
// installed under /usr/lib/postgresql, or ErrNoServer.
func FindBinDir() (string, error) {
	return findBinDir(systemBinGlob)
}

func findBinDir(pattern string) (string, error) {
	dirs, err := filepath.Glob(pattern)
	if err != nil {
		return "", fmt.Errorf("failed to list %s: %w", pattern, err)
	}
	type candidate struct {
		dir     string
		version []int
	}
	var found []candidate
	for _, dir := range dirs {
		if checkBinDir(dir) != nil {
			continue
		}
		v, ok := parseVersion(filepath.Base(filepath.Dir(dir)))
		if !ok {
			continue
		}
		found = append(found, candidate{dir, v})
	}
	if len(found) == 0 {
		return "", ErrNoServer
	}
	best := slices.MaxFunc(found, func(a, b candidate) int { return slices.Compare(a.version, b.version) })
	return best.dir, nil
}

// checkBinDir reports whether dir holds the programs Start runs.
func checkBinDir(dir string) error {
	for _, prog := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, prog))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrNoServer, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%w: %s is not executable", ErrNoServer, filepath.Join(dir, prog))
		}
	}
	return nil
}

// parseVersion parses "15" or "9.6" into comparable numbers, so that 15
// sorts above 9.6.
func parseVersion(s string) ([]int, bool) {
	var v []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}
