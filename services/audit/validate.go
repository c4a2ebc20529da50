package audit

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/aip"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/outbox"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/services/audit/internal/store"
)

// Requests are validated in two steps (see docs/design.md). The field rules
// are declared in the protos (`buf.validate`: required fields, page size,
// batch size, sequences) and kit/server checks them first; the functions
// here check, on requests that satisfy them, what needs code: organization
// names (`orgs/-` included), event names, filters, and the events of a
// batch.

// Validators returns the hand-written validator of every RPC.
func Validators() map[string]server.Validator {
	return map[string]server.Validator{
		auditv1.AuditService_AppendEvents_FullMethodName:  server.ValidatorOf(validateAppendEvents),
		auditv1.AuditService_ListEvents_FullMethodName:    server.ValidatorOf(validateListEvents),
		auditv1.AuditService_GetEvent_FullMethodName:      server.ValidatorOf(validateGetEvent),
		auditv1.AuditService_ExportEvents_FullMethodName:  parentOnly((*auditv1.ExportEventsRequest).GetParent),
		auditv1.AuditService_VerifyLog_FullMethodName:     server.ValidatorOf(validateVerifyLog),
		auditv1.AuditService_GetCheckpoint_FullMethodName: parentOnly((*auditv1.GetCheckpointRequest).GetParent),
		auditv1.AuditService_GetPublicKey_FullMethodName:  server.DeclaredOnly,
	}
}

func validateListEvents(req *auditv1.ListEventsRequest) error {
	var v errs.Violations
	_, err := parentOrg(req.GetParent())
	v.Check("parent", err)
	if _, err := parseEventFilter(req.GetFilter()); err != nil {
		v.Check("filter", err)
	}
	return v.Err()
}

func validateGetEvent(req *auditv1.GetEventRequest) error {
	if _, _, err := eventIDs(req.GetName()); err != nil {
		return errs.Field("name", "%v", err)
	}
	return nil
}

func validateVerifyLog(req *auditv1.VerifyLogRequest) error {
	var v errs.Violations
	_, err := parentOrg(req.GetParent())
	v.Check("parent", err)
	// start_sequence >= 0 is declared; this compares the two.
	if req.GetEndSequence() < 0 || (req.GetEndSequence() > 0 && req.GetEndSequence() < req.GetStartSequence()) {
		v.Add("end_sequence", "must be 0 (the head) or at least start_sequence")
	}
	return v.Err()
}

// parentOnly is the validator of a request whose one rule that needs code
// is its parent organization.
func parentOnly[T proto.Message](parent func(T) string) server.Validator {
	return server.ValidatorOf(func(r T) error {
		if _, err := parentOrg(parent(r)); err != nil {
			return errs.Field("parent", "%v", err)
		}
		return nil
	})
}

func checkOrgID(id string) error {
	if id == auditlog.NoOrg {
		return nil
	}
	return aip.ValidateID(id)
}

// parentOrg is the organization id of a parent, `orgs/{org}` (`orgs/-` for
// the events of requests that named none).
func parentOrg(parent string) (string, error) {
	ids, err := names.OrgPattern.ParseLoose(parent)
	if err != nil {
		return "", err
	}
	if err := checkOrgID(ids[0]); err != nil {
		return "", err
	}
	return ids[0], nil
}

// eventIDs are the organization and event ids of an event's name,
// `orgs/{org}/events/{event}`.
func eventIDs(name string) (org, id string, err error) {
	ids, err := names.EventPattern.ParseLoose(name)
	if err != nil {
		return "", "", err
	}
	if err := checkOrgID(ids[0]); err != nil {
		return "", "", err
	}
	return ids[0], ids[1], nil
}

// validateAppendEvents checks each event of a batch; the batch's size and
// each event's time being set are declared in the proto.
func validateAppendEvents(req *auditv1.AppendEventsRequest) error {
	var v errs.Violations
	for i, ev := range req.GetEvents() {
		f := fmt.Sprintf("events[%d].", i)
		// uuid.Parse, not protovalidate's string.uuid: it also takes the
		// braced and URN forms, which relays may have sent.
		if _, err := uuid.Parse(ev.GetId()); err != nil {
			v.Add(f+"id", "must be a UUID")
		}
		if err := checkOrgID(ev.GetOrganization()); err != nil {
			v.Check(f+"organization", err)
		}
		if !validAction(ev.GetAction()) {
			v.Add(f+"action", "must be <service>.<resource>.<verb> (or tools.<verb>, the MCP gateway's)")
		}
		// The outcomes are auditlog's, which the filter parser shares.
		switch ev.GetOutcome() {
		case auditlog.OutcomeOK, auditlog.OutcomeDenied, auditlog.OutcomeError:
		default:
			v.Add(f+"outcome", "must be ok, denied or error")
		}
		if !ev.GetEventTime().IsValid() {
			v.Add(f+"event_time", "is required")
		}
		if n := proto.Size(ev); n > outbox.MaxEventBytes {
			v.Add(f+"id", "the event is %d bytes encoded; at most %d are allowed", n, outbox.MaxEventBytes)
		}
		if ev.GetSequence() != 0 || ev.GetHash() != "" || ev.GetPreviousHash() != "" {
			v.Add(f+"sequence", "sequence, previous_hash and hash are set by the audit service")
		}
	}
	return v.Err()
}

// eventFilter is a parsed ListEvents filter.
type eventFilter struct{ query store.EventQuery }

// parseEventFilter reads a conjunction of `field op "value"` terms joined by
// AND: actor =, action : (prefix), resource : (prefix), outcome =,
// event_time >= and event_time < (RFC 3339).
func parseEventFilter(s string) (eventFilter, error) {
	var f eventFilter
	s = strings.TrimSpace(s)
	if s == "" {
		return f, nil
	}
	for _, term := range splitAnd(s) {
		field, op, val, err := parseTerm(term)
		if err != nil {
			return f, err
		}
		switch {
		case field == "actor" && op == "=":
			f.query.Actor = val
		case field == "action" && (op == ":" || op == "="):
			f.query.ActionPrefix = val
		case field == "resource" && (op == ":" || op == "="):
			f.query.ResourcePrefix = val
		case field == "outcome" && op == "=":
			if val != auditlog.OutcomeOK && val != auditlog.OutcomeDenied && val != auditlog.OutcomeError {
				return f, fmt.Errorf("outcome must be ok, denied or error")
			}
			f.query.Outcome = val
		case field == "event_time" && (op == ">=" || op == "<"):
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return f, fmt.Errorf("event_time must be an RFC 3339 time, got %q", val)
			}
			if op == ">=" {
				f.query.After = t
			} else {
				f.query.Until = t
			}
		default:
			return f, fmt.Errorf("unsupported term %q: use actor =, action :, resource :, outcome =, event_time >= or event_time <", term)
		}
	}
	return f, nil
}

// splitAnd splits on AND outside quotes.
func splitAnd(s string) []string {
	var terms []string
	inQuote, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && inQuote:
			i++
		case s[i] == '"':
			inQuote = !inQuote
		case !inQuote && strings.HasPrefix(s[i:], " AND "):
			terms = append(terms, strings.TrimSpace(s[start:i]))
			start = i + len(" AND ")
			i = start - 1
		}
	}
	return append(terms, strings.TrimSpace(s[start:]))
}

func parseTerm(term string) (field, op, val string, err error) {
	i := strings.IndexAny(term, "=:<>")
	if i <= 0 {
		return "", "", "", fmt.Errorf("term %q must be `field op \"value\"`", term)
	}
	field = strings.TrimSpace(term[:i])
	rest := term[i:]
	for _, o := range []string{">=", "<", "=", ":"} {
		if strings.HasPrefix(rest, o) {
			op, rest = o, rest[len(o):]
			break
		}
	}
	if op == "" {
		return "", "", "", fmt.Errorf("unsupported operator in %q", term)
	}
	lit := strings.TrimSpace(rest)
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", "", "", fmt.Errorf("value in %q must be a double-quoted string", term)
	}
	val = strings.ReplaceAll(lit[1:len(lit)-1], `\"`, `"`)
	return field, op, val, nil
}

// validAction reports whether a is `<service>.<resource>.<verb>`, or one
// of the data plane's `tools.<verb>` (tools.call, tools.drift), named by
// what a platform team searches for.
func validAction(a string) bool {
	parts := strings.Split(a, ".")
	for _, p := range parts {
		if p == "" {
			return false
		}
	}
	return len(parts) == 3 || len(parts) == 2 && parts[0] == "tools"
}
