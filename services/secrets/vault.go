package secrets

import (
	"context"
	"fmt"

	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
	"github.com/pyleeai/pylee/services/secrets/internal/backend/vault"
)

// openVault opens the Vault KV v2 backend of the settings and checks that
// its mount is reachable and is KV v2, so a misconfigured installation
// fails at start, not at the first write.
func openVault(ctx context.Context, set module.SecretsSettings) (backend.Backend, error) {
	b, err := vault.New(ctx, vault.Config{Addr: set.VaultAddr, Token: vaultToken(set), RoleID: set.VaultRoleID, SecretID: set.VaultSecretID,
		Namespace: set.VaultNamespace, Mount: set.VaultMount, Prefix: set.VaultPrefix})
	if err != nil {
		return nil, fmt.Errorf("--secrets-backend=vault: %w", err)
	}
	if err := b.Check(ctx); err != nil {
		return nil, fmt.Errorf("--secrets-backend=vault: %w", err)
	}
	return b, nil
}
