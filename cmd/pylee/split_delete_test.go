package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSplitDeleteOrganization: deletion across targets. Orgs (with the
// gateway), registry and audit run as separate processes; deleting an
// organization with servers, registries, pins, approvals and an invitation
// leaves nothing reachable, and the id is created again empty. With the
// registry process down the deletion is refused and nothing changes.
func TestSplitDeleteOrganization(t *testing.T) {
	dir := t.TempDir()
	orgsGRPC, orgsHTTP, regGRPC, regHTTP, auditGRPC, auditHTTP := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"--service-token", "pyl_split_delete_service_token_0123456789", "--page-token-key",
		"split-delete-page-token-key-0123456789", "--log-format", "json", "--log-level", "warn", "--relay-poll", "50ms", "--migrate"}
	serve := func(name, target, grpcAddr, httpAddr string, extra ...string) *proc {
		args := append([]string{"serve", "--target=" + target, "--grpc-addr", grpcAddr, "--http-addr", httpAddr,
			"--data-dir", filepath.Join(dir, name)}, extra...)
		return startProc(t, httpAddr, filepath.Join(dir, name+".log"), append(args, common...)...)
	}
	serve("audit", "audit", auditGRPC, auditHTTP, "--orgs-addr", orgsGRPC)
	reg := serve("registry", "registry", regGRPC, regHTTP, "--orgs-addr", orgsGRPC, "--audit-addr", auditGRPC)
	serve("orgs", "orgs,gateway", orgsGRPC, orgsHTTP, "--registry-addr", regGRPC, "--audit-addr", auditGRPC)
	tok, err := os.ReadFile(filepath.Join(dir, "orgs", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	u := &upInstance{rest: "http://" + orgsHTTP, token: strings.TrimSpace(string(tok))}

	// The registry process down: the deletion is refused, nothing changes.
	u.expect(t, "POST", "/v1/orgs?organization_id=kept", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/kept/servers?server_id=github", u.token, `{"serverName":"com.kept/github"}`, 200)
	reg.kill()
	if r := u.do(t, "DELETE", "/v1/orgs/kept", u.token, nil); r.status != 503 {
		t.Fatalf("delete with the registry down: %d %v", r.status, r.body)
	}
	reg.start()
	u.expect(t, "GET", "/v1/orgs/kept", u.token, "", 200)
	// The gateway (for the client) and orgs (as itself) reconnect to the
	// restarted registry within seconds: a read through the one, a binding
	// on the server (orgs asks the registry whether it exists) through
	// the other.
	deadline := time.Now().Add(10 * time.Second)
	for u.do(t, "GET", "/v1/orgs/kept/servers/github", u.token, nil).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the server of the organization whose deletion was refused is gone, or the registry is unreachable")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		r := u.do(t, "POST", "/v1/orgs/kept/servers/github/bindings", u.token, strings.NewReader(`{"role":"roles/user","principal":"users/kim"}`))
		if r.status == 200 || r.status == 409 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orgs cannot reach the restarted registry: %d %v", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	testDeleteOrganization(t, u)
}
