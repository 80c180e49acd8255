#!/usr/bin/env bash
# Runs every Fuzz* target in the module for a short time each.
set -euo pipefail
t="${1:-10s}"
for f in $(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do
	pkg="./$(dirname "${f#./}")"
	for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | awk '{print $2}'); do
		echo "fuzz: $pkg $fn ($t)"
		go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$t" "$pkg"
	done
done
