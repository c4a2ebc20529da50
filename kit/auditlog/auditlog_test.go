package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func makeChain(n int) []*auditv1.Event {
	prev := ZeroHash
	var out []*auditv1.Event
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		ev := &auditv1.Event{
			Id: fmt.Sprintf("ev-%03d", i), Organization: "acme", EventTime: timestamppb.New(base.Add(time.Duration(i) * time.Second)),
			Actor:  &auditv1.Actor{Principal: "users/admin", Kind: "user"},
			Action: "orgs.organization.update", Resource: "orgs/acme", Outcome: OutcomeOK, RequestId: fmt.Sprint("r", i),
			Changes:  []*auditv1.FieldChange{{Field: "display_name", OldValue: "a", NewValue: fmt.Sprint("b", i)}},
			Metadata: map[string]string{"z": "1", "a": "2"},
		}
		Seal(ev, int64(i), prev)
		prev = ev.Hash
		out = append(out, ev)
	}
	return out
}

func export(t *testing.T, key ed25519.PrivateKey, events []*auditv1.Event, cpEvery int) []string {
	t.Helper()
	var lines []string
	add := func(rec *auditv1.ExportRecord) {
		var b bytes.Buffer
		if err := WriteRecord(&b, rec); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, strings.TrimSuffix(b.String(), "\n"))
	}
	for i, ev := range events {
		add(&auditv1.ExportRecord{Record: &auditv1.ExportRecord_Event{Event: ev}})
		if (i+1)%cpEvery == 0 || i == len(events)-1 {
			cp := &auditv1.Checkpoint{Organization: ev.Organization, Sequence: ev.Sequence, Hash: ev.Hash, CreateTime: timestamppb.Now()}
			Sign(key, cp)
			add(&auditv1.ExportRecord{Record: &auditv1.ExportRecord_Checkpoint{Checkpoint: cp}})
		}
	}
	return lines
}

func TestCanonicalIsStableAndUnambiguous(t *testing.T) {
	a := makeChain(1)[0]
	b := proto.Clone(a).(*auditv1.Event)
	b.Metadata = map[string]string{"a": "2", "z": "1"} // same map, other insertion order
	if Hash(a) != Hash(b) {
		t.Fatal("hash depends on map order")
	}
	c := proto.Clone(a).(*auditv1.Event)
	c.Action, c.Resource = a.Action+a.Resource[:1], a.Resource[1:]
	if Hash(a) == Hash(c) {
		t.Fatal("moving bytes between fields keeps the hash")
	}
	d := proto.Clone(a).(*auditv1.Event)
	d.Name = "other"
	if Hash(a) != Hash(d) {
		t.Fatal("the name must not be hashed")
	}
}

func TestVerifyExport(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	pub := key.Public().(ed25519.PublicKey)
	otherPub, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	_ = otherPub
	events := makeChain(10)
	good := export(t, key, events, 4) // checkpoints after 4, 8 and 10

	res, err := VerifyExport(strings.NewReader(strings.Join(good, "\n")+"\n"), pub)
	if err != nil || res.Events != 10 || res.Checkpoints != 3 || res.Head != events[9].Hash {
		t.Fatalf("good export: %+v, %v", res, err)
	}

	// Index of the line holding event sequence n (1-based).
	lineOf := func(n int) int {
		for i, l := range good {
			if strings.Contains(l, fmt.Sprintf(`"id":"ev-%03d"`, n)) {
				return i
			}
		}
		t.Fatalf("no line for event %d", n)
		return -1
	}
	tamper := func(f func(lines []string) []string) string {
		cp := append([]string(nil), good...)
		return strings.Join(f(cp), "\n") + "\n"
	}
	tests := []struct {
		name    string
		file    string
		pub     ed25519.PublicKey
		wantSeq int64
		wantMsg string
	}{
		{"flip a byte", tamper(func(l []string) []string {
			i := lineOf(6)
			l[i] = strings.Replace(l[i], `"newValue":"b6"`, `"newValue":"c6"`, 1)
			return l
		}), pub, 6, "content does not match"},
		{"delete an event", tamper(func(l []string) []string {
			i := lineOf(3)
			return append(l[:i], l[i+1:]...)
		}), pub, 3, "sequence 4 where 3"},
		{"swap two", tamper(func(l []string) []string {
			i, j := lineOf(6), lineOf(7)
			l[i], l[j] = l[j], l[i]
			return l
		}), pub, 6, "sequence 7 where 6"},
		{"drop the tail", tamper(func(l []string) []string { return l[:lineOf(9)+1] }), pub, 9, "does not end at a signed checkpoint"},
		{"fork the chain", func() string {
			// Rewrite event 6 and re-seal every event after it: the chain is
			// internally consistent but the signed checkpoint disagrees.
			forked := makeChain(10)
			forked[5].Changes[0].NewValue = "forged"
			prev := forked[4].Hash
			for _, ev := range forked[5:] {
				Seal(ev, ev.Sequence, prev)
				prev = ev.Hash
			}
			goodCP := good[len(good)-1]
			lines := export(t, key, forked, 4)
			// Keep the original signed checkpoints (the forger cannot sign).
			orig := export(t, key, events, 4)
			lines[lineOf(8)+1] = orig[lineOf(8)+1]
			lines[len(lines)-1] = goodCP
			return strings.Join(lines, "\n") + "\n"
		}(), pub, 8, "does not match the signed checkpoint"},
		{"wrong key", strings.Join(good, "\n"), otherKey.Public().(ed25519.PublicKey), 0, "signature does not verify"},
		{"not json", tamper(func(l []string) []string { l[lineOf(2)] = "{garbage"; return l }), pub, 2, "not a valid record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := VerifyExport(strings.NewReader(tt.file), tt.pub)
			if err == nil {
				t.Fatal("tampered export verified")
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %q", err, tt.wantMsg)
			}
			var bad *BadEventError
			if tt.wantSeq != 0 && (!errors.As(err, &bad) || bad.Sequence != tt.wantSeq) {
				t.Fatalf("err = %v, want it to name sequence %d", err, tt.wantSeq)
			}
		})
	}
}

func TestParsePublicKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	s := EncodePublicKey(pub)
	for _, in := range []string{s, "ed25519:" + s, " " + s + "\n"} {
		got, err := ParsePublicKey(in)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ParsePublicKey(%q) = %v", in, err)
		}
	}
	if _, err := ParsePublicKey("abc"); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint([]byte("k1"), "s3cret"), Fingerprint([]byte("k2"), "s3cret")
	if a == b || a != Fingerprint([]byte("k1"), "s3cret") || strings.Contains(a, "s3cret") || !strings.HasPrefix(a, "hmac-sha256:") {
		t.Fatalf("fingerprints %s %s", a, b)
	}
}
