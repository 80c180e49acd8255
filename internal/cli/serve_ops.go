package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pgseal/pgseal/datapath"
	"github.com/pgseal/pgseal/internal/audit"
	"github.com/pgseal/pgseal/internal/metrics"
	"github.com/pgseal/pgseal/internal/reload"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/policy"
	"github.com/pgseal/pgseal/proxy"
	"github.com/pgseal/pgseal/rewrite"
)

// ops is what serve runs beside the proxy: the data path with hot reload,
// metrics and health endpoints, and the security audit log. Each part is
// nil when its configuration is absent.
type ops struct {
	cfg      *serveConfig
	log      zerolog.Logger
	reloader *reload.Reloader
	dp       *datapath.DataPath
	metrics  *metrics.Metrics
	audit    *audit.Recorder
	draining atomic.Bool

	ctx    context.Context // ends at close, not at the first signal
	cancel context.CancelFunc
	hup    chan os.Signal
	wg     sync.WaitGroup
}

// startOps loads the policy and keystore, opens the audit log and starts the
// reload watchers. The caller must call close.
func startOps(ctx context.Context, cfg *serveConfig, log zerolog.Logger) (_ *ops, err error) {
	o := &ops{cfg: cfg, log: log}
	o.ctx, o.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			o.close()
		}
	}()
	if cfg.MetricsListen != "" {
		o.metrics = metrics.New(metrics.WithVersion(Version))
	}
	var src keystore.MasterKeySource
	if cfg.Policy != "" || cfg.AuditLog != "" {
		if cfg.KeystorePath == "" || cfg.MasterKey == "" {
			return nil, withCode(ExitConfig, errors.New("a policy or an audit log needs keystore.path (--keystore) and keystore.master_key (--master-key)"))
		}
		if src, err = keystore.ParseMasterKeySource(cfg.MasterKey); err != nil {
			return nil, withCode(ExitMasterKey, err)
		}
	}
	if cfg.Policy != "" {
		o.reloader, err = reload.New(ctx, reload.Config{PolicyPath: cfg.Policy, KeystorePath: cfg.KeystorePath, MasterKey: src},
			reload.WithObserver(o.reloaded), reload.WithAnalyzer(o.analyzer))
		if err != nil {
			var le *reload.LoadError
			if errors.As(err, &le) && le.Source == reload.SourceKeystore {
				return nil, keystoreExit(fmt.Errorf("failed to load policy and keys: %w", err))
			}
			return nil, withCode(ExitConfig, fmt.Errorf("failed to load policy and keys: %w", err))
		}
	}
	if cfg.AuditLog != "" {
		if err := o.openAudit(ctx, src); err != nil {
			return nil, err
		}
	}
	if o.reloader != nil {
		dopts := []datapath.Option{datapath.WithLogger(log)}
		if obs := o.dataObservers(); len(obs) > 0 {
			dopts = append(dopts, datapath.WithObserver(obs))
		}
		o.dp = datapath.New(o.reloader.Snapshot(), dopts...)
		o.reloader.Attach(o.dp)
		o.watch()
	}
	return o, nil
}

// openAudit opens the security audit log with the keystore's audit key.
func (o *ops) openAudit(ctx context.Context, src keystore.MasterKeySource) error {
	var ks *keystore.Keystore
	if o.reloader != nil {
		ks = o.reloader.Keystore()
	} else {
		var err error
		if ks, err = keystore.Open(ctx, o.cfg.KeystorePath, src); err != nil {
			return keystoreExit(err)
		}
	}
	key := ks.AuditLogKey()
	defer clear(key)
	rec, err := audit.Open(o.cfg.AuditLog, key, audit.WithErrorHandler(o.auditFailed))
	if err != nil {
		return withCode(ExitConfig, err)
	}
	o.audit = rec
	return nil
}

// auditFailed runs on the audit writer goroutine for each lost event.
func (o *ops) auditFailed(err error) {
	if o.metrics != nil {
		o.metrics.AuditFailed()
	}
	if !errors.Is(err, audit.ErrDropped) {
		o.log.Error().Err(err).Msg("failed to write to the audit log")
	}
}

// watch starts the file poller and the SIGHUP handler.
func (o *ops) watch() {
	if o.cfg.ReloadInterval > 0 {
		o.wg.Add(1)
		// The poller is owned by ops; close cancels o.ctx, which ends it.
		go func() {
			defer o.wg.Done()
			o.reloader.Run(o.ctx, o.cfg.ReloadInterval)
		}()
	}
	o.hup = make(chan os.Signal, 1)
	signal.Notify(o.hup, syscall.SIGHUP)
	o.wg.Add(1)
	// The SIGHUP handler is owned by ops; close cancels o.ctx, which ends it.
	go func() {
		defer o.wg.Done()
		for {
			select {
			case <-o.ctx.Done():
				return
			case <-o.hup:
				o.log.Info().Msg("SIGHUP: reloading policy and keystore")
				_ = o.reloader.Reload(o.ctx, reload.CauseSignal)
			}
		}
	}()
}

// analyzer builds the statement analyzer of a policy, timed when metrics
// are on and logged (as shapes) at debug level.
func (o *ops) analyzer(p *policy.Policy) datapath.Analyzer {
	var a datapath.Analyzer = datapath.RewriteAnalyzer{A: rewrite.New(p)}
	if o.metrics != nil {
		a = o.metrics.Analyzer(a)
	}
	if o.log.GetLevel() <= zerolog.DebugLevel {
		a = logAnalyzer(a, o.log)
	}
	return a
}

// reloaded logs, counts and audits one load attempt.
func (o *ops) reloaded(ev reload.Event) {
	src := string(ev.Source)
	if ev.Err != nil {
		o.log.Error().Err(ev.Err).Str("source", src).Str("cause", string(ev.Cause)).
			Msgf("failed to reload the %s: the one loaded before stays in force", src)
	} else {
		le := o.log.Info().Str("source", src).Str("cause", string(ev.Cause))
		switch {
		case ev.Source == reload.SourcePolicy && ev.Policy != nil:
			le = le.Str("file", ev.Policy.File()).Int("tables", len(ev.Policy.Tables()))
		case ev.Source == reload.SourceKeystore && ev.Keystore != nil:
			d := zerolog.Dict()
			for _, s := range ev.Keystore.KeySets() {
				d = d.Uint32(s.Name, s.Primary)
			}
			le = le.Str("keystore_id", ev.Keystore.ID()).Dict("primary_versions", d)
		}
		le.Msgf("%s loaded", src)
	}
	if o.metrics != nil {
		if ev.Cause == reload.CauseStart {
			if ev.Err == nil {
				o.metrics.Loaded(src)
			}
		} else {
			o.metrics.Reloaded(src, ev.Err == nil)
		}
		o.metrics.SetKeystore(ev.Keystore)
	}
	if o.audit != nil && ev.Cause != reload.CauseStart {
		o.audit.Reloaded(ev)
	}
}

// proxyOptions installs the data path and the observers.
func (o *ops) proxyOptions() []proxy.Option {
	var opts []proxy.Option
	var obs proxyObservers
	if o.metrics != nil {
		obs = append(obs, o.metrics)
	}
	if o.audit != nil {
		obs = append(obs, o.audit)
	}
	if len(obs) > 0 {
		opts = append(opts, proxy.WithObserver(obs))
	}
	var d proxy.DataPath
	if o.dp != nil {
		d = o.dp
	}
	if o.metrics != nil {
		d = o.metrics.DataPath(d)
	}
	if d != nil {
		opts = append(opts, proxy.WithDataPath(d))
	}
	return opts
}

func (o *ops) dataObservers() dataObservers {
	var obs dataObservers
	if o.metrics != nil {
		obs = append(obs, o.metrics)
	}
	if o.audit != nil {
		obs = append(obs, o.audit)
	}
	return obs
}

// serveMetrics starts the HTTP listener when metrics are on and returns its
// address.
func (o *ops) serveMetrics(ctx context.Context, up *proxy.Upstream) (string, error) {
	if o.metrics == nil {
		return "", nil
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", o.cfg.MetricsListen)
	if err != nil {
		return "", fmt.Errorf("failed to listen on %s: %w", o.cfg.MetricsListen, err)
	}
	checks := []metrics.Check{{Name: "serving", Func: func(context.Context) error {
		if o.draining.Load() {
			return errors.New("shutting down")
		}
		return nil
	}}}
	if o.reloader != nil {
		checks = append(checks, metrics.Check{Name: "policy and keystore", Func: func(context.Context) error {
			if o.reloader.Snapshot() == nil {
				return errors.New("not loaded")
			}
			return nil
		}})
	}
	checks = append(checks, metrics.Check{Name: "upstream", Func: up.Probe})
	h := o.metrics.Handler(checks...)
	o.wg.Add(1)
	// The HTTP server is owned by ops; close cancels o.ctx, which stops it
	// after the proxy has drained, so /readyz reports the drain.
	go func() {
		defer o.wg.Done()
		if err := metrics.Serve(o.ctx, l, h); err != nil {
			o.log.Error().Err(err).Msg("metrics listener stopped")
		}
	}()
	return l.Addr().String(), nil
}

// started records the start in the audit log.
func (o *ops) started(listen, upstream string) {
	if o.audit != nil {
		o.audit.Started(listen, upstream)
	}
}

// close stops the watchers and the metrics listener and closes the audit
// log. It is safe to call more than once.
func (o *ops) close() {
	if o.hup != nil {
		signal.Stop(o.hup)
	}
	o.cancel()
	o.wg.Wait()
	if o.audit != nil {
		o.audit.Stopped()
		if err := o.audit.Close(); err != nil {
			o.log.Error().Err(err).Msg("failed to close the audit log")
		}
	}
}

// proxyObservers passes session events to each observer in turn.
type proxyObservers []proxy.Observer

func (p proxyObservers) SessionOpened(v string) {
	for _, o := range p {
		o.SessionOpened(v)
	}
}

func (p proxyObservers) SessionClosed() {
	for _, o := range p {
		o.SessionClosed()
	}
}

func (p proxyObservers) AuthFailed(user, remote, reason string) {
	for _, o := range p {
		o.AuthFailed(user, remote, reason)
	}
}

func (p proxyObservers) TLSRefused(remote, reason string) {
	for _, o := range p {
		o.TLSRefused(remote, reason)
	}
}

func (p proxyObservers) UpstreamConnectFailed(reason string) {
	for _, o := range p {
		o.UpstreamConnectFailed(reason)
	}
}

// dataObservers passes data-path events to each observer in turn.
type dataObservers []datapath.Observer

func (d dataObservers) Statement(kind, outcome string) {
	for _, o := range d {
		o.Statement(kind, outcome)
	}
}

func (d dataObservers) Refused(table, column, reason string) {
	for _, o := range d {
		o.Refused(table, column, reason)
	}
}

func (d dataObservers) Encrypted(n int) {
	for _, o := range d {
		o.Encrypted(n)
	}
}

func (d dataObservers) Decrypted(n int) {
	for _, o := range d {
		o.Decrypted(n)
	}
}

func (d dataObservers) DecryptFailed(column string) {
	for _, o := range d {
		o.DecryptFailed(column)
	}
}
