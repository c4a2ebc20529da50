package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// officialRaw fetches an official API path with extra headers and returns
// the status, headers and (decompressed) body.
func (u *upInstance) officialRaw(t *testing.T, path, token string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u.rest+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// A transport of its own: the default one would ask for gzip and
	// decompress it out of sight.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, resp.Header, body
}

// officialNames lists the server names a caller sees in the registry's
// official list, over every page.
func (u *upInstance) officialNames(t *testing.T, base, token string) ([]string, error) {
	var names []string
	for cursor := ""; ; {
		path := base + "?limit=7"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		code, _, body := u.officialRaw(t, path, token, nil)
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET %s = %d %s", path, code, body)
		}
		var page struct {
			Servers []struct {
				Server struct{ Name, Version string } `json:"server"`
			} `json:"servers"`
			Metadata struct{ NextCursor string } `json:"metadata"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		for _, s := range page.Servers {
			names = append(names, s.Server.Name)
		}
		if cursor = page.Metadata.NextCursor; cursor == "" {
			return names, nil
		}
	}
}

// testOfficialCache holds the official API's in-memory rendering to what
// the database says, for every caller, at every moment: u serves the REST
// API and the official API (one process, or a gateway apart from the
// registry service).
func testOfficialCache(t *testing.T, u *upInstance) {
	const n = 24
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=production", u.token, `{}`, 200)
	for i := range n {
		id := fmt.Sprintf("s%02d", i)
		u.expect(t, "POST", "/v1/orgs/acme/servers?server_id="+id, u.token, `{"serverName":"com.acme/`+id+`"}`, 200)
		for _, v := range []string{"1.0.0", "1.1.0"} {
			doc := fmt.Sprintf(`{"name":"com.acme/%s","description":"server %s","version":"%s","packages":[{"registryType":"npm","identifier":"@acme/%s","version":"%s","transport":{"type":"stdio"}}]}`, id, id, v, id, v)
			body, _ := json.Marshal(map[string]string{"serverJson": doc})
			u.expect(t, "POST", "/v1/orgs/acme/servers/"+id+"/versions:import", u.token, string(body), 200)
		}
		if i%4 != 3 { // a quarter start unpinned
			u.expect(t, "PUT", "/v1/orgs/acme/registries/production/entries/"+id, u.token, `{"version":"1.0.0"}`, 200)
		}
	}
	// Two callers with different bindings: the even servers, and every
	// third one.
	allowed := map[string]func(i int) bool{"even": func(i int) bool { return i%2 == 0 }, "third": func(i int) bool { return i%3 == 0 }}
	tokens := map[string]string{}
	for who, ok := range allowed {
		tokens[who] = u.saToken(t, "acme", who, "", "")
		for i := range n {
			if ok(i) {
				u.expect(t, "POST", fmt.Sprintf("/v1/orgs/acme/servers/s%02d/bindings", i), u.token,
					`{"role":"roles/user","principal":"orgs/acme/serviceAccounts/`+who+`"}`, 200)
			}
		}
	}
	base := "/registries/acme/production/v0.1/servers"
	var mu sync.Mutex
	pinned := map[int]bool{}
	for i := range n {
		pinned[i] = i%4 != 3
	}
	// want is what who must see now: its servers that are pinned (and not
	// yanked: a yank unpins nothing, so yanked ones are tracked as unpinned).
	want := func(who string) []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for i := range n {
			if pinned[i] && (who == "admin" || allowed[who](i)) {
				out = append(out, fmt.Sprintf("com.acme/s%02d", i))
			}
		}
		return out
	}
	tokens["admin"] = u.token
	check := func(step string) {
		t.Helper()
		for _, who := range []string{"admin", "even", "third"} {
			got, err := u.officialNames(t, base, tokens[who])
			if err != nil {
				t.Fatalf("%s: %s: %v", step, who, err)
			}
			if w := want(who); !slices.Equal(got, w) {
				t.Fatalf("after %s, %s sees %v, want %v", step, who, got, w)
			}
		}
	}
	check("the load")

	// Readers run all along: whatever moment they catch, never a server
	// outside their bindings, never one twice.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	errc := make(chan error, 2)
	for _, who := range []string{"even", "third"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := u.officialNames(t, base, tokens[who])
				if err != nil {
					errc <- fmt.Errorf("%s: %v", who, err)
					return
				}
				reads.Add(1)
				seen := map[string]bool{}
				for _, name := range got {
					var i int
					if _, err := fmt.Sscanf(name, "com.acme/s%02d", &i); err != nil || !allowed[who](i) || seen[name] {
						errc <- fmt.Errorf("%s sees %s (of %v), which its bindings do not allow or it saw twice", who, name, got)
						return
					}
					seen[name] = true
				}
			}
		}()
	}
	// Each acknowledged change shows on the very next read, for everyone.
	for round := range 3 {
		for i := range n {
			if (i+round)%5 != 0 {
				continue
			}
			entry := fmt.Sprintf("/v1/orgs/acme/registries/production/entries/s%02d", i)
			mu.Lock()
			was := pinned[i]
			mu.Unlock()
			if was {
				u.expect(t, "DELETE", entry, u.token, "", 200)
			} else {
				u.expect(t, "PUT", entry, u.token, `{"version":"1.0.0"}`, 200)
			}
			mu.Lock()
			pinned[i] = !was
			mu.Unlock()
			check(fmt.Sprintf("round %d, s%02d pinned=%v", round, i, !was))
		}
	}
	// A yank shows at once: the list leaves it out, include_deleted shows
	// it as deleted.
	var yanked int
	for i := range n {
		if pinned[i] && i%2 == 0 {
			yanked = i
			break
		}
	}
	u.expect(t, "POST", fmt.Sprintf("/v1/orgs/acme/servers/s%02d/versions/1.0.0:setStatus", yanked), u.token,
		`{"status":"STATUS_YANKED","message":"CVE"}`, 200)
	mu.Lock()
	pinned[yanked] = false
	mu.Unlock()
	check(fmt.Sprintf("yanking s%02d", yanked))
	_, _, body := u.officialRaw(t, base+"?limit=100&include_deleted=true&search="+fmt.Sprintf("s%02d", yanked), tokens["even"], nil)
	if !strings.Contains(string(body), `"status":"deleted"`) {
		t.Fatalf("include_deleted does not show the yanked version as deleted: %s", body)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	t.Logf("%d concurrent reads, each within its caller's bindings", reads.Load())

	// ETag: 304 for a client that holds the page, 200 with a new ETag
	// once it changed; the same bytes gzip-compressed for a client that
	// asks.
	code, h, plain := u.officialRaw(t, base+"?limit=100", tokens["even"], nil)
	etag := h.Get("ETag")
	if code != 200 || !strings.HasPrefix(etag, `"`) || h.Get("Cache-Control") != "private, no-cache" {
		t.Fatalf("list: %d, ETag %q, Cache-Control %q", code, etag, h.Get("Cache-Control"))
	}
	if code, h, body := u.officialRaw(t, base+"?limit=100", tokens["even"], map[string]string{"If-None-Match": etag}); code != 304 || len(body) != 0 || h.Get("ETag") != etag {
		t.Fatalf("If-None-Match with the current ETag: %d %q, %d bytes", code, h.Get("ETag"), len(body))
	}
	if code, _, _ := u.officialRaw(t, base+"?limit=100", tokens["third"], map[string]string{"If-None-Match": etag}); code != 200 {
		t.Fatalf("another caller's ETag matched: %d (what it sees differs)", code)
	}
	code, h, zipped := u.officialRaw(t, base+"?limit=100", tokens["even"], map[string]string{"Accept-Encoding": "br, gzip"})
	if code != 200 || h.Get("Content-Encoding") != "gzip" || !bytes.Equal(zipped, plain) || h.Get("ETag") != etag {
		t.Fatalf("gzip: %d, Content-Encoding %q, same body %v, ETag %q", code, h.Get("Content-Encoding"), bytes.Equal(zipped, plain), h.Get("ETag"))
	}
	var i int
	for i = 0; pinned[i] || i%2 != 0; i++ {
	}
	u.expect(t, "PUT", fmt.Sprintf("/v1/orgs/acme/registries/production/entries/s%02d", i), u.token, `{"version":"1.1.0"}`, 200)
	code, h, _ = u.officialRaw(t, base+"?limit=100", tokens["even"], map[string]string{"If-None-Match": etag})
	if code != 200 || h.Get("ETag") == etag || h.Get("ETag") == "" {
		t.Fatalf("after a pin, If-None-Match with the old ETag: %d, ETag %q (old %q)", code, h.Get("ETag"), etag)
	}
	// One server's latest version follows its pin too.
	code, _, body = u.officialRaw(t, base+fmt.Sprintf("/com.acme%%2Fs%02d/versions/latest", i), tokens["even"], nil)
	if code != 200 || !strings.Contains(string(body), `"version":"1.1.0"`) {
		t.Fatalf("latest after the pin: %d %s", code, body)
	}
	if code, _, _ := u.officialRaw(t, base+fmt.Sprintf("/com.acme%%2Fs%02d/versions/latest", 1), tokens["even"], nil); code != 404 {
		t.Fatalf("a server outside the caller's bindings: %d, want 404", code)
	}
	// The registry deleted and made again: nothing of the old one shows.
	for i := range n {
		u.do(t, "DELETE", fmt.Sprintf("/v1/orgs/acme/registries/production/entries/s%02d", i), u.token, nil)
	}
	u.expect(t, "DELETE", "/v1/orgs/acme/registries/production", u.token, "", 200)
	if code, _, _ := u.officialRaw(t, base, u.token, nil); code != 404 {
		t.Fatalf("a deleted registry: %d", code)
	}
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=production", u.token, `{}`, 200)
	u.expect(t, "PUT", "/v1/orgs/acme/registries/production/entries/s05", u.token, `{"version":"1.0.0"}`, 200)
	if got, err := u.officialNames(t, base, u.token); err != nil || !slices.Equal(got, []string{"com.acme/s05"}) {
		t.Fatalf("the registry made again shows %v, %v", got, err)
	}
}

// TestOfficialCache: one process (`pylee up`).
func TestOfficialCache(t *testing.T) {
	testOfficialCache(t, startUp(t))
}

// TestSplitOfficialCache: the gateway in one process, the registry service
// in another; a change made through the gateway shows on its next read.
func TestSplitOfficialCache(t *testing.T) {
	dir := t.TempDir()
	orgsGRPC, orgsHTTP, regGRPC, regHTTP, auditGRPC, auditHTTP := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	common := []string{"--service-token", "pyl_split_official_service_token_0123456789", "--page-token-key",
		"split-official-page-token-key-0123456789", "--log-format", "json", "--log-level", "warn", "--relay-poll", "50ms", "--migrate"}
	serve := func(name, target, grpcAddr, httpAddr string, extra ...string) *proc {
		args := append([]string{"serve", "--target=" + target, "--grpc-addr", grpcAddr, "--http-addr", httpAddr,
			"--data-dir", filepath.Join(dir, name)}, extra...)
		return startProc(t, httpAddr, filepath.Join(dir, name+".log"), append(args, common...)...)
	}
	serve("audit", "audit", auditGRPC, auditHTTP, "--orgs-addr", orgsGRPC)
	serve("registry", "registry", regGRPC, regHTTP, "--orgs-addr", orgsGRPC, "--audit-addr", auditGRPC)
	serve("orgs", "orgs,gateway", orgsGRPC, orgsHTTP, "--registry-addr", regGRPC, "--audit-addr", auditGRPC)
	tok, err := os.ReadFile(filepath.Join(dir, "orgs", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	testOfficialCache(t, &upInstance{rest: "http://" + orgsHTTP, token: strings.TrimSpace(string(tok))})
}
