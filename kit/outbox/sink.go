package outbox

import (
	"context"
	"fmt"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
)

// AuditSink delivers events to the audit service over gRPC with the
// service credential.
type AuditSink struct {
	Client auditv1.AuditServiceClient
	Token  config.Secret
}

// Append implements Sink.
func (a AuditSink) Append(ctx context.Context, events []*auditv1.Event) error {
	ctx = auth.Outgoing(ctx, a.Token)
	if _, err := a.Client.AppendEvents(ctx, &auditv1.AppendEventsRequest{Events: events}); err != nil {
		return fmt.Errorf("append %d events: %w", len(events), err)
	}
	return nil
}
