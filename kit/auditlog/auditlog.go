// Package auditlog defines the tamper evidence of Pylee's audit log: the
// canonical encoding of an event, the hash chain over an organization's
// events, signed checkpoints, and the verification of a chain, used both by
// the audit service and offline by `pylee audit verify`.
package auditlog

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"github.com/pyleeai/pylee/kit/names"
)

// ZeroHash is the previous hash of an organization's first event.
var ZeroHash = strings.Repeat("0", 64)

// Outcomes of an event.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeError  = "error"
)

// ActionOrganizationCreate is the action of an organization's creation.
// The audit service starts a new incarnation of the organization's chain
// at each: events before it belong to earlier, deleted organizations of
// the same id.
const ActionOrganizationCreate = "orgs.organization.create"

// NoOrg is the organization id of events about requests that named none.
const NoOrg = "-"

const (
	eventDomain      = "pylee.audit.event.v1"
	checkpointDomain = "pylee.audit.checkpoint.v1"
)

// encoder writes length-prefixed fields, so no two different events share
// an encoding.
type encoder struct{ b []byte }

func (e *encoder) str(s string) {
	e.b = binary.BigEndian.AppendUint32(e.b, uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) i64(v int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }

// TimeString is the canonical form of a time: UTC, RFC 3339 with
// nanoseconds. Stores keep microseconds, so events are truncated to the
// microsecond before they are sealed.
func TimeString(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Canonical is the byte string an event's hash covers: every field but its
// name and its own hash, in a fixed order, each length-prefixed.
func Canonical(ev *auditv1.Event) []byte {
	e := &encoder{b: make([]byte, 0, 512)}
	e.str(eventDomain)
	e.str(ev.GetOrganization())
	e.i64(ev.GetSequence())
	e.str(ev.GetPreviousHash())
	e.str(ev.GetId())
	e.str(TimeString(ev.GetEventTime().AsTime()))
	e.str(ev.GetActor().GetPrincipal())
	e.str(ev.GetActor().GetKind())
	e.str(ev.GetActor().GetDisplayName())
	e.str(ev.GetAction())
	e.str(ev.GetResource())
	e.str(ev.GetOutcome())
	e.str(ev.GetRequestId())
	e.str(ev.GetClientAddress())
	e.str(ev.GetUserAgent())
	e.i64(int64(len(ev.GetChanges())))
	for _, c := range ev.GetChanges() {
		e.str(c.GetField())
		e.str(c.GetOldValue())
		e.str(c.GetNewValue())
	}
	keys := make([]string, 0, len(ev.GetMetadata()))
	for k := range ev.GetMetadata() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.i64(int64(len(keys)))
	for _, k := range keys {
		e.str(k)
		e.str(ev.GetMetadata()[k])
	}
	return e.b
}

// Hash is the hex SHA-256 of the event's canonical encoding.
func Hash(ev *auditv1.Event) string {
	sum := sha256.Sum256(Canonical(ev))
	return hex.EncodeToString(sum[:])
}

// Seal places ev in its chain after an event with hash prev: it sets the
// sequence, the previous hash, the hash and the name.
func Seal(ev *auditv1.Event, seq int64, prev string) {
	ev.Sequence = seq
	ev.PreviousHash = prev
	ev.Hash = Hash(ev)
	ev.Name = names.Event{Org: ev.GetOrganization(), Event: ev.GetId()}.String()
}

// BadEventError names the first event of a chain that does not verify.
type BadEventError struct {
	Sequence int64
	ID       string
	Reason   string
}

func (e *BadEventError) Error() string {
	if e.ID == "" {
		return fmt.Sprintf("event at sequence %d: %s", e.Sequence, e.Reason)
	}
	return fmt.Sprintf("event %s (sequence %d): %s", e.ID, e.Sequence, e.Reason)
}

// Chain checks events one by one, in order, against the chain they claim.
type Chain struct {
	org  string
	next int64
	prev string
}

// NewChain returns a checker for org's chain starting at sequence start
// (from 1) whose previous event had hash prev (ZeroHash for start 1).
func NewChain(org string, start int64, prev string) *Chain {
	return &Chain{org: org, next: start, prev: prev}
}

// Next checks ev, the next event of the chain.
func (c *Chain) Next(ev *auditv1.Event) error {
	bad := func(format string, args ...any) error {
		return &BadEventError{Sequence: c.next, ID: ev.GetId(), Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case ev.GetOrganization() != c.org:
		return bad("belongs to organization %q, not %q", ev.GetOrganization(), c.org)
	case ev.GetSequence() != c.next:
		return bad("has sequence %d where %d was expected (an event is missing, added or moved)", ev.GetSequence(), c.next)
	case ev.GetPreviousHash() != c.prev:
		return bad("does not follow the previous event (previous hash differs)")
	case Hash(ev) != ev.GetHash():
		return bad("its content does not match its hash")
	}
	c.next++
	c.prev = ev.GetHash()
	return nil
}

// Head returns the last verified sequence and hash.
func (c *Chain) Head() (int64, string) { return c.next - 1, c.prev }

// CheckpointBytes is what a checkpoint's signature covers.
func CheckpointBytes(cp *auditv1.Checkpoint) []byte {
	e := &encoder{}
	e.str(checkpointDomain)
	e.str(cp.GetOrganization())
	e.i64(cp.GetSequence())
	e.str(cp.GetHash())
	e.str(TimeString(cp.GetCreateTime().AsTime()))
	return e.b
}

// Sign signs cp with key, setting its signature and public key.
func Sign(key ed25519.PrivateKey, cp *auditv1.Checkpoint) {
	cp.PublicKey = EncodePublicKey(key.Public().(ed25519.PublicKey))
	cp.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key, CheckpointBytes(cp)))
}

// VerifyCheckpoint checks cp's signature with pub (not the key cp names:
// a forger can name any key).
func VerifyCheckpoint(pub ed25519.PublicKey, cp *auditv1.Checkpoint) error {
	sig, err := base64.StdEncoding.DecodeString(cp.GetSignature())
	if err != nil || !ed25519.Verify(pub, CheckpointBytes(cp), sig) {
		return errors.New("checkpoint signature does not verify with the given public key")
	}
	return nil
}

// EncodePublicKey is the text form of a public key: base64 of its 32 bytes.
func EncodePublicKey(pub ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(pub) }

// ParsePublicKey reads the text form of a public key (an `ed25519:` prefix
// is allowed).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "ed25519:"))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("public key must be the base64 of 32 bytes (as `pylee audit public-key` prints it)")
	}
	return ed25519.PublicKey(b), nil
}

// Fingerprint is the most of a secret value an event may hold: an
// HMAC-SHA256 under a per-deployment key, so equal values can be recognised
// across events without the value being recoverable.
func Fingerprint(key []byte, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(value))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:16])
}
