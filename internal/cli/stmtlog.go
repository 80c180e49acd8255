package cli

import (
	"github.com/rs/zerolog"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/internal/sqlshape"
	"github.com/pgseal/pgseal/rewrite"
)

// logAnalyzer logs each analysed statement at debug level, as its shape
// (package sqlshape: literals replaced, comments dropped), with the
// outcome. Values never reach the log.
func logAnalyzer(a datapath.Analyzer, log zerolog.Logger) datapath.Analyzer {
	la := loggedAnalyzer{a: a, log: log}
	if ca, ok := a.(datapath.CatalogAnalyzer); ok {
		return loggedCatalogAnalyzer{loggedAnalyzer: la, ca: ca}
	}
	return la
}

type loggedAnalyzer struct {
	a   datapath.Analyzer
	log zerolog.Logger
}

func (l loggedAnalyzer) Analyze(sql string, searchPath []string, prepared func(string) (any, bool), enc datapath.Encrypter) datapath.Analysis {
	an := l.a.Analyze(sql, searchPath, prepared, enc)
	ev := l.log.Debug()
	if !ev.Enabled() {
		return an
	}
	switch {
	case an.Refusal != nil:
		ev = ev.Str("outcome", "refused").Str("sqlstate", an.Refusal.Code).Str("reason", an.Refusal.Message)
	case an.Passthrough:
		ev = ev.Str("outcome", "passed")
	default:
		ev = ev.Str("outcome", "rewritten")
	}
	ev.Str("statement", sqlshape.Of(sql)).Msg("statement analysed")
	return an
}

type loggedCatalogAnalyzer struct {
	loggedAnalyzer
	ca datapath.CatalogAnalyzer
}

func (l loggedCatalogAnalyzer) WithCatalog(c rewrite.Catalog) datapath.Analyzer {
	return logAnalyzer(l.ca.WithCatalog(c), l.log)
}
