package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one readiness condition: Func returns nil when it holds.
type Check struct {
	Name string
	Func func(ctx context.Context) error
}

// ReadyTimeout bounds the checks of one /readyz request.
const ReadyTimeout = 5 * time.Second

// Handler serves:
//
//   - /metrics: every collector, in the Prometheus exposition format;
//   - /healthz: 200 "ok" while the process serves HTTP at all;
//   - /readyz: 200 "ok" when every check passes, else 503 with one line per
//     check saying which failed and why.
//
// The checks run concurrently on each /readyz request.
func (m *Metrics) Handler(checks ...Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ReadyTimeout)
		defer cancel()
		report, ok := runChecks(ctx, checks)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprint(w, report)
	})
	return mux
}

// runChecks runs every check and returns one line per check.
func runChecks(ctx context.Context, checks []Check) (string, bool) {
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		// Each check goroutine is owned by runChecks, which waits for it;
		// ctx bounds how long it runs.
		go func() {
			defer wg.Done()
			errs[i] = c.Func(ctx)
		}()
	}
	wg.Wait()
	var b strings.Builder
	ok := true
	for i, c := range checks {
		if errs[i] != nil {
			ok = false
			fmt.Fprintf(&b, "%s: %v\n", c.Name, oneLine(errs[i]))
		} else {
			fmt.Fprintf(&b, "%s: ok\n", c.Name)
		}
	}
	if len(checks) == 0 {
		b.WriteString("ok\n")
	}
	return b.String(), ok
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// Serve serves h on l until ctx ends, then stops accepting and gives
// requests in flight a few seconds to finish. It returns nil after ctx
// ends, else the error that stopped it.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	// The HTTP accept loop is owned by Serve; Shutdown below ends it.
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
