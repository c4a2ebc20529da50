package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/pyleeai/pylee/cmd/pylee/internal/app"
	"github.com/pyleeai/pylee/kit/module"
	"github.com/pyleeai/pylee/kit/server"
)

// TestEveryRPCIsGuarded enumerates every RPC that a process running all
// targets registers and fails for one that declares no access rule.
func TestEveryRPCIsGuarded(t *testing.T) {
	a, err := app.New(context.Background(), app.Config{
		Targets: []string{"all"}, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Settings: module.Settings{DataDir: filepath.Join(t.TempDir(), "data"), Migrate: true},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer a.Run(ctx) //nolint:errcheck // runs cleanups and releases the listeners

	var checked int
	for svc, info := range a.Server().GRPC().GetServiceInfo() {
		if strings.HasPrefix(svc, "grpc.") {
			continue
		}
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			rule, ok := server.RuleFor(full)
			if !ok {
				t.Errorf("%s declares no (pylee.api.v1.auth) rule", full)
				continue
			}
			// AcceptInvitation is public: its one-time token is the credential.
			if rule.Public && full != "/pylee.orgs.v1.AccessService/AcceptInvitation" {
				t.Errorf("%s is public; nothing that touches tenant data may be", full)
			}
			if !rule.Public && !strings.Contains(rule.Permission, ".") {
				t.Errorf("%s: permission %q is not <collection>.<verb>", full, rule.Permission)
			}
			checked++
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d RPCs; the orgs service alone has 5", checked)
	}
	t.Logf("%d RPCs declare their access rule", checked)
}
