package errs

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		code    codes.Code
		reason  string
		message string
	}{
		{"not found", fmt.Errorf("organization %q: %w", "acme", ErrNotFound), codes.NotFound, "NOT_FOUND", `organization "acme": not found`},
		{"exists", fmt.Errorf("x: %w", ErrAlreadyExists), codes.AlreadyExists, "ALREADY_EXISTS", "x: already exists"},
		{"etag", ErrEtagMismatch, codes.Aborted, "ETAG_MISMATCH", ErrEtagMismatch.Error()},
		{"unauthenticated", ErrUnauthenticated, codes.Unauthenticated, "UNAUTHENTICATED", "unauthenticated"},
		{"denied", ErrPermissionDenied, codes.PermissionDenied, "PERMISSION_DENIED", "permission denied"},
		{"exhausted", ErrResourceExhausted, codes.ResourceExhausted, "RESOURCE_EXHAUSTED", "resource exhausted"},
		{"request id", ErrRequestIDReused, codes.InvalidArgument, "REQUEST_ID_REUSED", ErrRequestIDReused.Error()},
		{"field", Field("organization_id", "must be 3 to 63 characters"), codes.InvalidArgument, "INVALID_ARGUMENT", "invalid argument: organization_id: must be 3 to 63 characters"},
		{"unknown", errors.New("pq: connection refused to 10.0.0.1 password=hunter2"), codes.Internal, "INTERNAL", "internal error (request id r1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ToStatus(tt.err, "r1")
			if st.Code() != tt.code {
				t.Errorf("code = %v, want %v", st.Code(), tt.code)
			}
			if st.Message() != tt.message {
				t.Errorf("message = %q, want %q", st.Message(), tt.message)
			}
			var info *errdetails.ErrorInfo
			for _, d := range st.Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info == nil || info.Reason != tt.reason || info.Domain != Domain {
				t.Errorf("ErrorInfo = %v, want reason %s", info, tt.reason)
			}
		})
	}
}

func TestToStatusFieldViolations(t *testing.T) {
	var v Violations
	v.Add("organization_id", "is required")
	v.Add("organization.display_name", "must be at most %d characters", 200)
	st := ToStatus(fmt.Errorf("create: %w", v.Err()), "")
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	if br == nil || len(br.FieldViolations) != 2 || br.FieldViolations[1].Field != "organization.display_name" {
		t.Fatalf("BadRequest = %v", br)
	}
}

func TestToStatusPassesStatus(t *testing.T) {
	in := status.Error(codes.Unavailable, "down")
	if st := ToStatus(in, ""); st.Code() != codes.Unavailable || st.Message() != "down" {
		t.Fatalf("got %v", st)
	}
	if !Known(in) || Known(errors.New("x")) || !Known(fmt.Errorf("a: %w", ErrNotFound)) {
		t.Fatal("Known misclassifies")
	}
	var v Violations
	if v.Err() != nil {
		t.Fatal("empty violations must be nil")
	}
}
