package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
)

// Sink delivers audit events (kit/outbox.AuditSink in production).
type Sink interface {
	Append(ctx context.Context, events []*auditv1.Event) error
}

// usage records the gateway's tool-call events without slowing calls: a
// call hands its event over and goes on; a writer appends batches to a
// spool file in the data directory (fsynced: durable before delivery) and
// delivers them to the audit service, which skips ids it already holds.
// When audit is down the spool grows and is delivered when it returns,
// also after a restart of the gateway.
type usage struct {
	sink  Sink
	log   *zap.Logger
	path  string
	queue chan *auditv1.Event

	mu        sync.Mutex
	file      *os.File
	delivered int64 // offset in the spool up to which audit has everything
	wake      chan struct{}
}

// spool file names.
const (
	spoolFile  = "gateway-usage.spool"
	offsetFile = "gateway-usage.offset"
)

func newUsage(dir string, sink Sink, log *zap.Logger) (*usage, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	u := &usage{sink: sink, log: log, path: filepath.Join(dir, spoolFile), queue: make(chan *auditv1.Event, 65536), wake: make(chan struct{}, 1)}
	f, err := os.OpenFile(u.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	u.file = f
	if b, err := os.ReadFile(filepath.Join(dir, offsetFile)); err == nil {
		u.delivered, _ = strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	}
	return u, nil
}

// record hands ev over; it never blocks for long: when the queue is full
// the event is spooled on the caller's goroutine.
func (u *usage) record(ev *auditv1.Event) {
	select {
	case u.queue <- ev:
	default:
		if err := u.spool([]*auditv1.Event{ev}); err != nil {
			u.log.Sugar().Errorw("spooling a usage event", "error", err)
		}
	}
}

// run spools and delivers until ctx ends, then spools what is queued.
func (u *usage) run(ctx context.Context) {
	go u.deliverLoop(ctx)
	batch := make([]*auditv1.Event, 0, 512)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := u.spool(batch); err != nil {
			u.log.Sugar().Errorw("spooling usage events", "events", len(batch), "error", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case ev := <-u.queue:
			batch = append(batch, ev)
			if len(batch) == cap(batch) {
				flush()
			}
		case <-tick.C:
			flush()
		case <-ctx.Done():
			for {
				select {
				case ev := <-u.queue:
					batch = append(batch, ev)
				default:
					flush()
					_ = u.file.Close()
					return
				}
			}
		}
	}
}

// spool appends events to the spool file and syncs it.
func (u *usage) spool(events []*auditv1.Event) error {
	var buf bytes.Buffer
	for _, ev := range events {
		b, err := protojson.Marshal(ev)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, err := u.file.Write(buf.Bytes()); err != nil {
		return err
	}
	if err := u.file.Sync(); err != nil {
		return err
	}
	select {
	case u.wake <- struct{}{}:
	default:
	}
	return nil
}

func (u *usage) deliverLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for {
		if ctx.Err() != nil {
			// Stopped while waiting: a later run (a restarted gateway)
			// delivers from the spool; two delivering at once would send
			// events twice.
			return
		}
		err := u.deliver(ctx)
		wait := 200 * time.Millisecond
		if err != nil {
			u.log.Sugar().Debugw("delivering usage events; will retry", "error", err)
			wait, backoff = backoff, min(backoff*2, 10*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			// A last attempt with what is spooled.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = u.deliver(dctx)
			cancel()
			return
		case <-u.wake:
			if err != nil {
				time.Sleep(wait)
			}
		case <-time.After(wait):
		}
	}
}

// deliver sends what the spool holds past the delivered offset, in
// batches of up to 500, and truncates the spool when all is delivered.
func (u *usage) deliver(ctx context.Context) error {
	for {
		u.mu.Lock()
		from := u.delivered
		f, err := os.Open(u.path)
		u.mu.Unlock()
		if err != nil {
			return err
		}
		events, next, err := readSpool(f, from, 500)
		_ = f.Close()
		if err != nil {
			return err
		}
		if len(events) == 0 {
			return u.compact()
		}
		if err := u.sink.Append(ctx, events); err != nil {
			return err
		}
		u.mu.Lock()
		u.delivered = next
		err = os.WriteFile(filepath.Join(filepath.Dir(u.path), offsetFile), []byte(strconv.FormatInt(next, 10)), 0o600)
		u.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// compact empties the spool once everything in it is delivered.
func (u *usage) compact() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := u.file.Stat()
	if err != nil || st.Size() != u.delivered || u.delivered == 0 {
		return err
	}
	if err := u.file.Truncate(0); err != nil {
		return err
	}
	u.delivered = 0
	return os.WriteFile(filepath.Join(filepath.Dir(u.path), offsetFile), []byte("0"), 0o600)
}

// readSpool reads up to n events from offset; it returns the offset after
// the last whole line read.
func readSpool(f *os.File, offset int64, n int) ([]*auditv1.Event, int64, error) {
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, offset, err
	}
	r := bufio.NewReaderSize(f, 256<<10)
	var out []*auditv1.Event
	for len(out) < n {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // a partial last line waits for its end
		}
		if err != nil {
			return nil, offset, err
		}
		offset += int64(len(line))
		ev := &auditv1.Event{}
		if err := protojson.Unmarshal(bytes.TrimSpace(line), ev); err != nil {
			continue // a torn line (a crash mid-write): skipped, never retried forever
		}
		out = append(out, ev)
	}
	return out, offset, nil
}
