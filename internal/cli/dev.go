package cli

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgseal/pgseal/examples"
	"github.com/pgseal/pgseal/internal/certs"
	"github.com/pgseal/pgseal/internal/pgcluster"
	"github.com/pgseal/pgseal/keystore"
)

func newDevCmd(s streams) *cobra.Command {
	var stateDir, listen string
	var keep bool
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run pgseal on an embedded default: a throwaway PostgreSQL, generated keys and certificates, an example policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runDev(ctx, s, stateDir, listen, keep, nil)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", ".pgseal-dev", "directory for the generated keystore, master key, certificates and policy")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:6432", "address pgseal listens on")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the state directory (keys, certificates) for the next start")
	return cmd
}

// runDev starts the embedded default and blocks until ctx is done. ready,
// when set, receives the proxy's address and the printed connection string.
func runDev(ctx context.Context, s streams, stateDir, listen string, keep bool, ready func(addr net.Addr, psql string)) (err error) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("failed to create state directory: %w", err)
	}
	if !keep {
		defer os.RemoveAll(stateDir)
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(s.err, "pgseal dev: starting a throwaway PostgreSQL ...")
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	pg, err := pgcluster.Start(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("failed to start PostgreSQL: %w", err)
	}
	defer pg.Close()

	caFile := filepath.Join(abs, "ca.crt")
	certFile := filepath.Join(abs, "pgseal.crt")
	keyFile := filepath.Join(abs, "pgseal.key")
	if _, err := os.Stat(keyFile); err != nil {
		ca, err := certs.NewCA("pgseal dev CA")
		if err != nil {
			return err
		}
		if _, _, err := ca.WriteFiles(abs, "ca"); err != nil {
			return err
		}
		leaf, err := ca.Issue(certs.LeafOptions{CommonName: "pgseal", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
		if err != nil {
			return err
		}
		if _, _, err := leaf.WriteFiles(abs, "pgseal"); err != nil {
			return err
		}
	}
	mkFile := filepath.Join(abs, "master.key")
	ksFile := filepath.Join(abs, "keystore.json")
	masterKey := "file:" + mkFile
	if _, err := os.Stat(ksFile); err != nil {
		if err := keystore.GenerateMasterKeyFile(mkFile); err != nil {
			return err
		}
		src, err := keystore.ParseMasterKeySource(masterKey)
		if err != nil {
			return err
		}
		if _, err := keystore.Create(ctx, ksFile, src); err != nil {
			return err
		}
		ed, err := keystore.Edit(ctx, ksFile, src)
		if err != nil {
			return err
		}
		for _, name := range []string{"pii", "finance", "secrets"} {
			if _, err := ed.AddKeySet(ctx, name); err != nil {
				return err
			}
		}
		if err := ed.Commit(ctx); err != nil {
			return err
		}
	}
	policyFile := filepath.Join(abs, "policy.yaml")
	if err := os.WriteFile(policyFile, examples.Policy, 0o644); err != nil {
		return err
	}
	conn, err := pg.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, examples.Schema)
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("failed to load the example schema: %w", err)
	}
	cfg := &serveConfig{
		Listen:          listen,
		Upstream:        fmt.Sprintf("host=127.0.0.1 port=%d sslmode=verify-full sslrootcert=%s", pg.Port(), pg.CACertFile()),
		TLSCert:         certFile,
		TLSKey:          keyFile,
		TLSRequire:      true,
		TLSMinVersion:   "1.2",
		LogLevel:        "info",
		LogFormat:       "console",
		AuthMode:        "auto",
		MaxMessageSize:  256 << 20,
		ShutdownTimeout: 5 * time.Second,
		Policy:          policyFile,
		KeystorePath:    ksFile,
		MasterKey:       masterKey,
	}
	return runServe(ctx, s, cfg, func(addr net.Addr) {
		host, port, _ := net.SplitHostPort(addr.String())
		psql := fmt.Sprintf("psql \"host=%s port=%s user=%s dbname=postgres sslmode=verify-full sslrootcert=%s\"", host, port, pg.SuperUser(), caFile)
		fmt.Fprintf(s.out, `
pgseal dev is up. Password for user %[1]s: %[2]s

Through pgseal (plaintext for the application, TLS verified):
  PGPASSWORD='%[2]s' %[3]s

Directly to PostgreSQL (what the database stores: bytea ciphertext):
  PGPASSWORD='%[2]s' psql "%[4]s"

Try:  INSERT INTO customers (name, email, ssn) VALUES ('Ann', 'ann@example.com', '123-45-6789');
      SELECT * FROM customers WHERE email = 'ann@example.com';
Ctrl-C stops everything.
`, pg.SuperUser(), pg.Password(), psql, pg.ConnString("postgres"))
		if ready != nil {
			ready(addr, psql)
		}
	})
}
