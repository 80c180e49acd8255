package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/pgseal/pgseal/internal/auditlog"
	"github.com/pgseal/pgseal/keystore"
)

// keysConfigKeys maps the configuration keys of `keys` and `audit` to their
// flags; the environment variable is PGSEAL_ + the key upper-cased with dots
// as underscores (PGSEAL_KEYSTORE_PATH, PGSEAL_KEYSTORE_MASTER_KEY, ...).
var keysConfigKeys = map[string]string{
	"keystore.path":       "keystore",
	"keystore.master_key": "master-key",
	"keystore.audit_log":  "audit-log",
}

// newPassphraseEnv is where `keys rewrap` reads a new passphrase from.
const newPassphraseEnv = "PGSEAL_NEW_PASSPHRASE"

// keystoreFlags adds the flags every keys and audit subcommand shares.
func keystoreFlags(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.String("config", "", "YAML configuration file")
	pf.String("keystore", "", "keystore file (keystore.path, PGSEAL_KEYSTORE_PATH)")
	pf.String("master-key", "", "master-key source: file:PATH, env:VAR or passphrase (keystore.master_key, PGSEAL_KEYSTORE_MASTER_KEY)")
	pf.String("audit-log", "", "key audit log (keystore.audit_log, PGSEAL_KEYSTORE_AUDIT_LOG; default KEYSTORE.audit.jsonl)")
}

// keysEnv is what a keys or audit subcommand needs, read once.
type keysEnv struct {
	s         streams
	path      string
	auditPath string
	mk        keystore.MasterKeySource
}

// loadKeysEnv reads the keystore settings and parses the master-key source.
func loadKeysEnv(cmd *cobra.Command, s streams) (*keysEnv, error) {
	v, err := commandViper(cmd, keysConfigKeys)
	if err != nil {
		return nil, err
	}
	e := &keysEnv{s: s, path: v.GetString("keystore.path"), auditPath: v.GetString("keystore.audit_log")}
	if e.path == "" {
		return nil, withCode(ExitUsage, errors.New("no keystore: pass --keystore, set keystore.path or PGSEAL_KEYSTORE_PATH"))
	}
	if e.auditPath == "" {
		e.auditPath = e.path + ".audit.jsonl"
	}
	spec := v.GetString("keystore.master_key")
	if spec == "" {
		return nil, withCode(ExitUsage, errors.New("no master key: pass --master-key, set keystore.master_key or PGSEAL_KEYSTORE_MASTER_KEY"))
	}
	if e.mk, err = parseMasterKey(s, spec, ""); err != nil {
		return nil, err
	}
	return e, nil
}

// parseMasterKey parses a master-key spec with a terminal prompt when stdin
// is a terminal. A non-empty promptPrefix and passEnv describe a new key.
func parseMasterKey(s streams, spec, promptPrefix string) (keystore.MasterKeySource, error) {
	opts := []keystore.SourceOption{}
	if f, ok := s.in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		opts = append(opts, keystore.WithPrompt(func(prompt string) ([]byte, error) {
			if promptPrefix != "" {
				prompt = promptPrefix + strings.ToLower(prompt[:1]) + prompt[1:]
			}
			fmt.Fprint(s.err, prompt)
			defer fmt.Fprintln(s.err)
			return term.ReadPassword(int(f.Fd()))
		}))
	}
	if promptPrefix != "" {
		opts = append(opts, keystore.WithPassphraseEnv(newPassphraseEnv))
	}
	mk, err := keystore.ParseMasterKeySource(spec, opts...)
	if err != nil {
		return nil, withCode(ExitMasterKey, err)
	}
	return mk, nil
}

// keystoreCode attaches the exit code for an error from the keystore or
// the audit log. Master-key problems come first: a missing key file is
// also an fs.ErrNotExist.
func keystoreCode(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keystore.ErrMasterKeySource), errors.Is(err, keystore.ErrInsecureKeyFile),
		errors.Is(err, keystore.ErrWeakPassphrase):
		return withCode(ExitMasterKey, err)
	case errors.Is(err, keystore.ErrWrongMasterKey), errors.Is(err, keystore.ErrCorrupt),
		errors.Is(err, keystore.ErrUnknownFormat), errors.Is(err, keystore.ErrExists),
		errors.Is(err, keystore.ErrConcurrentUpdate), errors.Is(err, fs.ErrNotExist):
		return withCode(ExitKeystore, err)
	case errors.Is(err, keystore.ErrUnknownKeySet), errors.Is(err, keystore.ErrUnknownVersion),
		errors.Is(err, keystore.ErrKeySetExists), errors.Is(err, keystore.ErrInvalidName),
		errors.Is(err, keystore.ErrPrimaryVersion):
		return withCode(ExitUsage, err)
	default:
		return withCode(ExitFailure, err)
	}
}

// edit runs one lifecycle change: it opens the keystore and the audit log,
// applies change, commits, and records the event change returns.
func (e *keysEnv) edit(ctx context.Context, change func(*keystore.Editor) (event string, fields map[string]any, err error)) error {
	ed, err := keystore.Edit(ctx, e.path, e.mk)
	if err != nil {
		return keystoreCode(err)
	}
	ks, err := ed.Keystore()
	if err != nil {
		return keystoreCode(err)
	}
	// Open the log first: a broken log stops the change before it happens.
	log, err := auditlog.Open(e.auditPath, ks.AuditLogKey())
	if err != nil {
		return withCode(ExitFailure, err)
	}
	defer log.Close()
	event, fields, err := change(ed)
	if err != nil {
		return keystoreCode(err)
	}
	if err := ed.Commit(ctx); err != nil {
		return keystoreCode(err)
	}
	fields["keystore_id"] = ks.ID()
	if _, err := log.Append(ctx, event, fields); err != nil {
		return withCode(ExitFailure, fmt.Errorf("keystore changed, but %w", err))
	}
	return nil
}

func newKeysCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the keystore: init, add, rotate, list, disable, rewrap, backup, restore",
		Long: `Manage the keystore: a master key wraps named key sets, each with numbered
versions, one of them primary. Every change is appended to the audit log.`,
	}
	keystoreFlags(cmd)
	cmd.AddCommand(newKeysInitCmd(s), newKeysAddCmd(s), newKeysRotateCmd(s), newKeysListCmd(s),
		newKeysDisableCmd(s), newKeysRewrapCmd(s), newKeysBackupCmd(s), newKeysRestoreCmd(s))
	return cmd
}

func newKeysInitCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a keystore (and, for file:, a master-key file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if _, err := os.Lstat(e.auditPath); err == nil {
				return withCode(ExitKeystore, fmt.Errorf("audit log %s already exists; move it away or pass --audit-log", e.auditPath))
			}
			if p, ok := e.mk.(keystore.Provisioner); ok {
				created, err := p.Provision(ctx)
				if err != nil {
					return keystoreCode(err)
				}
				if created {
					fmt.Fprintf(s.out, "created master key %s (mode 0600): back it up; without it the keystore cannot be opened\n", e.mk)
				}
			}
			ks, err := keystore.Create(ctx, e.path, e.mk)
			if err != nil {
				return keystoreCode(err)
			}
			log, err := auditlog.Open(e.auditPath, ks.AuditLogKey())
			if err != nil {
				return withCode(ExitFailure, err)
			}
			defer log.Close()
			if _, err := log.Append(ctx, "keys.init", map[string]any{
				"keystore_id": ks.ID(), "master_kind": ks.MasterKind(),
			}); err != nil {
				return withCode(ExitFailure, fmt.Errorf("keystore created, but %w", err))
			}
			fmt.Fprintf(s.out, "created keystore %s (id %s), audit log %s\n", e.path, ks.ID(), e.auditPath)
			return nil
		},
	}
}

func newKeysAddCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "add NAME",
		Short: "Add a key set with a primary version 1",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			return e.edit(cmd.Context(), func(ed *keystore.Editor) (string, map[string]any, error) {
				info, err := ed.AddKeySet(cmd.Context(), args[0])
				if err != nil {
					return "", nil, err
				}
				fmt.Fprintf(s.out, "added key set %s (id %s), version 1 is primary\n", info.Name, hexID(info.ID))
				return "keys.add", map[string]any{"key_set": info.Name, "key_set_id": hexID(info.ID), "version": 1}, nil
			})
		},
	}
}

func newKeysRotateCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate NAME",
		Short: "Add a new primary version to a key set; the previous one stays active",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			return e.edit(cmd.Context(), func(ed *keystore.Editor) (string, map[string]any, error) {
				info, err := ed.Rotate(cmd.Context(), args[0])
				if err != nil {
					return "", nil, err
				}
				fmt.Fprintf(s.out, "key set %s: version %d is primary, version %d stays active\n", info.Name, info.Primary, info.Primary-1)
				return "keys.rotate", map[string]any{"key_set": info.Name, "key_set_id": hexID(info.ID), "version": info.Primary}, nil
			})
		},
	}
}

func newKeysDisableCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disable NAME --version N",
		Short: "Disable a key version: values sealed under it no longer open",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, _ := cmd.Flags().GetUint32("version")
			if version == 0 {
				return withCode(ExitUsage, errors.New("--version is required"))
			}
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			if check, _ := cmd.Flags().GetBool("check-db"); check {
				if err := checkVersionUnused(cmd, s, e, args[0], version); err != nil {
					return err
				}
			}
			return e.edit(cmd.Context(), func(ed *keystore.Editor) (string, map[string]any, error) {
				info, err := ed.Disable(args[0], version)
				if err != nil {
					return "", nil, err
				}
				fmt.Fprintf(s.out, "key set %s: version %d is disabled\n", info.Name, version)
				return "keys.disable", map[string]any{"key_set": info.Name, "key_set_id": hexID(info.ID), "version": version}, nil
			})
		},
	}
	cmd.Flags().Uint32("version", 0, "the version to disable (not the primary)")
	checkDBFlags(cmd)
	return cmd
}

func newKeysRewrapCmd(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rewrap --new-master-key SRC",
		Short: "Re-wrap every data key under a new master key (no data is re-encrypted)",
		Long: `Re-wrap every data key under a new master key. Data keys do not change, so
values in the database stay as they are. For a new passphrase, set
PGSEAL_NEW_PASSPHRASE or answer the prompt. For a new file: key, a missing file
is created.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, _ := cmd.Flags().GetString("new-master-key")
			if spec == "" {
				return withCode(ExitUsage, errors.New("--new-master-key is required"))
			}
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			newMK, err := parseMasterKey(s, spec, "New ")
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if p, ok := newMK.(keystore.Provisioner); ok {
				created, err := p.Provision(ctx)
				if err != nil {
					return keystoreCode(err)
				}
				if created {
					fmt.Fprintf(s.out, "created master key %s (mode 0600): back it up\n", newMK)
				}
			}
			err = e.edit(ctx, func(ed *keystore.Editor) (string, map[string]any, error) {
				if err := ed.Rewrap(ctx, newMK); err != nil {
					return "", nil, err
				}
				return "keys.rewrap", map[string]any{"old_master_key": e.mk.String(), "new_master_key": newMK.String()}, nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(s.out, "re-wrapped every data key under %s; use --master-key %s from now on\n", newMK, newMK)
			return nil
		},
	}
	cmd.Flags().String("new-master-key", "", "the new master-key source: file:PATH, env:VAR or passphrase")
	return cmd
}

func newKeysListCmd(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List key sets and their versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			e, err := loadKeysEnv(cmd, s)
			if err != nil {
				return err
			}
			ks, err := keystore.Open(cmd.Context(), e.path, e.mk)
			if err != nil {
				return keystoreCode(err)
			}
			return writeKeyTable(s.out, ks.KeySets(), time.Now())
		},
	}
}

// writeKeyTable prints one row per key version.
func writeKeyTable(w io.Writer, sets []keystore.KeySetInfo, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tVERSION\tSTATE\tCREATED\tAGE")
	for _, set := range sets {
		for _, v := range set.Versions {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", set.Name, hexID(set.ID), v.Version, v.State,
				v.Created.UTC().Format(time.RFC3339), age(now.Sub(v.Created)))
		}
	}
	return tw.Flush()
}

// hexID formats a key set id as envelopes carry it.
func hexID(id uint32) string { return fmt.Sprintf("0x%08x", id) }

// age formats a duration in its largest whole unit: 45s, 12m, 5h, 3d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(max(0, int(d/time.Second))) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
}
