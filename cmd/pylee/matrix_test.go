package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/pyleeai/pylee/cmd/pylee/internal/app"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/server"
)

// matrixTargets names, per RPC, the resource a call targets in organization
// org, and sets any field that keeps an allowed call from changing the
// fixtures (stale etags, names that do not exist). A new RPC without an
// entry fails the test, so the matrix always covers every RPC.
var matrixTargets = map[string]func(org string, m protoreflect.Message){
	"pylee.orgs.v1.OrgsService/CreateOrganization": func(org string, m protoreflect.Message) {
		set(m, "organization_id", "matrix-new")
	},
	"pylee.orgs.v1.OrgsService/GetOrganization":    func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org) },
	"pylee.orgs.v1.OrgsService/ListOrganizations":  func(string, protoreflect.Message) {},
	"pylee.orgs.v1.OrgsService/VerifyToken":        func(_ string, m protoreflect.Message) { set(m, "token", "pyl_x") },
	"pylee.orgs.v1.OrgsService/DeleteOrganization": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org); set(m, "etag", "stale") },
	"pylee.orgs.v1.OrgsService/UpdateOrganization": func(org string, m protoreflect.Message) {
		o := m.Mutable(m.Descriptor().Fields().ByName("organization")).Message()
		set(o, "name", "orgs/"+org)
		set(o, "etag", "stale")
		set(o, "display_name", "x")
	},
	"pylee.orgs.v1.AccessService/GetCurrentUser": func(string, protoreflect.Message) {},
	"pylee.orgs.v1.AccessService/CreateServiceAccount": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org)
		set(m, "service_account_id", "made")
	},
	"pylee.orgs.v1.AccessService/GetServiceAccount":    func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/serviceAccounts/fx") },
	"pylee.orgs.v1.AccessService/ListServiceAccounts":  func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.orgs.v1.AccessService/DeleteServiceAccount": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/serviceAccounts/nope") },
	"pylee.orgs.v1.AccessService/CreateToken":          func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/serviceAccounts/fx") },
	"pylee.orgs.v1.AccessService/ListTokens":           func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/serviceAccounts/fx") },
	"pylee.orgs.v1.AccessService/DeleteToken": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/serviceAccounts/fx/tokens/nope")
	},
	"pylee.orgs.v1.AccessService/CreateBinding": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org+"/servers/s")
		b := m.Mutable(m.Descriptor().Fields().ByName("binding")).Message()
		set(b, "role", "roles/user")
		set(b, "principal", "users/matrix")
	},
	"pylee.orgs.v1.AccessService/ListBindings":  func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.orgs.v1.AccessService/DeleteBinding": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/bindings/nope") },
	"pylee.orgs.v1.AccessService/PurgeBindings": func(org string, m protoreflect.Message) { set(m, "resource", "orgs/"+org+"/servers/nope") },
	"pylee.orgs.v1.AccessService/ListRoles":     func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.orgs.v1.AccessService/CreateRole": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org)
		set(m, "role_id", "made")
		r := m.Mutable(m.Descriptor().Fields().ByName("role")).Message()
		l := r.Mutable(r.Descriptor().Fields().ByName("permissions")).List()
		l.Append(protoreflect.ValueOfString("orgs.get"))
	},
	"pylee.orgs.v1.AccessService/DeleteRole": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/roles/nope") },
	"pylee.orgs.v1.AccessService/CreateTeam": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org); set(m, "team_id", "made") },
	"pylee.orgs.v1.AccessService/ListTeams":  func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.orgs.v1.AccessService/DeleteTeam": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/teams/nope") },
	"pylee.orgs.v1.AccessService/AddTeamMember": func(org string, m protoreflect.Message) {
		set(m, "team", "orgs/"+org+"/teams/nope")
		set(m, "member", "users/matrix")
	},
	"pylee.orgs.v1.AccessService/RemoveTeamMember": func(org string, m protoreflect.Message) {
		set(m, "team", "orgs/"+org+"/teams/nope")
		set(m, "member", "users/matrix")
	},
	"pylee.orgs.v1.AccessService/Check": func(org string, m protoreflect.Message) {
		set(m, "permission", "orgs.get")
		set(m, "resource", "orgs/"+org)
	},
	"pylee.orgs.v1.AccessService/BatchCheck": func(org string, m protoreflect.Message) {
		l := m.Mutable(m.Descriptor().Fields().ByName("checks")).List()
		c := l.NewElement().Message()
		set(c, "permission", "orgs.get")
		l.Append(protoreflect.ValueOfMessage(c))
	},
	"pylee.orgs.v1.AccessService/ListMembers":  func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.orgs.v1.AccessService/DeleteMember": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/members/nobody") },
	"pylee.orgs.v1.AccessService/CreateInvitation": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org)
		i := m.Mutable(m.Descriptor().Fields().ByName("invitation")).Message()
		set(i, "email", "new@example.test")
		set(i, "role", "roles/user")
	},
	"pylee.orgs.v1.AccessService/ListInvitations":  func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.orgs.v1.AccessService/RevokeInvitation": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/invitations/nope") },
	"pylee.orgs.v1.AccessService/AcceptInvitation": func(_ string, m protoreflect.Message) { set(m, "token", "pyli_nope") },
	"pylee.orgs.v1.AccessService/ListAllowed": func(org string, m protoreflect.Message) {
		set(m, "permission", "orgs.get")
		l := m.Mutable(m.Descriptor().Fields().ByName("resources")).List()
		l.Append(protoreflect.ValueOfString("orgs/" + org))
	},
	"pylee.registry.v1.RegistryService/CreateServer": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org)
		set(m, "server_id", "made")
		v := m.Mutable(m.Descriptor().Fields().ByName("server")).Message()
		set(v, "server_name", "com.example/made")
	},
	"pylee.registry.v1.RegistryService/GetServer":   func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/servers/nope") },
	"pylee.registry.v1.RegistryService/ListServers": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.registry.v1.RegistryService/UpdateServer": func(org string, m protoreflect.Message) {
		v := m.Mutable(m.Descriptor().Fields().ByName("server")).Message()
		set(v, "name", "orgs/"+org+"/servers/nope")
		set(v, "title", "x")
	},
	"pylee.registry.v1.RegistryService/PurgeOrganization": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org) },
	"pylee.registry.v1.RegistryService/DeleteServer":      func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/servers/nope") },
	"pylee.registry.v1.RegistryService/CreateVersion": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org+"/servers/nope")
		set(m.Mutable(m.Descriptor().Fields().ByName("version")).Message(), "version", "1.0.0")
	},
	"pylee.registry.v1.RegistryService/ImportServerJson": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org+"/servers/nope")
		set(m, "server_json", `{"name":"com.example/nope","description":"x","version":"1.0.0"}`)
	},
	"pylee.registry.v1.RegistryService/GetVersion": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/servers/nope/versions/1.0.0")
	},
	"pylee.registry.v1.RegistryService/ListVersions": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/servers/nope") },
	"pylee.registry.v1.RegistryService/SetVersionStatus": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/servers/nope/versions/1.0.0")
		m.Set(m.Descriptor().Fields().ByName("status"), protoreflect.ValueOfEnum(3))
	},
	"pylee.registry.v1.RegistryService/RecordObservedTools": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/servers/nope/versions/1.0.0")
	},
	"pylee.registry.v1.RegistryService/SuggestNextVersion": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org+"/servers/nope")
		set(m, "bump", "minor")
	},
	"pylee.registry.v1.RegistryService/DiffVersions": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org+"/servers/nope")
		set(m, "base", "1.0.0")
		set(m, "target", "1.1.0")
	},
	"pylee.registry.v1.RegistryService/ExportServerJson": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/servers/nope/versions/1.0.0")
	},
	"pylee.registry.v1.RegistryService/CreateRegistry": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org)
		set(m, "registry_id", "made")
		set(m.Mutable(m.Descriptor().Fields().ByName("registry")).Message(), "parent", "orgs/"+org+"/registries/nope")
	},
	"pylee.registry.v1.RegistryService/GetRegistry": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/registries/nope") },
	"pylee.registry.v1.RegistryService/GetConnectConfig": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope")
		set(m, "client", "vscode")
	},
	"pylee.registry.v1.RegistryService/ListRegistries": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.registry.v1.RegistryService/UpdateRegistry": func(org string, m protoreflect.Message) {
		r := m.Mutable(m.Descriptor().Fields().ByName("registry")).Message()
		set(r, "name", "orgs/"+org+"/registries/nope")
		set(r, "description", "x")
	},
	"pylee.registry.v1.RegistryService/DeleteRegistry": func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/registries/nope") },
	"pylee.registry.v1.RegistryService/PinEntry": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/entries/nope")
		set(m, "version", "1.0.0")
	},
	"pylee.registry.v1.RegistryService/UnpinEntry": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/entries/nope")
	},
	"pylee.registry.v1.RegistryService/PromoteEntry": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/entries/nope")
		set(m, "target_registry", "orgs/"+org+"/registries/nope2")
	},
	"pylee.registry.v1.RegistryService/GetEntry": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/entries/nope")
	},
	"pylee.registry.v1.RegistryService/ListEntries":    func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/registries/nope") },
	"pylee.registry.v1.RegistryService/WatchEntries":   func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/registries/nope") },
	"pylee.registry.v1.RegistryService/RenderOfficial": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/registries/nope") },
	"pylee.registry.v1.RegistryService/ListApprovals":  func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/registries/nope") },
	"pylee.registry.v1.RegistryService/GetApproval": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/approvals/nope")
	},
	"pylee.registry.v1.RegistryService/Approve": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/approvals/nope")
	},
	"pylee.registry.v1.RegistryService/Reject": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/approvals/nope")
	},
	"pylee.registry.v1.RegistryService/CancelApproval": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/registries/nope/approvals/nope")
	},
	"pylee.audit.v1.AuditService/AppendEvents": func(string, protoreflect.Message) {},
	"pylee.audit.v1.AuditService/ListEvents":   func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.audit.v1.AuditService/GetEvent": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/events/01a20000-0000-7000-8000-000000000000")
	},
	"pylee.audit.v1.AuditService/ExportEvents":  func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.audit.v1.AuditService/VerifyLog":     func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.audit.v1.AuditService/GetCheckpoint": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.audit.v1.AuditService/GetPublicKey":  func(string, protoreflect.Message) {},
	"pylee.secrets.v1.SecretsService/SetSecret": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org)
		set(m, "secret_id", "MATRIX")
		set(m.Mutable(m.Descriptor().Fields().ByName("secret")).Message(), "value", "v")
	},
	"pylee.secrets.v1.SecretsService/GetSecret":   func(org string, m protoreflect.Message) { set(m, "name", "orgs/"+org+"/secrets/NOPE") },
	"pylee.secrets.v1.SecretsService/ListSecrets": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.secrets.v1.SecretsService/DeleteSecret": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/secrets/NOPE")
	},
	"pylee.secrets.v1.SecretsService/ListSecretVersions": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/secrets/NOPE")
	},
	"pylee.secrets.v1.SecretsService/RestoreSecretVersion": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/secrets/NOPE")
		m.Set(m.Descriptor().Fields().ByName("version"), protoreflect.ValueOfInt64(1))
	},
	"pylee.secrets.v1.SecretsService/SetVariable": func(org string, m protoreflect.Message) {
		set(m, "parent", "orgs/"+org+"/registries/nope")
		set(m, "variable_id", "MATRIX")
		set(m.Mutable(m.Descriptor().Fields().ByName("variable")).Message(), "value", "v")
	},
	"pylee.secrets.v1.SecretsService/GetVariable": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/servers/nope/variables/NOPE")
	},
	"pylee.secrets.v1.SecretsService/ListVariables": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org+"/servers/nope") },
	"pylee.secrets.v1.SecretsService/DeleteVariable": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/variables/NOPE")
	},
	"pylee.secrets.v1.SecretsService/ListVariableVersions": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/variables/NOPE")
	},
	"pylee.secrets.v1.SecretsService/RestoreVariableVersion": func(org string, m protoreflect.Message) {
		set(m, "name", "orgs/"+org+"/variables/NOPE")
		m.Set(m.Descriptor().Fields().ByName("version"), protoreflect.ValueOfInt64(1))
	},
	"pylee.secrets.v1.SecretsService/Resolve": func(org string, m protoreflect.Message) {
		set(m, "registry", "orgs/"+org+"/registries/nope")
		set(m, "server", "orgs/"+org+"/servers/nope")
	},
	"pylee.secrets.v1.SecretsService/ExplainResolution": func(org string, m protoreflect.Message) {
		set(m, "registry", "orgs/"+org+"/registries/nope")
		set(m, "server_id", "nope")
	},
	"pylee.secrets.v1.SecretsService/WatchValues": func(org string, m protoreflect.Message) { set(m, "parent", "orgs/"+org) },
	"pylee.secrets.v1.SecretsService/PurgeScope":  func(org string, m protoreflect.Message) { set(m, "scope", "orgs/"+org+"/servers/nope") },
}

func set(m protoreflect.Message, field, value string) {
	m.Set(m.Descriptor().Fields().ByName(protoreflect.Name(field)), protoreflect.ValueOfString(value))
}

// The reference model: the built-in roles as this test states them,
// independently of the code's tables.
var modelRoles = map[string]func(perm string) bool{
	"owner": func(p string) bool { return p != "orgs.create" && p != "secrets.resolve" },
	"admin": func(p string) bool { return p != "orgs.create" && p != "secrets.resolve" && p != "orgs.delete" },
	"developer": func(p string) bool {
		return strings.HasSuffix(p, ".get") && p != "users.get" || p == "tools.list" || map[string]bool{"members.list": true,
			"servers.create": true, "servers.update": true, "versions.publish": true, "versions.deprecate": true, "entries.pin": true,
			"secrets.list": true, "secrets.write": true, "deployments.rollout": true, "tools.invoke": true, "audit.read": true,
			"bindings.list": true}[p]
	},
	"user": func(p string) bool {
		return map[string]bool{"orgs.get": true, "registries.get": true, "servers.get": true, "versions.get": true,
			"entries.get": true, "tools.list": true, "tools.invoke": true}[p]
	},
	"auditor": func(p string) bool {
		return strings.HasSuffix(p, ".get") && p != "users.get" || p == "tools.list" || map[string]bool{"members.list": true,
			"invitations.list": true, "bindings.list": true, "tokens.list": true, "secrets.list": true, "audit.read": true, "audit.export": true}[p]
	},
}

var selfPerms = map[string]bool{"users.get": true, "orgs.list": true, "audit.key.get": true, "access.check": true}

// authzNotFound is how an authorization refusal that hides another
// tenant's resource reads: the resource, quoted, not found.
var authzNotFound = regexp.MustCompile(`^"[^"]*": not found$`)

func TestAccessMatrix(t *testing.T) {
	u := startUp(t)
	for _, org := range []string{"own", "other"} {
		u.expect(t, "POST", "/v1/orgs?organization_id="+org, u.token, `{}`, 200)
		u.expect(t, "POST", "/v1/orgs/"+org+"/serviceAccounts?service_account_id=fx", u.token, `{}`, 200)
	}
	tokens := map[string]string{}
	for role := range modelRoles {
		tokens[role] = u.saToken(t, "own", "as-"+role, "roles/"+role, "orgs/own")
	}
	conn, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// Every RPC the process serves, from the registered descriptors.
	var methods []protoreflect.MethodDescriptor
	for _, svc := range []string{"pylee.orgs.v1.OrgsService", "pylee.orgs.v1.AccessService", "pylee.audit.v1.AuditService", "pylee.registry.v1.RegistryService", "pylee.secrets.v1.SecretsService"} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil {
			t.Fatal(err)
		}
		ms := d.(protoreflect.ServiceDescriptor).Methods()
		for i := 0; i < ms.Len(); i++ {
			methods = append(methods, ms.Get(i))
		}
	}
	cases := 0
	for _, md := range methods {
		full := string(md.Parent().FullName()) + "/" + string(md.Name())
		target, ok := matrixTargets[full]
		if !ok {
			t.Errorf("%s has no entry in matrixTargets: add one", full)
			continue
		}
		rule, _ := server.RuleFor("/" + full)
		for role, holds := range modelRoles {
			for _, org := range []string{"own", "other"} {
				req := dynamicpb.NewMessage(md.Input())
				target(org, req)
				got := call(t, conn, md, full, req, tokens[role])
				// The model.
				want := "allowed"
				switch {
				case auth.ServiceOnlyPermissions[rule.Permission]:
					want = "denied"
				case selfPerms[rule.Permission] || rule.Public:
				case rule.ResourceField == "":
					if !holds(rule.Permission) || rule.Permission == "orgs.create" {
						want = "denied"
					}
				case org == "other":
					want = "hidden"
				case !holds(rule.Permission):
					want = "denied"
				}
				if got != want {
					t.Errorf("%s as %s on %s: %s, model says %s", full, role, org, got, want)
				}
				cases++
			}
		}
	}
	t.Logf("access matrix: %d RPCs x %d roles x 2 organizations = %d cases, all as the model says", len(methods), len(modelRoles), cases)

	// Every service identity x every RPC: allowed exactly where the rule
	// lists the target (or every target), refused everywhere else.
	secret, err := os.ReadFile(filepath.Join(u.dataDir, "service.token"))
	if err != nil {
		t.Fatal(err)
	}
	svcCases := 0
	for _, target := range app.Targets {
		token := auth.ServiceTokenFor(config.NewSecret(strings.TrimSpace(string(secret))), target).Reveal()
		for _, md := range methods {
			full := string(md.Parent().FullName()) + "/" + string(md.Name())
			fill, ok := matrixTargets[full]
			if !ok {
				continue
			}
			rule, _ := server.RuleFor("/" + full)
			req := dynamicpb.NewMessage(md.Input())
			fill("own", req)
			want := "denied"
			if rule.Public || auth.MayCall(auth.ServiceIdentity(target), rule.Services) {
				want = "allowed"
			}
			if got := call(t, conn, md, full, req, token); got != want {
				t.Errorf("%s as services/%s: %s, its rule (services %v) says %s", full, target, got, rule.Services, want)
			}
			svcCases++
		}
	}
	t.Logf("service identities: %d targets x %d RPCs = %d cases, all as the rules say", len(app.Targets), len(methods), svcCases)
}

// call invokes full with req as a holder of token and classifies the
// answer: "denied" (PERMISSION_DENIED), "hidden" (NOT_FOUND from the
// authorization step, no data) or "allowed" (anything the handler said).
func call(t *testing.T, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, full string, req proto.Message, token string) string {
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	var err error
	if md.IsStreamingServer() {
		// A watch that was let in stays open: a second tells it.
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var stream grpc.ClientStream
		stream, err = conn.NewStream(sctx, &grpc.StreamDesc{ServerStreams: true}, "/"+full)
		if err == nil {
			if err = stream.SendMsg(req); err == nil {
				_ = stream.CloseSend()
				for err == nil {
					err = stream.RecvMsg(dynamicpb.NewMessage(md.Output()))
				}
				if errors.Is(err, io.EOF) || status.Code(err) == codes.DeadlineExceeded {
					err = nil
				}
			}
		}
	} else {
		err = conn.Invoke(ctx, "/"+full, req, dynamicpb.NewMessage(md.Output()))
	}
	st := status.Convert(err)
	switch {
	case st.Code() == codes.PermissionDenied:
		return "denied"
	case st.Code() == codes.NotFound && authzNotFound.MatchString(st.Message()):
		return "hidden"
	case st.Code() == codes.Unauthenticated && strings.Contains(st.Message(), "invitation token"):
		// AcceptInvitation's handler refusing the made-up invitation token.
	case st.Code() == codes.Unauthenticated && full == "pylee.orgs.v1.OrgsService/VerifyToken":
		// VerifyToken's handler answering that the token it was asked about is not valid.
	case st.Code() == codes.Unauthenticated || st.Code() == codes.Internal:
		t.Fatalf("%s: %v", full, err)
	}
	return "allowed"
}
