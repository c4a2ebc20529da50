package gateway

import (
	"net/http"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// routes are the HTTP rules of the REST facade's services, read from their
// descriptors, so a request for a known path with the wrong method can be
// answered 405 with the methods the path does take (grpc-gateway knows the
// path matched but names no methods).
type routes []route

type route struct {
	method   string
	segments []string // literal, "*" (one segment) or "**" (the rest)
	verb     string   // custom method suffix (":verify"), or ""
}

// routesOf collects the google.api.http rules of the named services.
func routesOf(services ...protoreflect.FullName) routes {
	var rs routes
	for _, name := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
		if err != nil {
			continue
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok {
			continue
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			rule, _ := proto.GetExtension(sd.Methods().Get(i).Options(), annotations.E_Http).(*annotations.HttpRule)
			if rule == nil {
				continue
			}
			for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				if rt, ok := parseRule(r); ok {
					rs = append(rs, rt)
				}
			}
		}
	}
	return rs
}

func parseRule(r *annotations.HttpRule) (route, bool) {
	var method, tmpl string
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		method, tmpl = http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		method, tmpl = http.MethodPost, p.Post
	case *annotations.HttpRule_Patch:
		method, tmpl = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Put:
		method, tmpl = http.MethodPut, p.Put
	case *annotations.HttpRule_Delete:
		method, tmpl = http.MethodDelete, p.Delete
	default:
		return route{}, false
	}
	rt := route{method: method}
	// A verb follows the last colon outside a variable: /v1/tokens:verify.
	if i := strings.LastIndex(tmpl, ":"); i > strings.LastIndex(tmpl, "}") {
		tmpl, rt.verb = tmpl[:i], tmpl[i:]
	}
	for _, seg := range splitTemplate(strings.TrimPrefix(tmpl, "/")) {
		if strings.HasPrefix(seg, "{") {
			inner := strings.TrimSuffix(strings.TrimPrefix(seg, "{"), "}")
			_, pattern, found := strings.Cut(inner, "=")
			if !found {
				pattern = "*"
			}
			rt.segments = append(rt.segments, strings.Split(pattern, "/")...)
			continue
		}
		rt.segments = append(rt.segments, seg)
	}
	return rt, true
}

// splitTemplate splits a path template on the slashes outside variables.
func splitTemplate(t string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range t {
		switch c {
		case '{':
			depth++
		case '}':
			depth--
		case '/':
			if depth == 0 {
				out = append(out, t[start:i])
				start = i + 1
			}
		}
	}
	return append(out, t[start:])
}

func (r route) match(segments []string, verb string) bool {
	if r.verb != verb {
		return false
	}
	for i, s := range r.segments {
		if s == "**" {
			return len(segments) > i
		}
		if i >= len(segments) || (s != "*" && s != segments[i]) || segments[i] == "" {
			return false
		}
	}
	return len(segments) == len(r.segments)
}

// allowed lists the methods whose rules match path, sorted.
func (rs routes) allowed(path string) []string {
	p := strings.TrimPrefix(path, "/")
	verb := ""
	if i := strings.LastIndex(p, ":"); i > strings.LastIndex(p, "/") {
		p, verb = p[:i], p[i:]
	}
	segments := strings.Split(p, "/")
	var out []string
	for _, r := range rs {
		if r.match(segments, verb) && !slices.Contains(out, r.method) {
			out = append(out, r.method)
		}
	}
	slices.Sort(out)
	return out
}
