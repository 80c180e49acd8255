package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// newLogger builds the process logger. Library packages receive it (or a
// child of it) through options; nothing else creates one.
func newLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		if level != "" {
			return zerolog.Nop(), fmt.Errorf("invalid log.level %q (want debug, info, warn or error)", level)
		}
		lvl = zerolog.InfoLevel
	}
	switch strings.ToLower(format) {
	case "", "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("invalid log.format %q (want json or console)", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}
