package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LoadOrCreateKey returns the checkpoint signing key: from seed (base64 of
// a 32-byte Ed25519 seed) when given, else from the file at path, created
// with mode 0600 on first start.
func LoadOrCreateKey(seed, path string) (ed25519.PrivateKey, error) {
	if seed != "" {
		return parseSeed(seed, "the configured audit signing key")
	}
	if b, err := os.ReadFile(path); err == nil {
		return parseSeed(string(b), path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read audit signing key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create audit signing key: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key.Seed()) + "\n"); err != nil {
		return nil, fmt.Errorf("write audit signing key: %w", err)
	}
	return key, nil
}

func parseSeed(s, what string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s must be the base64 of a 32-byte Ed25519 seed", what)
	}
	return ed25519.NewKeyFromSeed(b), nil
}
