package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	agelib "filippo.io/age"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pgseal/pgseal/internal/auditlog"
	"github.com/pgseal/pgseal/keystore"
	"github.com/pgseal/pgseal/keystore/backup"
)

// backupPassphraseEnv is where `keys backup --recipient passphrase` and
// `keys restore --identity passphrase` read the backup passphrase from
// before they fall back to a prompt.
const backupPassphraseEnv = "PGSEAL_BACKUP_PASSPHRASE"

// Size limits of what backup and restore read.
const (
	maxBackupFile   = 64 << 20
	maxIdentityFile = 1 << 20
)

// backupCode attaches the exit code for an error from the backup package or
// the keystore: an unreadable, altered or foreign backup is a keystore
// problem.
func backupCode(err error) error {
	switch {
	case errors.Is(err, backup.ErrMalformed), errors.Is(err, backup.ErrUnknownVersion),
		errors.Is(err, backup.ErrNoIdentity), errors.Is(err, backup.ErrTampered):
		return withCode(ExitKeystore, err)
	default:
		return keystoreCode(err)
	}
}

func newKeysBackupCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup --to FILE --recipient R...",
		Short: "Write every data key version to an escrow backup encrypted with age",
		Long: `Write every version of every key set, disabled ones included, to FILE,
encrypted with age to each recipient: an age X25519 public key (age1...), or
"passphrase" (read from PGSEAL_BACKUP_PASSPHRASE, or asked twice). The backup
does not depend on the master key. Its header (key sets, versions, creation
time, recipients) is readable without a key: see "keys backup inspect".
The backup is recorded in the audit log with its SHA-256.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			to, _ := cmd.Flags().GetString("to")
			specs, _ := cmd.Flags().GetStringArray("recipient")
			if to == "" || len(specs) == 0 {
				return withCode(ExitUsage, errors.New("--to and at least one --recipient are required"))
			}
			rcpt, wantPass, err := parseRecipients(specs)
			if err != nil {
				return err
			}
			if _, err := os.Lstat(to); err == nil {
				return withCode(ExitUsage, fmt.Errorf("%s already exists; backups are never overwritten", to))
			}
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			return runBackup(cmd.Context(), s, e, to, rcpt, wantPass)
		},
	}
	cmd.Flags().String("to", "", "the backup file to write (never overwritten)")
	cmd.Flags().StringArray("recipient", nil, `an age X25519 public key (age1...) or "passphrase"; repeat for more`)
	cmd.AddCommand(newKeysBackupInspectCmd(s))
	return cmd
}

// parseRecipients parses --recipient values; public keys are not secret, so
// a bad one is named in the error.
func parseRecipients(specs []string) (backup.Recipients, bool, error) {
	var r backup.Recipients
	wantPass := false
	for _, spec := range specs {
		if spec == backup.PassphraseRecipient {
			wantPass = true
			continue
		}
		x, err := agelib.ParseX25519Recipient(spec)
		if err != nil {
			return r, false, withCode(ExitUsage, fmt.Errorf("bad --recipient %.80q: want an age X25519 public key (age1...) or passphrase", spec))
		}
		r.X25519 = append(r.X25519, x)
	}
	return r, wantPass, nil
}

func runBackup(ctx context.Context, s streams, e *keysEnv, to string, rcpt backup.Recipients, wantPass bool) error {
	ks, err := keystore.Open(ctx, e.path, e.mk)
	if err != nil {
		return keystoreCode(err)
	}
	// Open the log first: a broken log stops the backup before it happens.
	log, err := auditlog.Open(e.auditPath, ks.AuditLogKey())
	if err != nil {
		return withCode(ExitFailure, err)
	}
	defer log.Close()
	x, err := keystore.ExportKeys(ctx, e.path, e.mk)
	if err != nil {
		return keystoreCode(err)
	}
	if wantPass {
		pass, err := readBackupPassphrase(s, true)
		if err != nil {
			return err
		}
		rcpt.Passphrase = pass
	}
	var buf bytes.Buffer
	h, err := backup.Write(&buf, x, rcpt)
	if err != nil {
		return withCode(ExitFailure, err)
	}
	if err := writeNewFile(to, buf.Bytes()); err != nil {
		return withCode(ExitFailure, err)
	}
	sum := backup.SHA256(buf.Bytes())
	abs, _ := filepath.Abs(to)
	if _, err := log.Append(ctx, "keys.backup", map[string]any{
		"keystore_id": ks.ID(), "file": abs, "sha256": sum, "recipients": h.Recipients,
		"key_sets": len(h.KeySets), "versions": h.Versions(),
	}); err != nil {
		return withCode(ExitFailure, fmt.Errorf("backup written, but %w", err))
	}
	fmt.Fprintf(s.out, "wrote backup %s: %d key sets, %d versions, for %s\nsha256 %s (recorded in the audit log: compare it before a restore)\n",
		to, len(h.KeySets), h.Versions(), strings.Join(h.Recipients, ", "), sum)
	return nil
}

// writeNewFile writes data to a new file of mode 0600 and syncs it; it
// never replaces an existing file.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("failed to create backup file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("failed to write backup file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("failed to sync backup file: %w", err)
	}
	return f.Close()
}

func newKeysBackupInspectCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print what a backup holds without decrypting it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readLimited(args[0], maxBackupFile, "backup")
			if err != nil {
				return withCode(ExitKeystore, err)
			}
			f, err := backup.Parse(data)
			if err != nil {
				return backupCode(err)
			}
			h := f.Header
			fmt.Fprintf(s.out, "backup      %s\nsha256      %s\ncreated     %s\nkeystore    %s\nrecipients  %s\nsections    %s\n\n",
				args[0], backup.SHA256(data), h.Created.UTC().Format(time.RFC3339), h.KeystoreID,
				strings.Join(h.Recipients, ", "), strings.Join(h.Sections(), ", "))
			if err := writeKeyTable(s.out, h.KeySets, time.Now()); err != nil {
				return err
			}
			fmt.Fprintln(s.out, "\nThe header is not authenticated: keys restore checks it against the encrypted keys.")
			return nil
		},
	}
}

func newKeysRestoreCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore --from FILE --identity F... --keystore NEW --master-key SRC",
		Short: "Rebuild a keystore from an escrow backup under a new master key",
		Long: `Decrypt a backup with an age identity file (AGE-SECRET-KEY-1... lines) or
"passphrase" (read from PGSEAL_BACKUP_PASSPHRASE, or asked), check it, and
write a new keystore at --keystore wrapped by --master-key (a missing file:
key or PKCS#11 key is created). The new keystore holds every key version of
the backup with its state, so values written before still decrypt. It has a
new id and a new audit log, which records the restore.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, _ := cmd.Flags().GetString("from")
			idSpecs, _ := cmd.Flags().GetStringArray("identity")
			if from == "" || len(idSpecs) == 0 {
				return withCode(ExitUsage, errors.New("--from and at least one --identity are required"))
			}
			data, err := readLimited(from, maxBackupFile, "backup")
			if err != nil {
				return withCode(ExitKeystore, err)
			}
			f, err := backup.Parse(data)
			if err != nil {
				return backupCode(err)
			}
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			if _, err := os.Lstat(e.auditPath); err == nil {
				return withCode(ExitKeystore, fmt.Errorf("audit log %s already exists; move it away or pass --audit-log", e.auditPath))
			}
			ids, err := loadIdentities(s, idSpecs)
			if err != nil {
				return err
			}
			return runRestore(cmd.Context(), s, e, from, data, f, ids)
		},
	}
	cmd.Flags().String("from", "", "the backup file")
	cmd.Flags().StringArray("identity", nil, `an age identity file, or "passphrase"; repeat to try several`)
	return cmd
}

func runRestore(ctx context.Context, s streams, e *keysEnv, from string, data []byte, f *backup.File, ids []agelib.Identity) error {
	x, err := f.Open(ids...)
	if err != nil {
		return backupCode(err)
	}
	if p, ok := e.mk.(keystore.Provisioner); ok {
		created, err := p.Provision(ctx)
		if err != nil {
			return keystoreCode(err)
		}
		if created {
			fmt.Fprintf(s.out, "created master key %s\n", e.mk)
		}
	}
	ks, err := keystore.Import(ctx, e.path, e.mk, x)
	if err != nil {
		return keystoreCode(err)
	}
	log, err := auditlog.Open(e.auditPath, ks.AuditLogKey())
	if err != nil {
		return withCode(ExitFailure, err)
	}
	defer log.Close()
	abs, _ := filepath.Abs(from)
	h := f.Header
	if _, err := log.Append(ctx, "keys.restore", map[string]any{
		"keystore_id": ks.ID(), "restored_from": h.KeystoreID, "backup_created": h.Created.UTC().Format(time.RFC3339),
		"file": abs, "sha256": backup.SHA256(data), "master_kind": ks.MasterKind(),
		"key_sets": len(h.KeySets), "versions": h.Versions(),
	}); err != nil {
		return withCode(ExitFailure, fmt.Errorf("keystore restored, but %w", err))
	}
	fmt.Fprintf(s.out, "restored %d key sets (%d versions) of keystore %s, backed up %s, into %s (id %s) under %s; audit log %s\nbackup sha256 %s\n",
		len(h.KeySets), h.Versions(), h.KeystoreID, h.Created.UTC().Format(time.RFC3339), e.path, ks.ID(), e.mk, e.auditPath, backup.SHA256(data))
	return nil
}

// loadIdentities reads --identity values: age identity files, or the
// passphrase. Errors never quote an identity file.
func loadIdentities(s streams, specs []string) ([]agelib.Identity, error) {
	var ids []agelib.Identity
	for _, spec := range specs {
		if spec == backup.PassphraseRecipient {
			pass, err := readBackupPassphrase(s, false)
			if err != nil {
				return nil, err
			}
			id, err := agelib.NewScryptIdentity(pass)
			if err != nil {
				return nil, withCode(ExitUsage, fmt.Errorf("failed to use the backup passphrase: %w", err))
			}
			ids = append(ids, id)
			continue
		}
		b, err := readLimited(spec, maxIdentityFile, "identity")
		if err != nil {
			return nil, withCode(ExitUsage, err)
		}
		parsed, err := agelib.ParseIdentities(bytes.NewReader(b))
		clear(b)
		if err != nil {
			return nil, withCode(ExitUsage, fmt.Errorf("failed to parse identity file %s: want AGE-SECRET-KEY-1... lines", spec))
		}
		ids = append(ids, parsed...)
	}
	return ids, nil
}

// readBackupPassphrase reads PGSEAL_BACKUP_PASSPHRASE or asks on the
// terminal; a new passphrase (creating) must be long enough and typed twice.
func readBackupPassphrase(s streams, creating bool) (string, error) {
	pass, ok := os.LookupEnv(backupPassphraseEnv)
	if !ok || pass == "" {
		f, isFile := s.in.(*os.File)
		if !isFile || !term.IsTerminal(int(f.Fd())) {
			return "", withCode(ExitUsage, fmt.Errorf("no backup passphrase: set %s or run on a terminal", backupPassphraseEnv))
		}
		ask := func(prompt string) (string, error) {
			fmt.Fprint(s.err, prompt)
			defer fmt.Fprintln(s.err)
			b, err := term.ReadPassword(int(f.Fd()))
			return string(b), err
		}
		var err error
		if pass, err = ask("Backup passphrase: "); err != nil {
			return "", withCode(ExitUsage, fmt.Errorf("failed to read backup passphrase: %w", err))
		}
		if creating {
			again, err := ask("Repeat backup passphrase: ")
			if err != nil || again != pass {
				return "", withCode(ExitUsage, errors.New("failed to read backup passphrase: the two entries differ"))
			}
		}
	}
	if creating && len(pass) < keystore.MinPassphraseLength {
		return "", withCode(ExitUsage, fmt.Errorf("backup passphrase shorter than %d bytes", keystore.MinPassphraseLength))
	}
	return pass, nil
}

// readLimited reads at most limit bytes of path.
func readLimited(path string, limit int64, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s file: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read %s file: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("failed to read %s file %s: larger than %d bytes", what, path, limit)
	}
	return b, nil
}
