package certs

import (
	"crypto/ecdsa"
	"fmt"
	"os"
	"path/filepath"
)

const (
	certFileMode = 0o644
	keyFileMode  = 0o600
)

func writePair(dir, base string, certPEM []byte, key *ecdsa.PrivateKey) (certPath, keyPath string, err error) {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return "", "", err
	}
	defer clear(keyPEM)
	certPath = filepath.Join(dir, base+".crt")
	keyPath = filepath.Join(dir, base+".key")
	// The key goes first: a reader that finds the certificate can count on
	// the key being there too.
	if err := WriteFileAtomic(keyPath, keyPEM, keyFileMode); err != nil {
		return "", "", err
	}
	if err := WriteFileAtomic(certPath, certPEM, certFileMode); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// WriteFileAtomic writes data to path so that readers see either the old
// file or the complete new one, never a partial write: it writes a temporary
// file in the same directory with the final mode already set (so a key is
// never readable by others, not even briefly), syncs it, renames it over
// path and syncs the directory.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp uses 0600 already; Chmod makes the mode exact whatever the
	// umask, and tightens nothing it should not.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("failed to set mode of %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("failed to write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("failed to sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("failed to rename %s to %s: %w", tmp, path, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to sync directory %s: %w", dir, err)
	}
	return nil
}
