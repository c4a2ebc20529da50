package gateway

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

// TestMarshalEntries: the joined list of kept entry JSON is the same JSON
// as grpc-gateway's own rendering of the whole answer, and an entry that
// changed is rendered again, not served from what was kept.
func TestMarshalEntries(t *testing.T) {
	doc, err := structpb.NewStruct(map[string]any{"name": "com.acme/github", "version": "1.0.0",
		"packages": []any{map[string]any{"registryType": "npm", "identifier": "@acme/github", "n": 1.5}}})
	if err != nil {
		t.Fatal(err)
	}
	now := timestamppb.New(time.Date(2026, 12, 3, 12, 0, 0, 5, time.UTC))
	entry := func(rev int64, status registryv1.ServerVersion_Status) *registryv1.Entry {
		return &registryv1.Entry{Name: "orgs/acme/registries/prod/entries/github", Server: "orgs/acme/servers/github",
			ServerName: "com.acme/github", Version: "1.0.0", Revision: rev, CreateTime: now, UpdateTime: now, VersionStatus: status,
			VersionDetail: &registryv1.ServerVersion{Name: "orgs/acme/servers/github/versions/1.0.0", ServerJson: doc, Status: status,
				Digest: "sha256:x", UpdateTime: now}}
	}
	check := func(resp *registryv1.ListEntriesResponse) {
		t.Helper()
		fast, err := jsonMarshaler.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		slow, err := jsonMarshaler.JSONPb.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(fast, &a); err != nil {
			t.Fatalf("%v: %s", err, fast)
		}
		if err := json.Unmarshal(slow, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("the joined list differs from grpc-gateway's rendering:\n%s\n%s", fast, slow)
		}
	}
	check(&registryv1.ListEntriesResponse{})
	check(&registryv1.ListEntriesResponse{Entries: []*registryv1.Entry{entry(1, registryv1.ServerVersion_STATUS_ACTIVE)}, NextPageToken: "tok\"en"})
	check(&registryv1.ListEntriesResponse{Entries: []*registryv1.Entry{entry(1, registryv1.ServerVersion_STATUS_ACTIVE), {Name: "orgs/acme/registries/prod/entries/basic"}}})
	// The same entry yanked: the kept JSON of the active one is not served.
	yanked := entry(1, registryv1.ServerVersion_STATUS_YANKED)
	yanked.VersionDetail.UpdateTime = timestamppb.New(now.AsTime().Add(time.Second))
	check(&registryv1.ListEntriesResponse{Entries: []*registryv1.Entry{yanked}})
	check(&registryv1.ListEntriesResponse{Entries: []*registryv1.Entry{entry(2, registryv1.ServerVersion_STATUS_ACTIVE)}})
	// The same entries with another next page token (another caller's, or
	// another page size): the page kept for the first token is not served.
	for range 2 { // the second round is served from the kept pages
		check(&registryv1.ListEntriesResponse{Entries: []*registryv1.Entry{entry(3, registryv1.ServerVersion_STATUS_ACTIVE)}, NextPageToken: "a"})
		check(&registryv1.ListEntriesResponse{Entries: []*registryv1.Entry{entry(3, registryv1.ServerVersion_STATUS_ACTIVE)}, NextPageToken: "b"})
		check(&registryv1.ListEntriesResponse{Entries: []*registryv1.Entry{entry(3, registryv1.ServerVersion_STATUS_ACTIVE)}})
	}
}
