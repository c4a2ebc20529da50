package gateway

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auditlog"
	"github.com/pyleeai/pylee/kit/names"
	"github.com/pyleeai/pylee/kit/server"
)

const exportSuffix = "/events:export"

// forwarded returns the request's context carrying, as outgoing gRPC
// metadata, what grpc-gateway forwards for its own routes: the credential,
// the request id, the client address and user agent (for the audit log).
func forwarded(r *http.Request) context.Context {
	md := metadata.MD{}
	// gRPC metadata values must be printable ASCII, or the call fails
	// before it leaves: a credential that is not cannot be valid (the route
	// chain refused it already), and the client facts are cleaned.
	if v := r.Header.Get("Authorization"); v != "" && printableASCII(v) {
		md.Set("authorization", v)
	}
	if v := r.Header.Get("X-Request-Id"); v != "" && printableASCII(v) {
		md.Set(server.RequestIDHeader, v)
	}
	// The client address the route chain settled (past trusted proxies).
	client := server.CallMetaFrom(r.Context()).ClientAddress
	if client == "" {
		client = r.RemoteAddr
	}
	md.Set("x-forwarded-for", asciiOnly(client))
	md.Set("grpcgateway-user-agent", asciiOnly(r.UserAgent()))
	return metadata.NewOutgoingContext(r.Context(), md)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// asciiOnly replaces every byte that may not be in gRPC metadata with '?'.
func asciiOnly(s string) string {
	if printableASCII(s) {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// ExportPattern is the route of the audit export download.
const ExportPattern = "/v1/orgs/{org}" + exportSuffix

// ExportRule is the export route's access rule: audit.export on the
// organization, checked at the edge as the audit service checks it.
var ExportRule = server.HTTPRule{Name: "audit.event.export", Methods: []string{http.MethodGet}, Permission: "audit.export",
	Resource: func(r *http.Request) string { return names.Org{Org: r.PathValue("org")}.String() }}

// NewExport serves `GET /v1/orgs/{org}/events:export?format=ndjson|csv` as
// a download streamed from AuditService.ExportEvents.
func NewExport(conn grpc.ClientConnInterface) http.Handler {
	client := auditv1.NewAuditServiceClient(conn)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { exportEvents(w, r, client) })
}

var csvHeader = []string{"sequence", "id", "event_time", "organization", "actor_principal", "actor_kind",
	"actor_display_name", "action", "resource", "outcome", "request_id", "client_address", "user_agent",
	"changes", "metadata", "previous_hash", "hash"}

func exportEvents(w http.ResponseWriter, r *http.Request, client auditv1.AuditServiceClient) {
	org := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/orgs/"), exportSuffix)
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "ndjson"
	}
	if format != "ndjson" && format != "csv" {
		writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "format: must be ndjson or csv"))
		return
	}
	ctx, cancel := context.WithCancel(forwarded(r))
	defer cancel()
	showDeleted := false
	if v := r.URL.Query().Get("show_deleted"); v != "" {
		var perr error
		if showDeleted, perr = strconv.ParseBool(v); perr != nil {
			writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, "show_deleted: must be true or false"))
			return
		}
	}
	stream, err := client.ExportEvents(ctx, &auditv1.ExportEventsRequest{Parent: names.Org{Org: org}.String(), ShowDeleted: showDeleted})
	var first *auditv1.ExportRecord
	if err == nil {
		first, err = stream.Recv()
	}
	if err != nil {
		st := status.Convert(err)
		if errors.Is(err, io.EOF) {
			st = status.New(codes.NotFound, "organization has no events")
		}
		if st.Code() == codes.Unauthenticated {
			w.Header().Set("WWW-Authenticate", `Bearer realm="pylee"`)
		}
		writeStatus(w, runtime.HTTPStatusFromCode(st.Code()), st)
		return
	}
	name := fmt.Sprintf("%s-audit.%s", org, format)
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	var cw *csv.Writer
	if format == "csv" {
		cw = csv.NewWriter(w)
		_ = cw.Write(csvHeader)
	}
	flusher, _ := w.(http.Flusher)
	n := 0
	for rec := first; ; {
		if cw != nil {
			if ev := rec.GetEvent(); ev != nil {
				_ = cw.Write(csvRow(ev))
			}
		} else if err := auditlog.WriteRecord(w, rec); err != nil {
			return
		}
		if n++; n%500 == 0 && flusher != nil {
			if cw != nil {
				cw.Flush()
			}
			flusher.Flush()
		}
		if rec, err = stream.Recv(); err != nil {
			break
		}
	}
	if cw != nil {
		cw.Flush()
	}
	// The status line is sent already; a broken stream shows as a file
	// that does not end at a checkpoint, which verification reports.
}

func csvRow(ev *auditv1.Event) []string {
	changes, _ := json.Marshal(ev.GetChanges())
	meta, _ := json.Marshal(ev.GetMetadata())
	return []string{strconv.FormatInt(ev.GetSequence(), 10), ev.GetId(), auditlog.TimeString(ev.GetEventTime().AsTime()),
		ev.GetOrganization(), ev.GetActor().GetPrincipal(), ev.GetActor().GetKind(), ev.GetActor().GetDisplayName(),
		ev.GetAction(), ev.GetResource(), ev.GetOutcome(), ev.GetRequestId(), ev.GetClientAddress(), ev.GetUserAgent(),
		string(changes), string(meta), ev.GetPreviousHash(), ev.GetHash()}
}
