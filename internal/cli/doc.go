// Package cli holds pgseal's commands: serve, dev, keys, policy, audit,
// reencrypt, encrypt-column, decrypt-column and version.
//
// It is the only package that reads configuration (each command builds its
// own viper instance, there is no global one) and the only one that creates
// a logger. Library packages receive what they need through options.
//
// Exit codes are mapped in one place, exitcode.go.
package cli
