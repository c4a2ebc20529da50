package outbox

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
)

// Bounds of an audit event. Every field a client can influence is cut to a
// bound when the event is recorded, so the outbox, the relay's batches and
// the audit log stay bounded whatever a client sends.
const (
	// MaxEventBytes bounds an encoded event (docs/audit.md).
	MaxEventBytes = 64 << 10
	// MaxUserAgent and MaxClientAddress bound the client facts, in characters.
	MaxUserAgent     = 256
	MaxClientAddress = 64
	// MaxText bounds the other short strings of an event (actor, resource,
	// metadata values), in characters.
	MaxText = 1024
	// MaxMetadata and MaxChanges bound how many entries an event keeps.
	MaxMetadata = 32
	MaxChanges  = 64
)

// Bound cuts every field of ev to its bound, in place, and returns it. An
// event still over MaxEventBytes after that loses its changes and metadata,
// which a marker records.
func Bound(ev *auditv1.Event) *auditv1.Event {
	if ev == nil {
		return nil
	}
	ev.UserAgent = CutText(ev.UserAgent, MaxUserAgent)
	ev.ClientAddress = CutText(ev.ClientAddress, MaxClientAddress)
	ev.RequestId = CutText(ev.RequestId, 128)
	ev.Resource = CutText(ev.Resource, MaxText)
	ev.Action = CutText(ev.Action, 128)
	if a := ev.Actor; a != nil {
		a.Principal, a.Kind, a.DisplayName = CutText(a.Principal, MaxText), CutText(a.Kind, 64), CutText(a.DisplayName, MaxText)
	}
	if len(ev.Metadata) > 0 {
		kept := make(map[string]string, min(len(ev.Metadata), MaxMetadata))
		dropped := 0
		for k, v := range ev.Metadata {
			if len(kept) >= MaxMetadata-1 {
				dropped++
				continue
			}
			kept[CutText(k, 128)] = CutText(v, MaxText)
		}
		if dropped > 0 {
			kept["truncated_metadata"] = fmt.Sprint(dropped)
		}
		ev.Metadata = kept
	}
	if len(ev.Changes) > MaxChanges {
		ev.Changes = ev.Changes[:MaxChanges]
		ev.Metadata = withMarker(ev.Metadata, "truncated_changes", "true")
	}
	for _, c := range ev.Changes {
		c.Field, c.OldValue, c.NewValue = CutText(c.Field, 256), cut(c.OldValue), cut(c.NewValue)
	}
	if proto.Size(ev) > MaxEventBytes {
		ev.Changes = nil
		ev.Metadata = map[string]string{"truncated": fmt.Sprintf("the event exceeded %d bytes", MaxEventBytes)}
	}
	return ev
}

func withMarker(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// CutText returns s as valid UTF-8 without control characters, cut to at
// most max characters ("…" marks a cut).
func CutText(s string, max int) string {
	clean := utf8.ValidString(s) && !strings.ContainsFunc(s, isControl)
	if clean && len(s) <= max {
		return s // fast path: ASCII-length already within bound
	}
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || isControl(r) {
			r = '\uFFFD'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }
