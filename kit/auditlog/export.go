package auditlog

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// ExportResult is what a verified export holds.
type ExportResult struct {
	Organization string
	// FirstSequence is the first event's sequence: 1 for a whole chain,
	// later for an organization created again, whose export starts at a
	// signed checkpoint of the event before its own.
	FirstSequence int64
	Events        int64
	Checkpoints   int
	Head          string
}

// maxLine bounds one NDJSON line of an export.
const maxLine = 16 << 20

// VerifyExport reads an NDJSON export (one ExportRecord per line: the
// organization's events from sequence 1 in order, with checkpoints after the
// events they cover; or, for an organization created again, a signed
// checkpoint of the event before its first, then its events from there) and checks the chain, every checkpoint's signature with
// pub, and that the export ends at a signed checkpoint of its last event. On
// failure the error is a *BadEventError naming the first event that does not
// verify, or says what else is wrong.
func VerifyExport(r io.Reader, pub ed25519.PublicKey) (ExportResult, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		res       ExportResult
		chain     *Chain
		lastIsCP  bool
		lineNo    int
		lastEvent *auditv1.Event
		anchored  bool
	)
	unmarshal := protojson.UnmarshalOptions{DiscardUnknown: false}
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		rec := &auditv1.ExportRecord{}
		if err := unmarshal.Unmarshal(line, rec); err != nil {
			bad := &BadEventError{Sequence: res.Events + 1, Reason: fmt.Sprintf("line %d is not a valid record: %v", lineNo, err)}
			if chain != nil {
				bad.Sequence, _ = chain.Head()
				bad.Sequence++
			}
			return res, bad
		}
		switch {
		case rec.GetEvent() != nil:
			ev := rec.GetEvent()
			if anchored && res.Events == 0 && (ev.GetAction() != ActionOrganizationCreate || ev.GetOutcome() != OutcomeOK) {
				// An export may start after the chain's beginning only where
				// an organization of the id was created again: otherwise a
				// cut-off beginning would go unnoticed.
				return res, &BadEventError{Sequence: ev.GetSequence(), ID: ev.GetId(),
					Reason: "the export starts at a checkpoint but its first event is not an organization's creation (its beginning was cut off)"}
			}
			if chain == nil {
				res.Organization, res.FirstSequence = ev.GetOrganization(), 1
				chain = NewChain(ev.GetOrganization(), 1, ZeroHash)
			}
			if err := chain.Next(ev); err != nil {
				return res, err
			}
			res.Events++
			lastEvent = ev
			lastIsCP = false
		case rec.GetCheckpoint() != nil:
			cp := rec.GetCheckpoint()
			if err := VerifyCheckpoint(pub, cp); err != nil {
				return res, fmt.Errorf("checkpoint at sequence %d (line %d): %w", cp.GetSequence(), lineNo, err)
			}
			if chain == nil {
				// An export of an organization's own incarnation of a chain
				// starts at a signed checkpoint of the event before it.
				if cp.GetSequence() < 1 {
					return res, fmt.Errorf("line %d: a checkpoint at sequence %d cannot anchor a chain", lineNo, cp.GetSequence())
				}
				res.Organization, res.FirstSequence = cp.GetOrganization(), cp.GetSequence()+1
				chain = NewChain(cp.GetOrganization(), cp.GetSequence()+1, cp.GetHash())
				res.Checkpoints++
				lastIsCP, anchored = false, true
				continue
			}
			seq, head := chain.Head()
			if cp.GetOrganization() != res.Organization || cp.GetSequence() != seq || cp.GetHash() != head {
				return res, &BadEventError{Sequence: seq, ID: lastEvent.GetId(),
					Reason: fmt.Sprintf("the chain up to here does not match the signed checkpoint at sequence %d (events were changed, removed or added)", cp.GetSequence())}
			}
			res.Checkpoints++
			lastIsCP = true
		default:
			return res, fmt.Errorf("line %d holds neither an event nor a checkpoint", lineNo)
		}
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("read export: %w", err)
	}
	if chain == nil {
		return res, errors.New("the export holds no events")
	}
	if !lastIsCP {
		seq, _ := chain.Head()
		return res, &BadEventError{Sequence: seq, ID: lastEvent.GetId(),
			Reason: "the export does not end at a signed checkpoint (its tail was cut or extended)"}
	}
	_, res.Head = chain.Head()
	return res, nil
}

// WriteRecord writes rec as one NDJSON line.
func WriteRecord(w io.Writer, rec *auditv1.ExportRecord) error {
	b, err := protojson.Marshal(rec)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}
