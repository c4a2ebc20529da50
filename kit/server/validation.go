package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	validatepb "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/errs"
)

// Validator checks what the rules declared in a request's proto cannot
// say (resource-name patterns, rules across fields, parsers) and returns an
// error naming the offending field (errs.Field / errs.Violations). It runs
// only on a request that satisfies its declared rules, so it may rely on
// them (a required field is set, a length is within bounds).
type Validator func(req proto.Message) error

// ValidatorOf adapts the named validation function of one request type
// (`validateCreateOrganization(*orgsv1.CreateOrganizationRequest) error`).
func ValidatorOf[T proto.Message](fn func(req T) error) Validator {
	return func(m proto.Message) error { return fn(m.(T)) }
}

// NameOnly is the validator of a request whose one rule that needs code is
// the resource name in field (that it is set is declared in the proto): it
// must have the form of p, with valid ids.
func NameOnly[T proto.Message](field string, p aip.Pattern, name func(T) string) Validator {
	return ValidatorOf(func(r T) error {
		if _, err := p.Parse(name(r)); err != nil {
			var v errs.Violations
			v.Check(field, err)
			return v.Err()
		}
		return nil
	})
}

// DeclaredOnly is the Validator of an RPC whose request needs no check
// beyond the rules its proto declares. The server refuses it for a request
// that has fields and declares no rule on any of them.
var DeclaredOnly Validator

// Validation checks requests the one way every RPC is checked: first the
// field rules their messages declare in the proto with protovalidate
// (`buf.validate`), then, if those hold, the hand-written Validator of the
// RPC. Both give INVALID_ARGUMENT with a google.rpc.BadRequest whose field
// violations name the field by its proto path (`organization.display_name`,
// `checks[2].permission`).
type Validation struct {
	declared    protovalidate.Validator
	handwritten map[string]Validator
}

// NewValidation builds the declared rules of the requests of services (full
// names such as `pylee.orgs.v1.OrgsService`), and of every message they
// hold, once; a rule that does not compile is an error here rather than at
// a call. validators are the hand-written checks by full method name.
func NewValidation(validators map[string]Validator, services ...string) (*Validation, error) {
	var requests []protoreflect.MessageDescriptor
	for _, name := range services {
		sd, err := serviceDescriptor(name)
		if err != nil {
			return nil, err
		}
		for i := 0; i < sd.Methods().Len(); i++ {
			requests = append(requests, sd.Methods().Get(i).Input())
		}
	}
	declared, err := protovalidate.New(protovalidate.WithMessageDescriptors(requests...))
	if err != nil {
		return nil, fmt.Errorf("protovalidate: %w", err)
	}
	// Evaluating an empty message of every type reachable from a request
	// surfaces the compilation errors protovalidate keeps until a call.
	seen := map[protoreflect.FullName]bool{}
	for _, md := range requests {
		if err := checkCompiles(declared, md, seen); err != nil {
			return nil, err
		}
	}
	return &Validation{declared: declared, handwritten: validators}, nil
}

func serviceDescriptor(name string) (protoreflect.ServiceDescriptor, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("service %s: %w", name, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", name)
	}
	return sd, nil
}

func checkCompiles(v protovalidate.Validator, md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) error {
	if seen[md.FullName()] {
		return nil
	}
	seen[md.FullName()] = true
	if !md.IsMapEntry() {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
		if err != nil {
			return fmt.Errorf("message %s: %w", md.FullName(), err)
		}
		var ve *protovalidate.ValidationError
		if err := v.Validate(mt.New().Interface()); err != nil && !errors.As(err, &ve) {
			return fmt.Errorf("declared rules of %s: %w", md.FullName(), err)
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		if sub := md.Fields().Get(i).Message(); sub != nil {
			if err := checkCompiles(v, sub, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// Check validates req, the request of method: its declared rules, then its
// hand-written Validator (if any).
func (v *Validation) Check(method string, req proto.Message) error {
	if err := v.declared.Validate(req); err != nil {
		return declaredViolations(err)
	}
	if h := v.handwritten[method]; h != nil {
		return h(req)
	}
	return nil
}

// declaredViolations turns protovalidate's violations into field
// violations. Its messages start with "value " ("value is required"), which
// the field path replaces: `name: is required`, as hand-written ones read.
// A pattern's message shows the regular expression only; it gets the value
// too, quoted (control characters escaped) and clipped, so that it says what
// was wrong, as the hand-written id checks did. An error that is not a
// violation (a rule that does not compile or fails at run time) is a bug of
// ours: the status step answers it as INTERNAL.
func declaredViolations(err error) error {
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("declared rules: %w", err)
	}
	var v errs.Violations
	for _, pv := range ve.Violations {
		msg := strings.TrimPrefix(pv.Proto.GetMessage(), "value ")
		if msg == "" {
			msg = "violates " + pv.Proto.GetRuleId()
		}
		if pv.Proto.GetRuleId() == "string.pattern" && pv.FieldValue.IsValid() {
			msg += fmt.Sprintf(", got %q", clip(pv.FieldValue.String(), maxEcho))
		}
		if pv.Proto.GetForKey() {
			msg = "key " + msg
		}
		v.Add(protovalidate.FieldPathString(pv.Proto.GetField()), "%s", msg)
	}
	return v.Err()
}

// maxEcho bounds the characters of a refused value a message repeats.
const maxEcho = 64

// clip cuts s to at most n characters, marking the cut.
func clip(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i] + "…"
		}
		n--
	}
	return s
}

// declaresRules reports whether md declares a protovalidate rule on
// itself, a oneof or one of its fields.
func declaresRules(md protoreflect.MessageDescriptor) bool {
	if proto.HasExtension(md.Options(), validatepb.E_Message) {
		return true
	}
	for i := 0; i < md.Oneofs().Len(); i++ {
		if proto.HasExtension(md.Oneofs().Get(i).Options(), validatepb.E_Oneof) {
			return true
		}
	}
	for i := 0; i < md.Fields().Len(); i++ {
		if proto.HasExtension(md.Fields().Get(i).Options(), validatepb.E_Field) {
			return true
		}
	}
	return false
}

func (s *Server) validate(method string, req any) error {
	if _, ok := s.validators[method]; !ok {
		return nil // infrastructure: health, reflection
	}
	msg, ok := req.(proto.Message)
	if !ok {
		return fmt.Errorf("request of %s is not a proto message", method)
	}
	if s.validation == nil {
		return fmt.Errorf("request of %s: the server validates nothing before Run", method)
	}
	return s.validation.Check(method, msg)
}

func (s *Server) validateUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if err := s.validate(info.FullMethod, req); err != nil {
		return nil, err
	}
	return next(ctx, req)
}

func (s *Server) validateStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
	return next(srv, &wrappedStream{ServerStream: ss, ctx: ss.Context(), onFirstRecv: func(m any) error {
		return s.validate(info.FullMethod, m)
	}})
}
