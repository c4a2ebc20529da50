package orgs

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/orgs/internal/store"
	"google.golang.org/protobuf/proto"
)

// Field limits of an organization.
const (
	maxDisplayName = 200
	maxDescription = 1000
	maxOverview    = 100_000
	maxRequestID   = 128
)

// Validators returns the request validator of every RPC, keyed by full
// method name; the server refuses to start without one per RPC.
func Validators() map[string]server.Validator {
	return map[string]server.Validator{
		orgsv1.OrgsService_CreateOrganization_FullMethodName: func(m proto.Message) error {
			return validateCreateOrganization(m.(*orgsv1.CreateOrganizationRequest))
		},
		orgsv1.OrgsService_GetOrganization_FullMethodName: func(m proto.Message) error {
			return validateGetOrganization(m.(*orgsv1.GetOrganizationRequest))
		},
		orgsv1.OrgsService_ListOrganizations_FullMethodName: func(m proto.Message) error {
			return validateListOrganizations(m.(*orgsv1.ListOrganizationsRequest))
		},
		orgsv1.OrgsService_UpdateOrganization_FullMethodName: func(m proto.Message) error {
			return validateUpdateOrganization(m.(*orgsv1.UpdateOrganizationRequest))
		},
		orgsv1.OrgsService_VerifyToken_FullMethodName: func(m proto.Message) error {
			if m.(*orgsv1.VerifyTokenRequest).GetToken() == "" {
				return errs.Field("token", "is required")
			}
			return nil
		},
		orgsv1.OrgsService_DeleteOrganization_FullMethodName: func(m proto.Message) error {
			return validateDeleteOrganization(m.(*orgsv1.DeleteOrganizationRequest))
		},
	}
}

func validateCreateOrganization(req *orgsv1.CreateOrganizationRequest) error {
	var v errs.Violations
	if req.GetOrganizationId() == "" {
		v.Add("organization_id", "is required")
	} else {
		v.Check("organization_id", aip.ValidateID(req.GetOrganizationId()))
	}
	if req.GetOrganization() == nil {
		v.Add("organization", "is required")
	} else {
		checkOrganizationFields(&v, req.GetOrganization(), updatable)
	}
	if len(req.GetRequestId()) > maxRequestID {
		v.Add("request_id", "must be at most %d characters", maxRequestID)
	}
	return v.Err()
}

func validateGetOrganization(req *orgsv1.GetOrganizationRequest) error {
	var v errs.Violations
	checkName(&v, "name", req.GetName())
	return v.Err()
}

func validateListOrganizations(req *orgsv1.ListOrganizationsRequest) error {
	var v errs.Violations
	if _, err := aip.PageSize(req.GetPageSize(), defaultPageSize, maxPageSize); err != nil {
		v.Check("page_size", err)
	}
	if _, err := parseFilter(req.GetFilter()); err != nil {
		v.Check("filter", err)
	}
	return v.Err()
}

func validateUpdateOrganization(req *orgsv1.UpdateOrganizationRequest) error {
	var v errs.Violations
	if req.GetOrganization() == nil {
		v.Add("organization", "is required")
		return v.Err()
	}
	checkName(&v, "organization.name", req.GetOrganization().GetName())
	paths, err := aip.UpdatePaths(req.GetUpdateMask(), req.GetOrganization(), updatable)
	if err != nil {
		v.Check("update_mask", err)
	} else {
		checkOrganizationFields(&v, req.GetOrganization(), paths)
	}
	return v.Err()
}

func validateDeleteOrganization(req *orgsv1.DeleteOrganizationRequest) error {
	var v errs.Violations
	checkName(&v, "name", req.GetName())
	return v.Err()
}

func checkName(v *errs.Violations, field, name string) {
	if name == "" {
		v.Add(field, "is required")
		return
	}
	if _, err := OrgName.Parse(name); err != nil {
		v.Check(field, err)
	}
}

// checkOrganizationFields checks the named fields of o.
func checkOrganizationFields(v *errs.Violations, o *orgsv1.Organization, fields []string) {
	for _, f := range fields {
		var val string
		var max int
		switch f {
		case store.FieldDisplayName:
			val, max = o.GetDisplayName(), maxDisplayName
		case store.FieldDescription:
			val, max = o.GetDescription(), maxDescription
		case store.FieldOverview:
			val, max = o.GetOverview(), maxOverview
		}
		if f == store.FieldOIDC {
			checkOIDC(v, o.GetOidc())
			continue
		}
		// The overview is Markdown; the others are single lines.
		v.Check("organization."+f, aip.CheckText(val, max, f == store.FieldOverview))
	}
}

// orgFilter is a parsed ListOrganizations filter.
type orgFilter struct {
	equals   *string
	contains string
}

func (f orgFilter) apply(q *store.OrganizationQuery) {
	q.DisplayNameEquals = f.equals
	q.DisplayNameContains = f.contains
}

// parseFilter reads the AIP-160 subset ListOrganizations supports:
// `display_name = "text"` (exact) and `display_name : "text"` (contains,
// ignoring case).
func parseFilter(s string) (orgFilter, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return orgFilter{}, nil
	}
	i := strings.IndexAny(s, "=:")
	if i < 0 {
		return orgFilter{}, fmt.Errorf(`unsupported filter %q: use display_name = "text" or display_name : "text"`, s)
	}
	field, op, lit := strings.TrimSpace(s[:i]), s[i], strings.TrimSpace(s[i+1:])
	if field != "display_name" {
		return orgFilter{}, fmt.Errorf(`unsupported filter field %q: only display_name can be filtered on`, field)
	}
	val, err := strconv.Unquote(lit)
	if err != nil || !strings.HasPrefix(lit, `"`) {
		return orgFilter{}, fmt.Errorf(`value in %q must be a double-quoted string`, s)
	}
	if op == '=' {
		return orgFilter{equals: &val}, nil
	}
	if val == "" {
		return orgFilter{}, fmt.Errorf(`value of ":" must not be empty`)
	}
	return orgFilter{contains: val}, nil
}

// checkOIDC checks an identity provider configuration; an empty issuer
// means none.
func checkOIDC(v *errs.Violations, c *orgsv1.OidcConfig) {
	if c.GetIssuer() == "" {
		return
	}
	if !secureURL(c.GetIssuer()) {
		v.Add("organization.oidc.issuer", "must be an https URL (http only for localhost)")
	}
	if c.GetAudience() == "" || len(c.GetAudience()) > 255 {
		v.Add("organization.oidc.audience", "is required with an issuer (at most 255 characters)")
	}
	if c.GetJwksUri() != "" && !secureURL(c.GetJwksUri()) {
		v.Add("organization.oidc.jwks_uri", "must be an https URL (http only for localhost)")
	}
	if len(c.GetGroupsClaim()) > 64 {
		v.Add("organization.oidc.groups_claim", "must be at most 64 characters")
	}
}

func secureURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	host := u.Hostname()
	return u.Scheme == "https" || u.Scheme == "http" && (host == "localhost" || host == "127.0.0.1" || host == "::1")
}
