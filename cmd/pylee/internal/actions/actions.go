// Package actions is the catalog of audit actions: one per RPC, from its
// access rule (declared beside the permission, or derived from the method
// name), and the few events no single RPC makes. docs/audit-actions.md is
// generated from it, and tests check that every recorded event uses one.
package actions

import (
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	// The contracts whose RPCs the catalog lists.
	_ "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	_ "github.com/pyleeai/pylee/gen/go/pylee/deploy/v1"
	_ "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	_ "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	_ "github.com/pyleeai/pylee/gen/go/pylee/secrets/v1"

	"github.com/pyleeai/pylee/kit/server"
)

// Services are the gRPC services whose RPCs have actions.
var Services = []string{"pylee.orgs.v1.OrgsService", "pylee.orgs.v1.AccessService", "pylee.registry.v1.RegistryService", "pylee.audit.v1.AuditService",
	"pylee.secrets.v1.SecretsService", "pylee.deploy.v1.DeployService"}

// Action is one audit action.
type Action struct {
	Name string
	// Method is the RPC whose success and refusal carry it, or "" for an
	// event that no single RPC makes.
	Method     string
	Permission string
	// Note says when an event that no single RPC makes is recorded.
	Note string
}

// Other are the events that no single RPC makes.
var Other = []Action{
	{Name: "deploy.rollout.start", Note: "the deploy service starts rolling a newly pinned version out (from, to, strategy)"},
	{Name: "deploy.rollout.step", Note: "a canary rollout enters its next step (step, weight of new sessions)"},
	{Name: "deploy.rollout.promote", Note: "a version takes all traffic; the previous one stays warm"},
	{Name: "deploy.rollout.rollback", Note: "a rollout failed (error rate, health) and the deploy service re-pinned the previous version (reason)"},
	{Name: "deploy.instance.restart", Note: "an instance exited and is restarted after its backoff (exit)"},
	{Name: "deploy.instance.crash_loop", Note: "an instance keeps exiting shortly after it starts"},
	{Name: "tools.call", Note: "a tool call through the MCP gateway, allowed or refused: principal, teams, registry, server, version, tool, result, latency, bytes, estimated tokens"},
	{Name: "tools.drift", Note: "the MCP gateway saw a tool that differs from the pinned version (hidden and not callable): version, what changed"},
	{Name: "auth.credential.refuse", Note: "refusals of unauthenticated callers, counted per source address, reason and minute, in the installation's log (`orgs/-`)"},
	{Name: "orgs.user.create", Note: "a user's first sign-in through an identity provider"},
	{Name: "registry.approval.create", Note: "a change to a registry that needs approval becomes an approval request (PinEntry, UnpinEntry, PromoteEntry, UpdateRegistry)"},
	{Name: "registry.entry.upgrade", Note: "an auto-upgrading registry follows a new highest matching version of a range"},
	{Name: "registry.official.read", Note: "refusals of the official MCP Registry read API (a plain HTTP route)"},
}

// All returns every action, RPCs first (by service, then method), then the
// others.
func All() []Action {
	var out []Action
	for _, svc := range Services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil {
			continue
		}
		ms := d.(protoreflect.ServiceDescriptor).Methods()
		var methods []Action
		for i := 0; i < ms.Len(); i++ {
			full := "/" + svc + "/" + string(ms.Get(i).Name())
			rule, _ := server.RuleFor(full)
			methods = append(methods, Action{Name: rule.Action, Method: full, Permission: rule.Permission})
		}
		sort.Slice(methods, func(i, j int) bool { return methods[i].Method < methods[j].Method })
		out = append(out, methods...)
	}
	return append(out, Other...)
}

// Known reports whether name is an action of the catalog.
func Known(name string) bool {
	for _, a := range All() {
		if a.Name == name {
			return true
		}
	}
	return false
}

// Markdown renders the catalog for docs/audit-actions.md.
func Markdown() string {
	var b strings.Builder
	b.WriteString("# Audit actions\n\n")
	b.WriteString("Generated from the RPCs' access rules by `make generate`; do not edit. Every event in the audit\n")
	b.WriteString("log carries one of these actions. An RPC's success and its refusal (at the interceptor or in its\n")
	b.WriteString("handler) carry the same action: the one its rule declares (`action` in `pylee.api.v1.auth`), or\n")
	b.WriteString("the one its method name gives (`ListOrganizations`: `orgs.organization.list`). A refused\n")
	b.WriteString("call's event has outcome `denied` and a `reason`.\n\n")
	b.WriteString("| action | RPC | permission |\n| --- | --- | --- |\n")
	for _, a := range All() {
		if a.Method == "" {
			continue
		}
		svc, m, _ := strings.Cut(strings.TrimPrefix(a.Method, "/pylee."), "/")
		perm := "(public)"
		if a.Permission != "" {
			perm = "`" + a.Permission + "`"
		}
		b.WriteString("| `" + a.Name + "` | `" + svc + "/" + m + "` | " + perm + " |\n")
	}
	b.WriteString("\n## Events no single RPC makes\n\n| action | when |\n| --- | --- |\n")
	for _, a := range Other {
		b.WriteString("| `" + a.Name + "` | " + a.Note + " |\n")
	}
	return b.String()
}
