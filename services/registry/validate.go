package registry

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/registry/internal/semvers"
	"github.com/pyleeai/pylee/services/registry/internal/serverjson"
	"github.com/pyleeai/pylee/services/registry/internal/store"
)

// Requests are validated in two steps (see docs/design.md). The field rules
// are declared in the protos (`buf.validate`: required fields, lengths in
// characters, ids, page sizes, list sizes, enums) and kit/server checks them
// first; the functions here check, on requests that satisfy them, what
// needs code: resource names, versions and ranges, server.json, update
// masks, control characters, tool schemas and rules across fields.

// Validators returns the hand-written validator of every RPC, keyed by full
// method name; the server refuses to start without one per RPC.
func Validators() map[string]server.Validator {
	return map[string]server.Validator{
		registryv1.RegistryService_PurgeOrganization_FullMethodName:   server.NameOnly("name", orgName, (*registryv1.PurgeOrganizationRequest).GetName),
		registryv1.RegistryService_CreateServer_FullMethodName:        server.ValidatorOf(validateCreateServer),
		registryv1.RegistryService_GetServer_FullMethodName:           server.NameOnly("name", serverName, (*registryv1.GetServerRequest).GetName),
		registryv1.RegistryService_ListServers_FullMethodName:         server.NameOnly("parent", orgName, (*registryv1.ListServersRequest).GetParent),
		registryv1.RegistryService_UpdateServer_FullMethodName:        server.ValidatorOf(validateUpdateServer),
		registryv1.RegistryService_DeleteServer_FullMethodName:        server.NameOnly("name", serverName, (*registryv1.DeleteServerRequest).GetName),
		registryv1.RegistryService_CreateVersion_FullMethodName:       server.ValidatorOf(validateCreateVersion),
		registryv1.RegistryService_ImportServerJson_FullMethodName:    server.ValidatorOf(validateImportServerJSON),
		registryv1.RegistryService_GetVersion_FullMethodName:          server.ValidatorOf(validateGetVersion),
		registryv1.RegistryService_ListVersions_FullMethodName:        server.NameOnly("parent", serverName, (*registryv1.ListVersionsRequest).GetParent),
		registryv1.RegistryService_SetVersionStatus_FullMethodName:    server.ValidatorOf(validateSetVersionStatus),
		registryv1.RegistryService_RecordObservedTools_FullMethodName: server.ValidatorOf(validateRecordObservedTools),
		registryv1.RegistryService_SuggestNextVersion_FullMethodName:  server.NameOnly("parent", serverName, (*registryv1.SuggestNextVersionRequest).GetParent),
		registryv1.RegistryService_DiffVersions_FullMethodName:        server.ValidatorOf(validateDiffVersions),
		registryv1.RegistryService_ExportServerJson_FullMethodName:    server.ValidatorOf(validateExportServerJSON),
		registryv1.RegistryService_CreateRegistry_FullMethodName:      server.ValidatorOf(validateCreateRegistry),
		registryv1.RegistryService_GetConnectConfig_FullMethodName:    server.ValidatorOf(validateGetConnectConfig),
		registryv1.RegistryService_GetRegistry_FullMethodName:         server.NameOnly("name", registryName, (*registryv1.GetRegistryRequest).GetName),
		registryv1.RegistryService_ListRegistries_FullMethodName:      server.NameOnly("parent", orgName, (*registryv1.ListRegistriesRequest).GetParent),
		registryv1.RegistryService_UpdateRegistry_FullMethodName:      server.ValidatorOf(validateUpdateRegistry),
		registryv1.RegistryService_DeleteRegistry_FullMethodName:      server.NameOnly("name", registryName, (*registryv1.DeleteRegistryRequest).GetName),
		registryv1.RegistryService_PinEntry_FullMethodName:            server.ValidatorOf(validatePinEntry),
		registryv1.RegistryService_UnpinEntry_FullMethodName:          server.NameOnly("name", entryName, (*registryv1.UnpinEntryRequest).GetName),
		registryv1.RegistryService_PromoteEntry_FullMethodName:        server.ValidatorOf(validatePromoteEntry),
		registryv1.RegistryService_GetEntry_FullMethodName:            server.NameOnly("name", entryName, (*registryv1.GetEntryRequest).GetName),
		registryv1.RegistryService_ListEntries_FullMethodName:         server.ValidatorOf(validateListEntries),
		registryv1.RegistryService_RenderOfficial_FullMethodName:      server.ValidatorOf(validateRenderOfficial),
		registryv1.RegistryService_WatchEntries_FullMethodName:        server.NameOnly("parent", registryName, (*registryv1.WatchEntriesRequest).GetParent),
		registryv1.RegistryService_ListApprovals_FullMethodName:       server.NameOnly("parent", registryName, (*registryv1.ListApprovalsRequest).GetParent),
		registryv1.RegistryService_GetApproval_FullMethodName:         looseNameOnly("name", approvalName, (*registryv1.GetApprovalRequest).GetName),
		registryv1.RegistryService_Approve_FullMethodName:             looseNameOnly("name", approvalName, (*registryv1.ApproveRequest).GetName),
		registryv1.RegistryService_Reject_FullMethodName:              looseNameOnly("name", approvalName, (*registryv1.RejectRequest).GetName),
		registryv1.RegistryService_CancelApproval_FullMethodName:      looseNameOnly("name", approvalName, (*registryv1.CancelApprovalRequest).GetName),
	}
}

// --- servers ----------------------------------------------------------------

func validateCreateServer(r *registryv1.CreateServerRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), orgName)
	// Required at creation only: an update cannot change it.
	if n := r.GetServer().GetServerName(); len(n) < 3 || len(n) > 200 || !officialName.MatchString(n) {
		v.Add("server.server_name", "must be a reverse-DNS namespace, a slash and a name, e.g. com.acme/github (3 to 200 characters)")
	}
	checkServerFields(&v, r.GetServer(), store.Updatable)
	return v.Err()
}

func validateUpdateServer(r *registryv1.UpdateServerRequest) error {
	var v errs.Violations
	checkName(&v, "server.name", r.GetServer().GetName(), serverName)
	if paths, err := serverPaths(r); err != nil {
		v.Check("update_mask", err)
	} else {
		checkServerFields(&v, r.GetServer(), paths)
	}
	return v.Err()
}

// serverPaths are the fields an UpdateServer changes.
func serverPaths(r *registryv1.UpdateServerRequest) ([]string, error) {
	return aip.UpdatePaths(r.GetUpdateMask(), r.GetServer(), store.Updatable)
}

// checkServerFields checks the named fields of a server; their lengths are
// declared in the proto.
func checkServerFields(v *errs.Violations, s *registryv1.Server, fields []string) {
	for _, f := range fields {
		switch f {
		case "title":
			v.Check("server.title", aip.CheckPrintable(s.GetTitle(), false))
		case "description":
			v.Check("server.description", aip.CheckPrintable(s.GetDescription(), false))
		case "repository":
			if u := s.GetRepository().GetUrl(); u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
				v.Add("server.repository.url", "must be an http(s) URL")
			}
		case "website_url":
			if u := s.GetWebsiteUrl(); u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
				v.Add("server.website_url", "must be an http(s) URL")
			}
		case "icons":
			for i, icon := range s.GetIcons() {
				if !strings.HasPrefix(icon.GetSrc(), "https://") {
					v.Add(fmt.Sprintf("server.icons[%d].src", i), "must be an https URL")
				}
			}
		}
	}
}

// --- versions ---------------------------------------------------------------

func validateCreateVersion(r *registryv1.CreateVersionRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), serverName)
	if _, err := semvers.Parse(r.GetVersion().GetVersion()); err != nil {
		v.Check("version.version", err)
	}
	checkTools(&v, "version.tools", r.GetVersion().GetTools())
	return v.Err()
}

func validateImportServerJSON(r *registryv1.ImportServerJsonRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), serverName)
	if len(r.GetServerJson()) > serverjson.MaxSize {
		v.Add("server_json", "must be at most %d bytes", serverjson.MaxSize)
	}
	if r.GetVersion() != "" {
		if _, err := semvers.Parse(r.GetVersion()); err != nil {
			v.Check("version", err)
		}
	}
	checkTools(&v, "tools", r.GetTools())
	return v.Err()
}

func validateGetConnectConfig(r *registryv1.GetConnectConfigRequest) error {
	var v errs.Violations
	checkName(&v, "name", r.GetName(), registryName)
	if r.GetServer() != "" {
		v.Check("server", aip.ValidateSegmentID(r.GetServer()))
	}
	return v.Err()
}

func validateGetVersion(r *registryv1.GetVersionRequest) error {
	var v errs.Violations
	checkVersionName(&v, "name", r.GetName(), true)
	return v.Err()
}

func validateSetVersionStatus(r *registryv1.SetVersionStatusRequest) error {
	var v errs.Violations
	checkVersionName(&v, "name", r.GetName(), false)
	return v.Err()
}

// maxObservedTools bounds an observed listing, as a published one.
const maxObservedTools = 1000

func validateRecordObservedTools(r *registryv1.RecordObservedToolsRequest) error {
	var v errs.Violations
	checkVersionName(&v, "name", r.GetName(), false)
	if len(r.GetTools()) > maxObservedTools {
		v.Add("tools", "must list at most %d tools", maxObservedTools)
		return v.Err()
	}
	// A server names its tools itself: any printable name up to the
	// length a published tool may have. The rest as for published tools.
	for i, t := range r.GetTools() {
		p := fmt.Sprintf("tools[%d]", i)
		if n := t.GetName(); n == "" || len(n) > 128 {
			v.Add(p+".name", "must be 1 to 128 bytes")
		} else {
			v.Check(p+".name", aip.CheckPrintable(n, false))
		}
		if len(t.GetTitle()) > 200 {
			v.Add(p+".title", "must be at most 200 bytes")
		}
		if len(t.GetDescription()) > 10000 {
			v.Add(p+".description", "must be at most 10000 bytes")
		}
		a := t.GetAnnotations().GetTitle()
		if len(a) > 200 {
			v.Add(p+".annotations.title", "must be at most 200 bytes")
		} else {
			v.Check(p+".annotations.title", aip.CheckPrintable(a, false))
		}
	}
	checkTools(&v, "tools", r.GetTools())
	return v.Err()
}

func validateDiffVersions(r *registryv1.DiffVersionsRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), serverName)
	for _, f := range []struct{ name, val string }{{"base", r.GetBase()}, {"target", r.GetTarget()}} {
		if f.val == "latest" {
			continue
		}
		if _, err := semvers.Parse(f.val); err != nil {
			v.Check(f.name, err)
		}
	}
	return v.Err()
}

func validateExportServerJSON(r *registryv1.ExportServerJsonRequest) error {
	var v errs.Violations
	checkVersionName(&v, "name", r.GetName(), true)
	return v.Err()
}

// checkVersionName checks `orgs/{org}/servers/{server}/versions/{version}`
// with a SemVer version (or `latest`, where allowed).
func checkVersionName(v *errs.Violations, field, name string, allowLatest bool) {
	vals, err := versionName.ParseLoose(name)
	if err != nil {
		v.Check(field, err)
		return
	}
	if _, err := serverName.Parse("orgs/" + vals[0] + "/servers/" + vals[1]); err != nil {
		v.Check(field, err)
	}
	if allowLatest && vals[2] == "latest" {
		return
	}
	if _, err := semvers.Parse(vals[2]); err != nil {
		v.Add(field, "{version} %v", err)
	}
}

// checkTools checks a version's tool list (field prefixes the paths): the
// names are unique, the text is printable and the schemas are objects.
// Names, lengths and the list's size are declared in the proto.
func checkTools(v *errs.Violations, field string, tools []*registryv1.Tool) {
	seen := map[string]bool{}
	for i, t := range tools {
		p := fmt.Sprintf("%s[%d]", field, i)
		if seen[t.GetName()] {
			v.Add(p+".name", "%q is listed twice", t.GetName())
		}
		seen[t.GetName()] = true
		// Tool descriptions are Markdown for models: newlines allowed.
		v.Check(p+".description", aip.CheckPrintable(t.GetDescription(), true))
		v.Check(p+".title", aip.CheckPrintable(t.GetTitle(), false))
		checkSchema(v, p+".input_schema", t.GetInputSchema())
		checkSchema(v, p+".output_schema", t.GetOutputSchema())
	}
}

// checkSchema checks an optional tool schema is a JSON Schema of an object.
func checkSchema(v *errs.Violations, field string, schema *structpb.Struct) {
	if schema != nil && structDepth(schema, serverjson.MaxDepth+1) > serverjson.MaxDepth {
		v.Add(field, "nests more than %d levels deep", serverjson.MaxDepth)
		return
	}
	if schema != nil && schema.GetFields()["type"].GetStringValue() != "object" {
		v.Add(field, `must be a JSON Schema with "type": "object"`)
	}
}

// --- registries and entries -------------------------------------------------

func validateCreateRegistry(r *registryv1.CreateRegistryRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), orgName)
	checkRegistry(&v, r.GetRegistry(), registryFields)
	return v.Err()
}

func validateUpdateRegistry(r *registryv1.UpdateRegistryRequest) error {
	var v errs.Violations
	checkName(&v, "registry.name", r.GetRegistry().GetName(), registryName)
	if paths, err := registryPaths(r); err != nil {
		v.Check("update_mask", err)
	} else {
		checkRegistry(&v, r.GetRegistry(), paths)
	}
	return v.Err()
}

// registryPaths are the fields an UpdateRegistry changes.
func registryPaths(r *registryv1.UpdateRegistryRequest) ([]string, error) {
	return aip.UpdatePaths(r.GetUpdateMask(), r.GetRegistry(), registryFields)
}

// checkRegistry checks the named settings of a registry given in a
// request; sizes, ranges and enums are declared in the proto.
func checkRegistry(v *errs.Violations, r *registryv1.Registry, fields []string) {
	for _, f := range fields {
		switch f {
		case "description":
			v.Check("registry.description", aip.CheckPrintable(r.GetDescription(), false))
		case "parent":
			if p := r.GetParent(); p != "" && !strings.Contains(p, "/") {
				v.Check("registry.parent", aip.ValidateSegmentID(p))
			} else if p != "" {
				checkName(v, "registry.parent", p, registryName)
			}
		case "owner_teams":
			for i, t := range r.GetOwnerTeams() {
				f := fmt.Sprintf("registry.owner_teams[%d]", i)
				if !strings.Contains(t, "/") {
					v.Check(f, aip.ValidateSegmentID(t))
				} else {
					checkName(v, f, t, teamName)
				}
			}
		case "namespaces":
			for i, n := range r.GetNamespaces() {
				if !namespacePattern.MatchString(n) {
					v.Add(fmt.Sprintf("registry.namespaces[%d]", i), "must be a reverse-DNS namespace such as com.acme")
				}
			}
		case "rollout_policy":
			checkRollout(v, r.GetRolloutPolicy())
		}
	}
}

// checkRollout checks what a rollout's steps need of its strategy.
func checkRollout(v *errs.Violations, p *registryv1.RolloutPolicy) {
	if p == nil {
		return
	}
	switch p.GetStrategy() {
	case registryv1.RolloutPolicy_STRATEGY_CANARY:
		if len(p.GetSteps()) == 0 || len(p.GetSteps()) > 20 {
			v.Add("registry.rollout_policy.steps", "must hold 1 to 20 steps for a canary")
		}
		last := int32(0)
		for i, st := range p.GetSteps() {
			f := fmt.Sprintf("registry.rollout_policy.steps[%d]", i)
			if st.GetWeightPercent() < 1 || st.GetWeightPercent() > 100 || st.GetWeightPercent() <= last {
				v.Add(f+".weight_percent", "must be 1 to 100 and greater than the step before")
			}
			last = st.GetWeightPercent()
			if d := st.GetPause(); d != nil && (d.CheckValid() != nil || d.AsDuration() < 0 || d.AsDuration().Hours() > 24*7) {
				v.Add(f+".pause", "must be between 0 and 7 days")
			}
		}
	default:
		if len(p.GetSteps()) > 0 {
			v.Add("registry.rollout_policy.steps", "are only for the CANARY strategy")
		}
	}
}

func validatePinEntry(r *registryv1.PinEntryRequest) error {
	var v errs.Violations
	checkName(&v, "name", r.GetName(), entryName)
	switch {
	case r.GetVersion() == "" && r.GetVersionRange() == "":
		v.Add("version", "is required (or version_range, in a registry that auto-upgrades)")
	case r.GetVersion() != "" && r.GetVersionRange() != "":
		v.Add("version_range", "must be empty when version is set")
	case r.GetVersion() != "":
		if _, err := semvers.Parse(r.GetVersion()); err != nil {
			v.Check("version", fmt.Errorf("%v (a range goes in version_range)", err))
		}
	default:
		if _, err := semvers.ParseRange(r.GetVersionRange()); err != nil {
			v.Check("version_range", err)
		}
	}
	return v.Err()
}

func validatePromoteEntry(r *registryv1.PromoteEntryRequest) error {
	var v errs.Violations
	checkName(&v, "name", r.GetName(), entryName)
	checkName(&v, "target_registry", r.GetTargetRegistry(), registryName)
	if orgOf(r.GetTargetRegistry()) != orgOf(r.GetName()) {
		v.Add("target_registry", "must be in the organization of the entry")
	}
	if r.GetTargetRegistry() == registryOfEntry(r.GetName()) {
		v.Add("target_registry", "must differ from the entry's registry")
	}
	return v.Err()
}

func validateListEntries(r *registryv1.ListEntriesRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), registryName)
	if ts := r.GetUpdatedSince(); ts != nil && ts.CheckValid() != nil {
		v.Add("updated_since", "must be a valid timestamp")
	}
	return v.Err()
}

func validateRenderOfficial(r *registryv1.RenderOfficialRequest) error {
	var v errs.Violations
	checkName(&v, "parent", r.GetParent(), registryName)
	if ts := r.GetUpdatedSince(); ts != nil && ts.CheckValid() != nil {
		v.Add("updated_since", "must be a valid timestamp")
	}
	if r.GetVersion() != "" && r.GetServerName() == "" {
		v.Add("version", "needs server_name")
	}
	return v.Err()
}

// --- names ------------------------------------------------------------------

// looseNameOnly is server.NameOnly for a name whose last id is not a slug (an
// approval's UUID).
func looseNameOnly[T proto.Message](field string, p aip.Pattern, name func(T) string) server.Validator {
	return server.ValidatorOf(func(r T) error {
		if _, err := p.ParseLoose(name(r)); err != nil {
			return errs.Field(field, "%v", err)
		}
		return nil
	})
}

// checkName checks that name has the form of p, with valid ids.
func checkName(v *errs.Violations, field, name string, p aip.Pattern) {
	_, err := p.Parse(name)
	v.Check(field, err)
}
