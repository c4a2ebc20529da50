package auditlog

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

// FuzzVerifyExport feeds arbitrary files to the offline verifier: it must
// never panic and never accept a file without a checkpoint signed by the
// key.
func FuzzVerifyExport(f *testing.F) {
	pub, _, _ := ed25519.GenerateKey(nil)
	f.Add(`{"event":{"id":"a","organization":"acme","sequence":"1"}}`)
	f.Add(`{"checkpoint":{"organization":"acme","sequence":"1"}}`)
	f.Add("")
	f.Add("{}\n{}\n")
	f.Fuzz(func(t *testing.T, file string) {
		if _, err := VerifyExport(strings.NewReader(file), pub); err == nil {
			t.Fatalf("accepted a file no key of ours signed: %q", file)
		}
	})
}
