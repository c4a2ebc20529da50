package registry

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/registry/internal/semvers"
	"github.com/pyleeai/pylee/services/registry/internal/serverjson"
)

// checkLoose checks a name whose last id is not a slug (a version).
func checkLoose(v *errs.Violations, field, name string, p aip.Pattern) {
	if name == "" {
		v.Add(field, "is required")
	} else if _, err := p.ParseLoose(name); err != nil {
		v.Check(field, err)
	}
}

func checkVersionName(v *errs.Violations, field, name string, allowLatest bool) {
	checkLoose(v, field, name, versionName)
	if vals, err := versionName.ParseLoose(name); err == nil {
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
}

func checkPage(v *errs.Violations, size int32) {
	if _, err := aip.PageSize(size, defaultPageSize, maxPageSize); err != nil {
		v.Check("page_size", err)
	}
}

func maxLen(v *errs.Violations, field, s string, n int) {
	if utf8.RuneCountInString(s) > n {
		v.Add(field, "must be at most %d characters", n)
	}
}

type check func(v *errs.Violations, m proto.Message)

func validator(c check) server.Validator {
	return func(m proto.Message) error {
		var v errs.Violations
		c(&v, m)
		return v.Err()
	}
}

func moreValidators() map[string]server.Validator {
	checks := map[string]check{
		registryv1.RegistryService_CreateVersion_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.CreateVersionRequest)
			checkName(v, "parent", r.GetParent(), serverName)
			if r.GetVersion() == nil {
				v.Add("version", "is required")
				return
			}
			if _, err := semvers.Parse(r.GetVersion().GetVersion()); err != nil {
				v.Check("version.version", err)
			}
			maxLen(v, "version.release_notes", r.GetVersion().GetReleaseNotes(), 20000)
			checkTools(v, "version.tools", r.GetVersion().GetTools())
		},
		registryv1.RegistryService_ImportServerJson_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.ImportServerJsonRequest)
			checkName(v, "parent", r.GetParent(), serverName)
			switch {
			case r.GetServerJson() == "":
				v.Add("server_json", "is required")
			case len(r.GetServerJson()) > serverjson.MaxSize:
				v.Add("server_json", "must be at most %d bytes", serverjson.MaxSize)
			}
			if r.GetVersion() != "" {
				if _, err := semvers.Parse(r.GetVersion()); err != nil {
					v.Check("version", err)
				}
			}
			maxLen(v, "release_notes", r.GetReleaseNotes(), 20000)
			checkTools(v, "tools", r.GetTools())
		},
		registryv1.RegistryService_GetVersion_FullMethodName: func(v *errs.Violations, m proto.Message) {
			checkVersionName(v, "name", m.(*registryv1.GetVersionRequest).GetName(), true)
		},
		registryv1.RegistryService_ListVersions_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.ListVersionsRequest)
			checkName(v, "parent", r.GetParent(), serverName)
			checkPage(v, r.GetPageSize())
		},
		registryv1.RegistryService_SetVersionStatus_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.SetVersionStatusRequest)
			checkVersionName(v, "name", r.GetName(), false)
			if statusFromProto(r.GetStatus()) == "" {
				v.Add("status", "must be STATUS_ACTIVE, STATUS_DEPRECATED or STATUS_YANKED")
			}
			maxLen(v, "message", r.GetMessage(), 2000)
		},
		registryv1.RegistryService_SuggestNextVersion_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.SuggestNextVersionRequest)
			checkName(v, "parent", r.GetParent(), serverName)
			switch r.GetBump() {
			case "patch", "minor", "major":
			default:
				v.Add("bump", "must be patch, minor or major")
			}
			maxLen(v, "prerelease", r.GetPrerelease(), 32)
		},
		registryv1.RegistryService_DiffVersions_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.DiffVersionsRequest)
			checkName(v, "parent", r.GetParent(), serverName)
			for _, f := range []struct{ name, val string }{{"base", r.GetBase()}, {"target", r.GetTarget()}} {
				if f.val == "latest" {
					continue
				}
				if _, err := semvers.Parse(f.val); err != nil {
					v.Check(f.name, err)
				}
			}
		},
		registryv1.RegistryService_ExportServerJson_FullMethodName: func(v *errs.Violations, m proto.Message) {
			checkVersionName(v, "name", m.(*registryv1.ExportServerJsonRequest).GetName(), true)
		},
		registryv1.RegistryService_CreateRegistry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.CreateRegistryRequest)
			checkName(v, "parent", r.GetParent(), orgName)
			v.Check("registry_id", aip.ValidateSegmentID(r.GetRegistryId()))
			if r.GetRegistry() == nil {
				v.Add("registry", "is required")
				return
			}
			checkRegistry(v, r.GetRegistry(), registryFields)
			maxLen(v, "request_id", r.GetRequestId(), 128)
		},
		registryv1.RegistryService_GetRegistry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			checkName(v, "name", m.(*registryv1.GetRegistryRequest).GetName(), registryName)
		},
		registryv1.RegistryService_ListRegistries_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.ListRegistriesRequest)
			checkName(v, "parent", r.GetParent(), orgName)
			checkPage(v, r.GetPageSize())
		},
		registryv1.RegistryService_UpdateRegistry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.UpdateRegistryRequest)
			if r.GetRegistry() == nil {
				v.Add("registry", "is required")
				return
			}
			checkName(v, "registry.name", r.GetRegistry().GetName(), registryName)
			paths, err := aip.UpdatePaths(r.GetUpdateMask(), r.GetRegistry(), registryFields)
			if err != nil {
				v.Check("update_mask", err)
			} else {
				checkRegistry(v, r.GetRegistry(), paths)
			}
			maxLen(v, "reason", r.GetReason(), 2000)
		},
		registryv1.RegistryService_DeleteRegistry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			checkName(v, "name", m.(*registryv1.DeleteRegistryRequest).GetName(), registryName)
		},
		registryv1.RegistryService_PinEntry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.PinEntryRequest)
			checkName(v, "name", r.GetName(), entryName)
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
			maxLen(v, "reason", r.GetReason(), 2000)
		},
		registryv1.RegistryService_UnpinEntry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.UnpinEntryRequest)
			checkName(v, "name", r.GetName(), entryName)
			maxLen(v, "reason", r.GetReason(), 2000)
		},
		registryv1.RegistryService_PromoteEntry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.PromoteEntryRequest)
			checkName(v, "name", r.GetName(), entryName)
			checkName(v, "target_registry", r.GetTargetRegistry(), registryName)
			if r.GetTargetRegistry() != "" && orgOf(r.GetTargetRegistry()) != orgOf(r.GetName()) {
				v.Add("target_registry", "must be in the organization of the entry")
			}
			if r.GetTargetRegistry() == registryOfEntry(r.GetName()) {
				v.Add("target_registry", "must differ from the entry's registry")
			}
			maxLen(v, "reason", r.GetReason(), 2000)
		},
		registryv1.RegistryService_GetEntry_FullMethodName: func(v *errs.Violations, m proto.Message) {
			checkName(v, "name", m.(*registryv1.GetEntryRequest).GetName(), entryName)
		},
		registryv1.RegistryService_ListEntries_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.ListEntriesRequest)
			checkName(v, "parent", r.GetParent(), registryName)
			checkPage(v, r.GetPageSize())
			maxLen(v, "search", r.GetSearch(), 200)
			maxLen(v, "server_name", r.GetServerName(), 200)
			maxLen(v, "version", r.GetVersion(), 128)
			if ts := r.GetUpdatedSince(); ts != nil && ts.CheckValid() != nil {
				v.Add("updated_since", "must be a valid timestamp")
			}
		},
		registryv1.RegistryService_WatchEntries_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.WatchEntriesRequest)
			checkName(v, "parent", r.GetParent(), registryName)
			if r.GetSinceRevision() < 0 {
				v.Add("since_revision", "must not be negative")
			}
		},
		registryv1.RegistryService_ListApprovals_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.ListApprovalsRequest)
			checkName(v, "parent", r.GetParent(), registryName)
			checkPage(v, r.GetPageSize())
		},
		registryv1.RegistryService_GetApproval_FullMethodName: func(v *errs.Violations, m proto.Message) {
			checkLoose(v, "name", m.(*registryv1.GetApprovalRequest).GetName(), approvalName)
		},
		registryv1.RegistryService_Approve_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.ApproveRequest)
			checkLoose(v, "name", r.GetName(), approvalName)
			maxLen(v, "comment", r.GetComment(), 2000)
		},
		registryv1.RegistryService_Reject_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.RejectRequest)
			checkLoose(v, "name", r.GetName(), approvalName)
			maxLen(v, "comment", r.GetComment(), 2000)
		},
		registryv1.RegistryService_CancelApproval_FullMethodName: func(v *errs.Violations, m proto.Message) {
			r := m.(*registryv1.CancelApprovalRequest)
			checkLoose(v, "name", r.GetName(), approvalName)
			maxLen(v, "comment", r.GetComment(), 2000)
		},
	}
	out := map[string]server.Validator{}
	for k, c := range checks {
		out[k] = validator(c)
	}
	return out
}
