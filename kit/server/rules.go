package server

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	apiv1 "github.com/pyleeai/pylee/gen/go/pylee/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Rule is the access rule an RPC declares with the (pylee.api.v1.auth)
// method option.
type Rule struct {
	Permission    string
	ResourceField string
	Public        bool
	// Filtered: the handler decides per item (see pylee.api.v1.AuthRule).
	Filtered bool
	// Services are the targets whose service identities may call the RPC
	// ("*": every target); any other service identity is refused.
	Services []string
	// Action is the RPC's audit action: declared, or derived from the
	// method name (DeriveAction).
	Action string
}

// RulesOf reads the access rules of every method of the services registered
// on srv, and fails naming every method that declares no rule, or no
// validator in validators (DeclaredOnly counts for a request that declares
// rules in its proto, or has no fields). Health and reflection are
// infrastructure and need neither.
func RulesOf(srv *grpc.Server, validators map[string]Validator) (map[string]Rule, error) {
	rules := map[string]Rule{}
	var missing []string
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if isInfrastructure(full) {
				continue
			}
			rule, ok := ruleOf(svc, m.Name)
			if !ok {
				missing = append(missing, full+" (no pylee.api.v1.auth option)")
				continue
			}
			if v, ok := validators[full]; !ok {
				missing = append(missing, full+" (no request validator)")
			} else if req := requestOf(svc, m.Name); v == nil && (req == nil || req.Fields().Len() > 0 && !declaresRules(req)) {
				missing = append(missing, full+" (DeclaredOnly, but its request declares no rule)")
			}
			rules[full] = rule
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("unguarded RPCs: %s", strings.Join(missing, ", "))
	}
	return rules, nil
}

// RuleFor returns the access rule a full method name
// (`/pylee.orgs.v1.OrgsService/GetOrganization`) declares.
func RuleFor(fullMethod string) (Rule, bool) {
	svc, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return Rule{}, false
	}
	return ruleOf(svc, method)
}

func methodOf(service, method string) protoreflect.MethodDescriptor {
	sd, err := serviceDescriptor(service)
	if err != nil {
		return nil
	}
	return sd.Methods().ByName(protoreflect.Name(method))
}

// requestOf is the request message of a method; nil for an unknown one.
func requestOf(service, method string) protoreflect.MessageDescriptor {
	if md := methodOf(service, method); md != nil {
		return md.Input()
	}
	return nil
}

func ruleOf(service, method string) (Rule, bool) {
	md := methodOf(service, method)
	if md == nil {
		return Rule{}, false
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, apiv1.E_Auth) {
		return Rule{}, false
	}
	r := proto.GetExtension(opts, apiv1.E_Auth).(*apiv1.AuthRule)
	if !r.GetPublic() && r.GetPermission() == "" {
		return Rule{}, false
	}
	action := r.GetAction()
	if action == "" {
		action = DeriveAction("/" + service + "/" + method)
	}
	return Rule{Permission: r.GetPermission(), ResourceField: r.GetResourceField(), Public: r.GetPublic(), Filtered: r.GetFiltered(),
		Services: r.GetServices(), Action: action}, true
}

// fieldString reads a string field of msg by dotted path; "" if absent.
func fieldString(msg proto.Message, path string) string {
	m := msg.ProtoReflect()
	parts := strings.Split(path, ".")
	for i, p := range parts {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(p))
		if fd == nil {
			return ""
		}
		if i == len(parts)-1 {
			if fd.Kind() != protoreflect.StringKind {
				return ""
			}
			return m.Get(fd).String()
		}
		if fd.Message() == nil || !m.Has(fd) {
			return ""
		}
		m = m.Get(fd).Message()
	}
	return ""
}

// ActionFor is the audit action of a full method name
// (`/pylee.orgs.v1.AccessService/DeleteToken`): the one its rule declares
// or the one its name gives. Handlers record their success events with it
// and refusals are recorded with it, so both carry the same action. A
// plain HTTP route's name (HTTPRule.Name) is its action already.
func ActionFor(fullMethod string) string {
	if rule, ok := RuleFor(fullMethod); ok {
		return rule.Action
	}
	return DeriveAction(fullMethod)
}

// DeriveAction derives `<service>.<resource>.<verb>` from a full gRPC
// method name: `/pylee.orgs.v1.OrgsService/ListOrganizations` is
// `orgs.organization.list`.
func DeriveAction(fullMethod string) string {
	if !strings.HasPrefix(fullMethod, "/") && strings.Count(fullMethod, ".") == 2 {
		return fullMethod
	}
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	parts := strings.Split(svc, ".")
	service := "unknown"
	if len(parts) >= 2 {
		service = parts[1]
	}
	if method == "" {
		return service + ".call.unknown"
	}
	verbEnd := 1
	for verbEnd < len(method) && !unicode.IsUpper(rune(method[verbEnd])) {
		verbEnd++
	}
	verb, resource := strings.ToLower(method[:verbEnd]), method[verbEnd:]
	if resource == "" {
		resource = "call"
	}
	resource = strings.TrimSuffix(strings.ToLower(resource[:1])+resource[1:], "s")
	return service + "." + resource + "." + verb
}
