package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
)

// Sink receives delivered events. It must be idempotent on event ids: the
// relay resends a batch whose acknowledgement it did not see.
type Sink interface {
	Append(ctx context.Context, events []*auditv1.Event) error
}

// RelayConfig tunes a relay.
type RelayConfig struct {
	// Batch is the most rows sent in one call (default 500).
	Batch int
	// Poll is how often the outbox is read when nobody calls Notify
	// (default 1s).
	Poll time.Duration
	// Retention keeps delivered rows this long before purging (default 24h).
	Retention time.Duration
}

// Relay delivers an outbox table's pending rows to a Sink in id order.
type Relay struct {
	db      *sql.DB
	dialect string
	sink    Sink
	cfg     RelayConfig
	log     *zap.Logger
	wake    chan struct{}
}

// NewRelay returns a relay over the outbox of db.
func NewRelay(db *sql.DB, dialectName string, sink Sink, cfg RelayConfig, log *zap.Logger) *Relay {
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
	}
	return &Relay{db: db, dialect: dialectName, sink: sink, cfg: cfg, log: log, wake: make(chan struct{}, 1)}
}

// Notify wakes the relay after a commit, so delivery does not wait for the
// next poll. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, retrying with exponential backoff (100 ms up
// to 10 s) while the sink fails. Rows stay pending across restarts.
func (r *Relay) Run(ctx context.Context) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 10 * time.Second
	bo.MaxElapsedTime = 0
	lastPurge := time.Time{}
	for {
		_, more, err := r.deliver(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			wait := bo.NextBackOff()
			r.log.Warn("audit relay: delivery failed, retrying", zap.Duration("in", wait), zap.Error(err))
			if !sleep(ctx, wait) {
				return
			}
			continue
		}
		bo.Reset()
		if time.Since(lastPurge) > time.Hour {
			if err := r.purge(ctx); err != nil {
				r.log.Warn("audit relay: purge", zap.Error(err))
			}
			lastPurge = time.Now()
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-time.After(r.cfg.Poll):
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *Relay) ph(i int) string {
	if r.dialect == dialect.Postgres {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// MaxBatchBytes bounds the encoded events of one delivery, well below the
// audit service's 4 MiB message limit; a batch stops before the row that
// would pass it (a batch always holds at least one row).
const MaxBatchBytes = 1 << 20

// DeliverOnce sends one batch of pending rows and marks them delivered; it
// returns how many it delivered.
func (r *Relay) DeliverOnce(ctx context.Context) (int, error) {
	n, _, err := r.deliver(ctx)
	return n, err
}

// deliver sends one batch; more reports that rows were left for the next.
func (r *Relay) deliver(ctx context.Context) (n int, more bool, err error) {
	// A constant table name and a placeholder only.
	q := "SELECT id, payload FROM " + Table + " WHERE delivered_time IS NULL ORDER BY id LIMIT " + r.ph(1) //nolint:gosec
	rows, err := r.db.QueryContext(ctx, q, r.cfg.Batch)
	if err != nil {
		return 0, false, fmt.Errorf("read outbox: %w", err)
	}
	var ids []any
	var events []*auditv1.Event
	size, read := 0, 0
	for rows.Next() {
		read++
		var id string
		var payload []byte
		if err := rows.Scan(&id, &payload); err != nil {
			rows.Close()
			return 0, false, fmt.Errorf("read outbox: %w", err)
		}
		if len(events) > 0 && size+len(payload) > MaxBatchBytes {
			more = true
			break
		}
		ev := &auditv1.Event{}
		if err := proto.Unmarshal(payload, ev); err != nil {
			rows.Close()
			return 0, false, fmt.Errorf("outbox row %s: %w", id, err)
		}
		// Rows written before events were bounded may be larger: bound them.
		if len(payload) > MaxEventBytes {
			Bound(ev)
		}
		size += len(payload)
		ids = append(ids, id)
		events = append(events, ev)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, false, fmt.Errorf("read outbox: %w", err)
	}
	more = more || read == r.cfg.Batch
	if len(events) == 0 {
		return 0, false, nil
	}
	if err := r.sink.Append(ctx, events); err != nil {
		if !refused(err) {
			return 0, false, err
		}
		// The sink refuses this content, and will every time: no event may
		// block the ones behind it. Send the first event alone, and if the
		// sink refuses it alone, its minimal form, which keeps its place
		// in the chain and says what was lost.
		ids, events, more = ids[:1], events[:1], true
		if err := r.sink.Append(ctx, events); err != nil {
			if !refused(err) {
				return 0, false, err
			}
			r.log.Error("audit relay: the audit service refuses an event; delivering its minimal form",
				zap.String("event_id", events[0].GetId()), zap.Error(err))
			if err := r.sink.Append(ctx, []*auditv1.Event{minimal(events[0], err)}); err != nil {
				return 0, false, err
			}
		}
	}
	// Acknowledged: mark delivered. A crash before this line resends the
	// batch, which the sink skips by event id.
	ph := make([]string, len(ids))
	for i := range ids {
		ph[i] = r.ph(i + 2)
	}
	args := append([]any{time.Now().UTC()}, ids...)
	//nolint:gosec // a constant table name and placeholders only
	if _, err := r.db.ExecContext(ctx, "UPDATE "+Table+" SET delivered_time = "+r.ph(1)+
		" WHERE id IN ("+strings.Join(ph, ",")+")", args...); err != nil {
		return 0, false, fmt.Errorf("mark delivered: %w", err)
	}
	return len(events), more, nil
}

// refused reports a sink error that retrying the same content cannot cure.
func refused(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.ResourceExhausted:
		return true
	}
	return false
}

// minimal is ev without anything a client could have sent: its id, time,
// organization, action, resource, outcome and actor, and why the rest is
// missing.
func minimal(ev *auditv1.Event, why error) *auditv1.Event {
	m := &auditv1.Event{
		Id: ev.GetId(), Organization: ev.GetOrganization(), EventTime: ev.GetEventTime(),
		Action: ev.GetAction(), Resource: CutText(ev.GetResource(), MaxText), Outcome: ev.GetOutcome(),
		Actor: ev.GetActor(), RequestId: CutText(ev.GetRequestId(), 128),
		Metadata: map[string]string{"truncated": CutText("the audit service refused the full event: "+status.Convert(why).Message(), MaxText)},
	}
	return Bound(m)
}

func (r *Relay) purge(ctx context.Context) error {
	//nolint:gosec // a constant table name and a placeholder only
	_, err := r.db.ExecContext(ctx, "DELETE FROM "+Table+" WHERE delivered_time IS NOT NULL AND delivered_time < "+r.ph(1),
		time.Now().UTC().Add(-r.cfg.Retention))
	return err
}

// Pending counts rows not yet delivered.
func (r *Relay) Pending(ctx context.Context) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+Table+" WHERE delivered_time IS NULL").Scan(&n)
	return n, err
}
