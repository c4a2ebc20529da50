// Package errs holds the domain error sentinels every Pylee service uses and
// the one function that turns them into gRPC statuses with a
// google.rpc.ErrorInfo reason.
package errs

import (
	"errors"
	"fmt"
	"strings"

	apiv1 "github.com/pyleeai/pylee/gen/go/pylee/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Domain is the ErrorInfo domain of every Pylee error.
const Domain = "pylee.ai"

// Sentinels. Wrap them with context (fmt.Errorf("organization %q: %w", id,
// errs.ErrNotFound)); the message of the wrapping error reaches the client,
// so it must never contain a secret.
var (
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrEtagMismatch       = errors.New("etag does not match the current etag")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnauthenticated    = errors.New("unauthenticated")
	ErrPermissionDenied   = errors.New("permission denied")
	ErrResourceExhausted  = errors.New("resource exhausted")
	ErrRequestIDReused    = errors.New("request_id was used for a different request")
	ErrUnavailable        = errors.New("unavailable")
)

var sentinels = []struct {
	err    error
	code   codes.Code
	reason apiv1.ErrorReason
}{
	{ErrInvalidArgument, codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_INVALID_ARGUMENT},
	{ErrNotFound, codes.NotFound, apiv1.ErrorReason_ERROR_REASON_NOT_FOUND},
	{ErrAlreadyExists, codes.AlreadyExists, apiv1.ErrorReason_ERROR_REASON_ALREADY_EXISTS},
	{ErrEtagMismatch, codes.Aborted, apiv1.ErrorReason_ERROR_REASON_ETAG_MISMATCH},
	{ErrFailedPrecondition, codes.FailedPrecondition, apiv1.ErrorReason_ERROR_REASON_FAILED_PRECONDITION},
	{ErrUnauthenticated, codes.Unauthenticated, apiv1.ErrorReason_ERROR_REASON_UNAUTHENTICATED},
	{ErrPermissionDenied, codes.PermissionDenied, apiv1.ErrorReason_ERROR_REASON_PERMISSION_DENIED},
	{ErrResourceExhausted, codes.ResourceExhausted, apiv1.ErrorReason_ERROR_REASON_RESOURCE_EXHAUSTED},
	{ErrRequestIDReused, codes.InvalidArgument, apiv1.ErrorReason_ERROR_REASON_REQUEST_ID_REUSED},
	{ErrUnavailable, codes.Unavailable, apiv1.ErrorReason_ERROR_REASON_UNAVAILABLE},
}

// FieldViolation is an invalid request field. Field is the proto field path
// (`organization.display_name`).
type FieldViolation struct {
	Field       string
	Description string
}

// InvalidFieldsError is a request with one or more invalid fields.
type InvalidFieldsError struct {
	Violations []FieldViolation
}

func (e *InvalidFieldsError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid argument: " + strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalidArgument) hold.
func (e *InvalidFieldsError) Unwrap() error { return ErrInvalidArgument }

// Field returns an error for one invalid field.
func Field(field, format string, args ...any) error {
	return &InvalidFieldsError{Violations: []FieldViolation{{Field: field, Description: fmt.Sprintf(format, args...)}}}
}

// Violations collects field violations; Err returns nil when there are none.
type Violations struct{ list []FieldViolation }

// Add records a violation of field.
func (v *Violations) Add(field, format string, args ...any) {
	v.list = append(v.list, FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// Check records err (if not nil) as a violation of field.
func (v *Violations) Check(field string, err error) {
	if err != nil {
		v.list = append(v.list, FieldViolation{Field: field, Description: err.Error()})
	}
}

// Err returns the collected violations as an error, or nil.
func (v *Violations) Err() error {
	if len(v.list) == 0 {
		return nil
	}
	return &InvalidFieldsError{Violations: v.list}
}

// Known reports whether err is a status already or wraps one of the sentinels;
// anything else is an unexpected error that must not reach a client as is.
func Known(err error) bool {
	if _, ok := status.FromError(err); ok {
		return true
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return true
		}
	}
	return false
}

// ToStatus maps err to a gRPC status with an ErrorInfo (and a BadRequest for
// field violations). An error that is already a status passes unchanged.
// Unknown errors become a generic Internal carrying only the request id: the
// caller logs the original.
func ToStatus(err error, requestID string) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	for _, s := range sentinels {
		if !errors.Is(err, s.err) {
			continue
		}
		st := status.New(s.code, err.Error())
		details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: Reason(s.reason), Domain: Domain}}
		var fe *InvalidFieldsError
		if errors.As(err, &fe) {
			br := &errdetails.BadRequest{}
			for _, v := range fe.Violations {
				br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: v.Field, Description: v.Description})
			}
			details = append(details, br)
		}
		return withDetails(st, details...)
	}
	msg := "internal error"
	if requestID != "" {
		msg += " (request id " + requestID + ")"
	}
	st := status.New(codes.Internal, msg)
	return withDetails(st, &errdetails.ErrorInfo{Reason: Reason(apiv1.ErrorReason_ERROR_REASON_INTERNAL), Domain: Domain})
}

func withDetails(st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	withd, err := st.WithDetails(details...)
	if err != nil {
		return st
	}
	return withd
}

// Reason is the ErrorInfo reason string of r: its name without the prefix.
func Reason(r apiv1.ErrorReason) string {
	return strings.TrimPrefix(r.String(), "ERROR_REASON_")
}
