package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
)

// TestVerifyAnchoredExport: the export of an organization created again
// starts at a signed checkpoint of the event before its own; it verifies,
// and a forged or wrong anchor does not.
func TestVerifyAnchoredExport(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	chain := makeChain(10)
	// The organization was created again at event 7: reseal from there.
	chain[6].Action = ActionOrganizationCreate
	for i := 6; i < len(chain); i++ {
		Seal(chain[i], chain[i].Sequence, chain[i-1].Hash)
	}
	tail := export(t, key, chain[6:], 2) // events 7..10
	anchor := func(ev *auditv1.Event, signer ed25519.PrivateKey, hash string) string {
		cp := &auditv1.Checkpoint{Organization: ev.Organization, Sequence: ev.Sequence, Hash: hash, CreateTime: timestamppb.Now()}
		Sign(signer, cp)
		var b strings.Builder
		if err := WriteRecord(&b, &auditv1.ExportRecord{Record: &auditv1.ExportRecord_Checkpoint{Checkpoint: cp}}); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	good := append([]string{anchor(chain[5], key, chain[5].Hash)}, tail...)
	res, err := VerifyExport(strings.NewReader(strings.Join(good, "\n")), pub)
	if err != nil || res.FirstSequence != 7 || res.Events != 4 {
		t.Fatalf("anchored export: %+v %v", res, err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	for name, lines := range map[string][]string{
		"anchor signed by another key":  append([]string{anchor(chain[5], otherKey, chain[5].Hash)}, tail...),
		"anchor with another hash":      append([]string{anchor(chain[5], key, chain[4].Hash)}, tail...),
		"anchor one event too early":    append([]string{anchor(chain[4], key, chain[4].Hash)}, tail...),
		"no anchor":                     tail,
		"anchor before a cut-off start": append([]string{anchor(chain[6], key, chain[6].Hash)}, export(t, key, chain[7:], 2)...),
	} {
		if _, err := VerifyExport(strings.NewReader(strings.Join(lines, "\n")), pub); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}
