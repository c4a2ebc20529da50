package secrets

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/services/secrets/internal/backend"
)

// The four scopes a value is set at.
var scopePatterns = []aip.Pattern{
	aip.MustPattern("orgs/{org}"),
	aip.MustPattern("orgs/{org}/registries/{registry}"),
	aip.MustPattern("orgs/{org}/servers/{server}"),
	aip.MustPattern("orgs/{org}/users/{user}"),
}

var (
	registryName = aip.MustPattern("orgs/{org}/registries/{registry}")
	serverName   = aip.MustPattern("orgs/{org}/servers/{server}")
	orgName      = aip.MustPattern("orgs/{org}")
)

// validUserID is the orgs service's rule for a user's id: 1 to 128 bytes
// of printable UTF-8 without a slash or a space.
func validUserID(id string) bool {
	if id == "" || len(id) > 128 || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if r == '/' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// checkUser reports why name is not users/{id}.
func checkUser(name string) error {
	id, ok := strings.CutPrefix(name, "users/")
	if !ok || !validUserID(id) {
		return fmt.Errorf("%q is not a user's name, users/{id}", name)
	}
	return nil
}

// maxNameLen bounds a NAME.
const maxNameLen = 128

// checkScope returns the organization of scope, or why it is not one. A
// user's id is the orgs service's (an OIDC subject or e-mail address is
// one), not a slug.
func checkScope(scope string) (string, error) {
	for _, p := range scopePatterns[:3] {
		if ids, err := p.Parse(scope); err == nil {
			return ids[0], nil
		}
	}
	if ids, err := scopePatterns[3].ParseLoose(scope); err == nil && aip.ValidateSegmentID(ids[0]) == nil && validUserID(ids[1]) {
		return ids[0], nil
	}
	return "", fmt.Errorf("%q is not a scope: orgs/{org}, orgs/{org}/registries/{registry}, orgs/{org}/servers/{server} or orgs/{org}/users/{user}", scope)
}

// checkName reports why name is not a NAME (an environment variable name).
func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("must be 1 to %d characters", maxNameLen)
	}
	for i, r := range name {
		ok := r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9'
		if !ok {
			return fmt.Errorf("%q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", name)
		}
	}
	return nil
}

// parseKey parses `{scope}/{secrets|variables}/{NAME}`.
func parseKey(name string) (backend.Key, error) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return backend.Key{}, fmt.Errorf("%q is not a secret or variable name: %w", name, errs.ErrInvalidArgument)
	}
	rest, id := name[:i], name[i+1:]
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return backend.Key{}, fmt.Errorf("%q is not a secret or variable name: %w", name, errs.ErrInvalidArgument)
	}
	scope, coll := rest[:j], rest[j+1:]
	var kind backend.Kind
	switch coll {
	case "secrets":
		kind = backend.Secret
	case "variables":
		kind = backend.Variable
	default:
		return backend.Key{}, fmt.Errorf("%q is not a secret or variable name: %w", name, errs.ErrInvalidArgument)
	}
	org, err := checkScope(scope)
	if err != nil {
		return backend.Key{}, fmt.Errorf("%v: %w", err, errs.ErrInvalidArgument)
	}
	if err := checkName(id); err != nil {
		return backend.Key{}, fmt.Errorf("%v: %w", err, errs.ErrInvalidArgument)
	}
	return backend.Key{Org: org, Scope: scope, Kind: kind, Name: id}, nil
}

// mustParseKey parses a name the request's validator accepted.
func mustParseKey(name string) backend.Key {
	k, err := parseKey(name)
	if err != nil {
		panic("secrets: unvalidated name reached a handler: " + err.Error())
	}
	return k
}

// mustKey is the key of NAME id of kind at scope parent, both validated.
func mustKey(parent string, kind backend.Kind, id string) backend.Key {
	org, err := checkScope(parent)
	if err != nil {
		panic("secrets: unvalidated scope reached a handler: " + err.Error())
	}
	return backend.Key{Org: org, Scope: parent, Kind: kind, Name: id}
}

// orgOf is the organization id of an org-scoped name.
func orgOf(name string) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(name, "orgs/"), "/")
	return id
}
