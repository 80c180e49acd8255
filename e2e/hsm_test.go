package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	agelib "filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/miekg/pkcs11"

	"github.com/pgseal/pgseal/internal/certs"
	"github.com/pgseal/pgseal/internal/softhsm"
)

// These tests run every pgseal command, serve included, as its own
// process, the way an operator does: a PKCS#11 module is initialized once
// per process and logs in once per process, so only separate processes
// show what a wrong PIN or a fresh start does. Each test has a throwaway
// SoftHSM2 token directory (SOFTHSM2_CONF, inherited by the processes).

const hsmPolicy = `version: 1
tables:
  public.%[1]s:
    email: {type: text, mode: deterministic, key: pii}
    ssn:   {type: text, mode: randomized, key: pii}
`

const hsmDDL = `CREATE TABLE %s (id int PRIMARY KEY, email bytea UNIQUE, ssn bytea)`

// pgsealRun runs the pgseal binary with extra environment variables.
func pgsealRun(tb testing.TB, bin string, env []string, args ...string) cliRun {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		tb.Fatalf("pgseal %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// servedProc is `pgseal serve` as its own process with a policy, a keystore
// and a master-key spec; it stops (SIGTERM) when the test ends or on stop.
type servedProc struct {
	addr   string
	caFile string
	logs   *logLines
	cmd    *exec.Cmd
	done   chan error
}

// serveArgs writes a certificate, its CA and the policy under a temporary
// directory and returns the arguments of `pgseal serve` and the CA file.
func serveArgs(tb testing.TB, policyYAML, keystorePath, masterKey string) (args []string, caFile string) {
	tb.Helper()
	dir := tb.TempDir()
	ca, err := certs.NewCA("pgseal e2e hsm CA")
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{CommonName: "pgseal", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		tb.Fatal(err)
	}
	if caFile, _, err = ca.WriteFiles(dir, "ca"); err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile, err := leaf.WriteFiles(dir, "pgseal")
	if err != nil {
		tb.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(policyYAML), 0o644); err != nil {
		tb.Fatal(err)
	}
	return []string{"serve",
		"--listen", "127.0.0.1:0",
		"--upstream", fmt.Sprintf("host=127.0.0.1 port=%d sslmode=verify-full sslrootcert=%s", shared.Port(), shared.CACertFile()),
		"--tls-cert", certFile, "--tls-key", keyFile,
		"--policy", policyFile, "--keystore", keystorePath, "--master-key", masterKey,
		"--log-level", "info", "--log-format", "json", "--shutdown-timeout", "5s"}, caFile
}

func startServeProc(tb testing.TB, bin, policyYAML, keystorePath, masterKey string, env ...string) *servedProc {
	tb.Helper()
	args, caFile := serveArgs(tb, policyYAML, keystorePath, masterKey)
	s := &servedProc{caFile: caFile, logs: newLogLines(), done: make(chan error, 1)}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	// Wait reaps the process; stop signals it and waits for this goroutine.
	go func() { s.done <- s.cmd.Wait() }()
	tb.Cleanup(s.stop)
	ready := s.logs.waitFor(tb, s.done, func(l logLine) bool { return l.str("message") == "pgseal is ready" })
	s.addr = ready.str("listen")
	return s
}

// stop ends serve with SIGTERM and waits; safe to call twice.
func (s *servedProc) stop() {
	if s.done == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	<-s.done
	s.done = nil
}

// connect opens a session through pgseal; the caller closes it, so that
// serve can stop without waiting for it.
func (s *servedProc) connect(tb testing.TB) *pgx.Conn {
	tb.Helper()
	host, port, _ := net.SplitHostPort(s.addr)
	c, err := pgx.Connect(testCtx(tb), fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=postgres sslmode=verify-full sslrootcert=%s",
		host, port, shared.SuperUser(), shared.Password(), s.caFile))
	if err != nil {
		tb.Fatalf("connect through pgseal: %v", err)
	}
	return c
}

// hsmRow is one row of a test table, as the application sees it.
type hsmRow struct {
	id         int
	email, ssn string
}

func hsmRows(from, to int) []hsmRow {
	var rows []hsmRow
	for i := from; i <= to; i++ {
		rows = append(rows, hsmRow{i, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("ssn-%04d", i)})
	}
	return rows
}

// insertRows writes rows through pgseal.
func insertRows(tb testing.TB, s *servedProc, table string, rows []hsmRow) {
	tb.Helper()
	ctx := testCtx(tb)
	c := s.connect(tb)
	defer c.Close(context.Background())
	for _, r := range rows {
		if _, err := c.Exec(ctx, `INSERT INTO `+table+` (id, email, ssn) VALUES ($1, $2, $3)`, r.id, r.email, r.ssn); err != nil {
			tb.Fatalf("insert row %d: %v", r.id, err)
		}
	}
}

// checkRows reads every row back through pgseal, by id and by an
// equality lookup on the deterministic column, and checks that the
// database holds no plaintext.
func checkRows(tb testing.TB, s *servedProc, table string, rows []hsmRow) {
	tb.Helper()
	ctx := testCtx(tb)
	c := s.connect(tb)
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil || n != len(rows) {
		tb.Fatalf("count = %d, %v; want %d", n, err, len(rows))
	}
	for _, r := range rows {
		var email, ssn string
		if err := c.QueryRow(ctx, `SELECT email, ssn FROM `+table+` WHERE id = $1`, r.id).Scan(&email, &ssn); err != nil {
			tb.Fatalf("row %d: %v", r.id, err)
		}
		if email != r.email || ssn != r.ssn {
			tb.Fatalf("row %d = %q, %q; want %q, %q", r.id, email, ssn, r.email, r.ssn)
		}
		var id int
		if err := c.QueryRow(ctx, `SELECT id FROM `+table+` WHERE email = $1`, r.email).Scan(&id); err != nil || id != r.id {
			tb.Fatalf("lookup of %q = %d, %v; want %d", r.email, id, err, r.id)
		}
	}
	var raw []byte
	if err := direct(tb).QueryRow(ctx, `SELECT email FROM `+table+` WHERE id = $1`, rows[0].id).Scan(&raw); err != nil {
		tb.Fatal(err)
	}
	if bytes.Contains(raw, []byte(rows[0].email)) {
		tb.Fatalf("the database holds %s in the clear", rows[0].email)
	}
}

func createHSMTable(tb testing.TB, table string) string {
	tb.Helper()
	if _, err := direct(tb).Exec(testCtx(tb), fmt.Sprintf(hsmDDL, table)); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf(hsmPolicy, table)
}

func writeSecret(tb testing.TB, name, content string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestHSMServe: keys init creates the master key in the token, serve
// encrypts and decrypts through it, the key cannot be exported, and a
// wrong PIN gives one clear error and exit code 5.
func TestHSMServe(t *testing.T) {
	tok := softhsm.NewTB(t, "pgseal")
	bin := buildPgseal(t)
	dir := t.TempDir()
	ks := filepath.Join(dir, "keystore.json")
	pinEnv := "PGSEAL_PKCS11_PIN=" + tok.PIN
	uri := tok.URI(tok.Label, "master")
	keys := func(args ...string) []string { return append(args, "--keystore", ks, "--master-key", uri) }

	r := pgsealRun(t, bin, []string{pinEnv}, keys("keys", "init")...).must(t, 0, "keys init")
	if !strings.Contains(r.stdout, "created master key "+uri) {
		t.Errorf("keys init did not create the key in the token:\n%s", r.stdout)
	}
	pgsealRun(t, bin, []string{pinEnv}, keys("keys", "add", "pii")...).must(t, 0, "keys add")
	data, err := os.ReadFile(ks)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"kind": "pkcs11-aes-256-gcm"`)) {
		t.Errorf("keystore does not record the PKCS#11 kind:\n%s", data)
	}
	// A second keystore on the same token finds the key rather than making one.
	r = pgsealRun(t, bin, []string{pinEnv}, "keys", "init", "--keystore", filepath.Join(dir, "second.json"), "--master-key", uri).must(t, 0, "keys init on an existing key")
	if strings.Contains(r.stdout, "created master key") {
		t.Errorf("keys init created a second key:\n%s", r.stdout)
	}

	policy := createHSMTable(t, "hsm_serve_users")
	// serve reads the PIN from a file named in the URI, not the environment.
	pinURI := tok.URI(tok.Label, "master", "pin-source=file:"+writeSecret(t, "pin", tok.PIN+"\n"))
	s := startServeProc(t, bin, policy, ks, pinURI)
	rows := hsmRows(1, 20)
	insertRows(t, s, "hsm_serve_users", rows)
	checkRows(t, s, "hsm_serve_users", rows)
	s.stop()

	t.Run("master key not exportable", func(t *testing.T) { tryExport(t, tok) })

	badPINServe, _ := serveArgs(t, policy, ks, tok.URI(tok.Label, "master", "pin-source=file:"+writeSecret(t, "bad-pin", "9999-0000")))
	t.Run("wrong PIN", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			env  []string
			args []string
		}{
			{"keys list, PIN from the environment", []string{"PGSEAL_PKCS11_PIN=9999-0000"}, keys("keys", "list")},
			{"serve, PIN from a file", nil, badPINServe},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := pgsealRun(t, bin, tt.env, tt.args...).must(t, 5, tt.name)
				var lines []string // the error, without serve's JSON log lines
				for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
					if !strings.HasPrefix(l, "{") {
						lines = append(lines, l)
					}
				}
				if len(lines) != 1 || !strings.Contains(lines[0], `wrong PIN`) || strings.Contains(r.stderr, "9999-0000") {
					t.Errorf("stderr = %q: want one line that says wrong PIN, without the PIN", r.stderr)
				}
				t.Logf("exit %d: %s", r.code, lines[0])
			})
		}
	})
}

// tryExport logs in to the token as the user who owns the master key and
// tries to read it (C_GetAttributeValue of CKA_VALUE) and to wrap it out
// under a key of its own (C_WrapKey): the token refuses both.
func tryExport(t *testing.T, tok *softhsm.Token) {
	p := pkcs11.New(tok.Module)
	if p == nil {
		t.Fatalf("failed to load %s", tok.Module)
	}
	defer p.Destroy()
	if err := p.Initialize(); err != nil {
		t.Fatal(err)
	}
	defer p.Finalize()
	slots, err := p.GetSlotList(true)
	if err != nil {
		t.Fatal(err)
	}
	var session pkcs11.SessionHandle
	opened := false
	for _, slot := range slots {
		if ti, err := p.GetTokenInfo(slot); err == nil && ti.Label == tok.Label {
			if session, err = p.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
				t.Fatal(err)
			}
			opened = true
		}
	}
	if !opened {
		t.Fatalf("no token %q", tok.Label)
	}
	defer p.CloseSession(session)
	if err := p.Login(session, pkcs11.CKU_USER, tok.PIN); err != nil {
		t.Fatal(err)
	}
	defer p.Logout(session)
	if err := p.FindObjectsInit(session, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "master")}); err != nil {
		t.Fatal(err)
	}
	objs, _, err := p.FindObjects(session, 4)
	_ = p.FindObjectsFinal(session)
	if err != nil || len(objs) != 1 {
		t.Fatalf("found %d master keys: %v", len(objs), err)
	}
	attrs, err := p.GetAttributeValue(session, objs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
		t.Errorf("C_GetAttributeValue(CKA_VALUE) = %d bytes, %v; want CKR_ATTRIBUTE_SENSITIVE", len(attrs), err)
	}
	kek, err := p.GenerateKey(session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false), pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32), pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
	})
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := p.WrapKey(session, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, kek, objs[0])
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_UNEXTRACTABLE)) {
		t.Errorf("C_WrapKey(master) = %d bytes, %v; want CKR_KEY_UNEXTRACTABLE", len(wrapped), err)
	}
}

// TestHSMRewrapChain moves a keystore file → HSM → another HSM token →
// passphrase, with serve restarted under each master key, and reads every
// value written before the first rewrap after the last.
func TestHSMRewrapChain(t *testing.T) {
	tok := softhsm.NewTB(t, "pgseal")
	if err := tok.InitToken(context.Background(), "standby", "5150-8080", "so-5150"); err != nil {
		t.Fatal(err)
	}
	bin := buildPgseal(t)
	dir := t.TempDir()
	ks := filepath.Join(dir, "keystore.json")
	fileMK := "file:" + filepath.Join(dir, "master.key")
	hsmMK := tok.URI(tok.Label, "master")
	standbyMK := tok.URI("standby", "master", "pin-source=file:"+writeSecret(t, "standby-pin", "5150-8080"))
	env := []string{"PGSEAL_PKCS11_PIN=" + tok.PIN, "PGSEAL_PASSPHRASE=the passphrase at the end", "PGSEAL_NEW_PASSPHRASE=the passphrase at the end"}
	policy := createHSMTable(t, "hsm_rewrap_users")

	pgsealRun(t, bin, env, "keys", "init", "--keystore", ks, "--master-key", fileMK).must(t, 0, "keys init")
	pgsealRun(t, bin, env, "keys", "add", "pii", "--keystore", ks, "--master-key", fileMK).must(t, 0, "keys add")
	s := startServeProc(t, bin, policy, ks, fileMK, env...)
	rows := hsmRows(1, 10)
	insertRows(t, s, "hsm_rewrap_users", rows)
	s.stop()

	from := fileMK
	for i, to := range []string{hsmMK, standbyMK, "passphrase"} {
		r := pgsealRun(t, bin, env, "keys", "rewrap", "--keystore", ks, "--master-key", from, "--new-master-key", to).must(t, 0, "rewrap to "+to)
		if to != "passphrase" && !strings.Contains(r.stdout, "created master key") {
			t.Errorf("rewrap to %s did not create the key in the token:\n%s", to, r.stdout)
		}
		pgsealRun(t, bin, env, "keys", "list", "--keystore", ks, "--master-key", from).must(t, 4, "old master key after rewrap")
		s := startServeProc(t, bin, policy, ks, to, env...)
		checkRows(t, s, "hsm_rewrap_users", rows)
		more := hsmRows(100+10*i, 100+10*i+4)
		insertRows(t, s, "hsm_rewrap_users", more)
		rows = append(rows, more...)
		s.stop()
		from = to
	}
	s = startServeProc(t, bin, policy, ks, "passphrase", env...)
	checkRows(t, s, "hsm_rewrap_users", rows)
}

// TestHSMBackupRestore backs up a keystore whose master key is in a token to
// two X25519 recipients, destroys the keystore, its audit log and the
// token, restores with each recipient's identity under a new master key,
// and reads every value through pgseal; a tampered backup is refused.
func TestHSMBackupRestore(t *testing.T) {
	tok := softhsm.NewTB(t, "pgseal")
	bin := buildPgseal(t)
	dir := t.TempDir()
	ks := filepath.Join(dir, "keystore.json")
	mk := tok.URI(tok.Label, "master")
	env := []string{"PGSEAL_PKCS11_PIN=" + tok.PIN}
	keys := func(args ...string) []string { return append(args, "--keystore", ks, "--master-key", mk) }
	policy := createHSMTable(t, "hsm_backup_users")

	pgsealRun(t, bin, env, keys("keys", "init")...).must(t, 0, "keys init")
	pgsealRun(t, bin, env, keys("keys", "add", "pii")...).must(t, 0, "keys add")
	s := startServeProc(t, bin, policy, ks, mk, env...)
	rows := hsmRows(1, 10)
	insertRows(t, s, "hsm_backup_users", rows)
	s.stop()
	pgsealRun(t, bin, env, keys("keys", "rotate", "pii")...).must(t, 0, "keys rotate")
	s = startServeProc(t, bin, policy, ks, mk, env...)
	more := hsmRows(11, 20)
	insertRows(t, s, "hsm_backup_users", more)
	rows = append(rows, more...)
	s.stop()

	identities := map[string]string{}
	var recipients []string
	for _, name := range []string{"alice", "bob"} {
		id, err := agelib.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		identities[name] = writeSecret(t, name+".key", id.String()+"\n")
		recipients = append(recipients, "--recipient", id.Recipient().String())
	}
	bak := filepath.Join(dir, "pgseal-keys.backup")
	r := pgsealRun(t, bin, env, keys(append([]string{"keys", "backup", "--to", bak}, recipients...)...)...).must(t, 0, "keys backup")
	t.Logf("%s", r.stdout)
	r = pgsealRun(t, bin, nil, "keys", "backup", "inspect", bak).must(t, 0, "keys backup inspect")
	if !strings.Contains(r.stdout, "sections    x25519") || strings.Count(r.stdout, "\npii ") != 2 {
		t.Errorf("inspect output:\n%s", r.stdout)
	}

	// Lose everything but the backup: keystore, audit log, and the token
	// holding the master key.
	for _, p := range []string{ks, ks + ".audit.jsonl", filepath.Join(tok.Dir, "tokens")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	pgsealRun(t, bin, env, keys("keys", "list")...).must(t, 4, "keys list after the loss")

	// Alice restores under a new master-key file, Bob into a new token.
	if err := os.MkdirAll(filepath.Join(tok.Dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := tok.InitToken(context.Background(), "rebuilt", tok.PIN, softhsm.TestSOPIN); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, newMK string }{
		{"alice", "file:" + filepath.Join(t.TempDir(), "master.key")},
		{"bob", tok.URI("rebuilt", "master")},
	} {
		t.Run("restore with "+tt.name, func(t *testing.T) {
			newKS := filepath.Join(t.TempDir(), "restored.json")
			r := pgsealRun(t, bin, env, "keys", "restore", "--from", bak, "--identity", identities[tt.name], "--keystore", newKS, "--master-key", tt.newMK).must(t, 0, "keys restore")
			if !strings.Contains(r.stdout, "created master key "+tt.newMK) || !strings.Contains(r.stdout, "restored 1 key sets (2 versions)") {
				t.Errorf("keys restore output:\n%s", r.stdout)
			}
			s := startServeProc(t, bin, policy, newKS, tt.newMK, env...)
			checkRows(t, s, "hsm_backup_users", rows)
		})
	}

	data, err := os.ReadFile(bak)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, from, to string }{
		{"header altered", `"state":"active"`, `"state":"disabled"`},
		{"created altered", `"created":"2`, `"created":"1`},
	} {
		t.Run("tampered: "+tt.name, func(t *testing.T) {
			if !bytes.Contains(data, []byte(tt.from)) {
				t.Fatalf("backup has no %s", tt.from)
			}
			bad := writeSecret(t, "tampered.backup", string(bytes.Replace(data, []byte(tt.from), []byte(tt.to), 1)))
			r := pgsealRun(t, bin, nil, "keys", "restore", "--from", bad, "--identity", identities["alice"],
				"--keystore", filepath.Join(t.TempDir(), "k.json"), "--master-key", "file:"+filepath.Join(t.TempDir(), "m.key")).must(t, 4, "restore of a tampered backup")
			if !strings.Contains(r.stderr, "backup was altered") {
				t.Errorf("stderr = %q", r.stderr)
			}
		})
	}
}
