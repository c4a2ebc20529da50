package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/services/registry"
)

// officialGet fetches an official API path and decodes the JSON answer.
func (u *upInstance) officialGet(t *testing.T, path, token string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u.rest+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("GET %s = %d %v, want %d", path, resp.StatusCode, body, want)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q", path, ct)
	}
	if want != http.StatusOK {
		if e, _ := body["error"].(string); e == "" || len(body) != 1 {
			t.Fatalf("GET %s: error body %v, want {\"error\": ...}", path, body)
		}
	}
	return body
}

var officialMetaFields = map[string]bool{"status": true, "statusMessage": true, "statusChangedAt": true, "publishedAt": true, "updatedAt": true, "isLatest": true}

// checkServerResponse checks one ServerResponse against the official
// OpenAPI description: a valid server.json under "server", and a _meta
// whose official block has only the documented fields with their types.
func checkServerResponse(t *testing.T, sr any) (name, version string) {
	t.Helper()
	m, ok := sr.(map[string]any)
	if !ok {
		t.Fatalf("server response %v is not an object", sr)
	}
	for k := range m {
		if k != "server" && k != "_meta" {
			t.Fatalf("server response has %q", k)
		}
	}
	doc, _ := json.Marshal(m["server"])
	if err := registry.ValidateServerJSON(doc); err != nil {
		t.Fatalf("server is not a valid server.json: %v\n%s", err, doc)
	}
	meta, _ := m["_meta"].(map[string]any)
	off, ok := meta["io.modelcontextprotocol.registry/official"].(map[string]any)
	if !ok {
		t.Fatalf("no official _meta block: %v", m["_meta"])
	}
	for k, v := range off {
		if !officialMetaFields[k] {
			t.Fatalf("official _meta has undocumented %q", k)
		}
		switch k {
		case "isLatest":
			if _, ok := v.(bool); !ok {
				t.Fatalf("isLatest = %v", v)
			}
		case "status":
			if v != "active" && v != "deprecated" && v != "deleted" {
				t.Fatalf("status = %v", v)
			}
		case "statusMessage":
		default:
			if _, err := time.Parse(time.RFC3339, fmt.Sprint(v)); err != nil {
				t.Fatalf("%s = %v: %v", k, v, err)
			}
		}
	}
	for _, k := range []string{"status", "publishedAt", "updatedAt", "isLatest"} {
		if _, ok := off[k]; !ok {
			t.Fatalf("official _meta lacks %s", k)
		}
	}
	s := m["server"].(map[string]any)
	return s["name"].(string), s["version"].(string)
}

func checkServerList(t *testing.T, body map[string]any) []any {
	t.Helper()
	for k := range body {
		if k != "servers" && k != "metadata" {
			t.Fatalf("server list has %q", k)
		}
	}
	servers, ok := body["servers"].([]any)
	if !ok {
		t.Fatalf("servers = %v", body["servers"])
	}
	md, _ := body["metadata"].(map[string]any)
	for k := range md {
		if k != "nextCursor" && k != "count" {
			t.Fatalf("metadata has %q", k)
		}
	}
	if int(md["count"].(float64)) != len(servers) {
		t.Fatalf("metadata.count %v for %d servers", md["count"], len(servers))
	}
	for _, s := range servers {
		checkServerResponse(t, s)
	}
	return servers
}

func TestOfficialRegistryAPI(t *testing.T) {
	u := startUp(t)
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	conn, err := grpc.NewClient(u.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := registryv1.NewRegistryServiceClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+u.token)
	for _, r := range []string{"production", "staging"} {
		if _, err := c.CreateRegistry(ctx, &registryv1.CreateRegistryRequest{Parent: "orgs/acme", RegistryId: r, Registry: &registryv1.Registry{}}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 1000
	for i := range n {
		id := fmt.Sprintf("s%04d", i)
		if _, err := c.CreateServer(ctx, &registryv1.CreateServerRequest{Parent: "orgs/acme", ServerId: id,
			Server: &registryv1.Server{ServerName: "com.acme/" + id, Description: "server " + id}}); err != nil {
			t.Fatal(err)
		}
		doc := fmt.Sprintf(`{"name":"com.acme/%s","description":"server %s","version":"1.0.0","remotes":[{"type":"streamable-http","url":"https://%s.acme.example/mcp","headers":[{"name":"Authorization","isSecret":true,"value":"Bearer ${secret:TOKEN}"}]}]}`, id, id, id)
		if _, err := c.ImportServerJson(ctx, &registryv1.ImportServerJsonRequest{Parent: "orgs/acme/servers/" + id, ServerJson: doc}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PinEntry(ctx, &registryv1.PinEntryRequest{Name: "orgs/acme/registries/production/entries/" + id, Version: "1.0.0"}); err != nil {
			t.Fatal(err)
		}
	}
	base := "/registries/acme/production/v0.1/servers"

	// Every server once, over pages of 100 joined by cursors.
	seen := map[string]bool{}
	pages := 0
	for cursor := ""; ; pages++ {
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		body := u.officialGet(t, base+"?"+q.Encode(), u.token, 200)
		for _, s := range checkServerList(t, body) {
			name, _ := checkServerResponse(t, s)
			if seen[name] {
				t.Fatalf("%s twice", name)
			}
			seen[name] = true
		}
		next, _ := body["metadata"].(map[string]any)["nextCursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != n || pages != 9 {
		t.Fatalf("%d servers over %d pages", len(seen), pages+1)
	}
	if got := checkServerList(t, u.officialGet(t, base, u.token, 200)); len(got) != 30 {
		t.Fatalf("default page = %d, want 30", len(got))
	}
	for _, bad := range []string{"?limit=0", "?limit=101", "?limit=x", "?updated_since=yesterday", "?cursor=forged"} {
		u.officialGet(t, base+bad, u.token, 400)
	}
	if got := checkServerList(t, u.officialGet(t, base+"?search=s099&limit=100", u.token, 200)); len(got) != 10 {
		t.Fatalf("search s099 = %d", len(got))
	}

	// updated_since: only what changed after the mark.
	time.Sleep(10 * time.Millisecond)
	mark := time.Now().UTC()
	time.Sleep(10 * time.Millisecond)
	for _, id := range []string{"s0007", "s0500", "s0999"} {
		doc := fmt.Sprintf(`{"name":"com.acme/%s","description":"server %s","version":"1.1.0"}`, id, id)
		if _, err := c.ImportServerJson(ctx, &registryv1.ImportServerJsonRequest{Parent: "orgs/acme/servers/" + id, ServerJson: doc}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PinEntry(ctx, &registryv1.PinEntryRequest{Name: "orgs/acme/registries/production/entries/" + id, Version: "1.1.0"}); err != nil {
			t.Fatal(err)
		}
	}
	since := checkServerList(t, u.officialGet(t, base+"?limit=100&updated_since="+url.QueryEscape(mark.Format(time.RFC3339Nano)), u.token, 200))
	if len(since) != 3 {
		t.Fatalf("updated_since = %d servers", len(since))
	}
	if got := checkServerList(t, u.officialGet(t, base+"?limit=100&version=1.1.0", u.token, 200)); len(got) != 3 {
		t.Fatalf("version=1.1.0 = %d", len(got))
	}
	latest := checkServerList(t, u.officialGet(t, base+"?limit=100&version=latest&search=s0007", u.token, 200))
	if len(latest) != 1 {
		t.Fatalf("version=latest = %d", len(latest))
	}
	if _, v := checkServerResponse(t, latest[0]); v != "1.1.0" {
		t.Fatalf("latest of s0007 = %s", v)
	}

	// One server, by its URL-encoded name.
	versions := checkServerList(t, u.officialGet(t, base+"/com.acme%2Fs0500/versions", u.token, 200))
	if len(versions) != 1 {
		t.Fatalf("versions = %d", len(versions))
	}
	for _, v := range []string{"latest", "1.1.0"} {
		name, ver := checkServerResponse(t, u.officialGet(t, base+"/com.acme%2Fs0500/versions/"+v, u.token, 200))
		if name != "com.acme/s0500" || ver != "1.1.0" {
			t.Fatalf("%s = %s %s", v, name, ver)
		}
	}
	u.officialGet(t, base+"/com.acme%2Fs0500/versions/1.0.0", u.token, 404) // not what production pins
	u.officialGet(t, base+"/com.acme%2Fnope/versions", u.token, 404)
	u.officialGet(t, "/registries/acme/nope/v0.1/servers", u.token, 404)
	u.officialGet(t, base, "", 401)

	// A caller sees only what its bindings allow.
	one := u.saToken(t, "acme", "one", "roles/user", "orgs/acme/servers/s0042")
	if got := checkServerList(t, u.officialGet(t, base+"?limit=100", one, 200)); len(got) != 1 {
		t.Fatalf("bound to one server, sees %d", len(got))
	} else if name, _ := checkServerResponse(t, got[0]); name != "com.acme/s0042" {
		t.Fatalf("sees %s", name)
	}
	staging := u.saToken(t, "acme", "stager", "roles/user", "orgs/acme/registries/staging")
	u.officialGet(t, base, staging, 403)
	if got := checkServerList(t, u.officialGet(t, "/registries/acme/staging/v0.1/servers", staging, 200)); len(got) != 0 {
		t.Fatalf("staging = %d", len(got))
	}
	if !strings.HasPrefix(u.rest, "http://") {
		t.Fatal(u.rest)
	}
}
