package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestMCPGatewayHostileInput: bad messages, methods, headers and sizes
// get clear 4xx answers (or a JSON-RPC error), never a 5xx; and 100,000
// mutated tokens are all refused.
func TestMCPGatewayHostileInput(t *testing.T) {
	u := startUp(t, "--deploy-discover-interval", "100ms")
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", u.token, `{}`, 200)
	url := u.rest + "/mcp/acme/prod/echo"
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	send := func(method, url, body string, h map[string]string) (int, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+u.token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		for k, v := range h {
			if v == "" {
				req.Header.Del(k)
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	for _, c := range []struct {
		name, method, url, body string
		h                       map[string]string
		status                  int
		contains                string
	}{
		{"wrong method", "PUT", url, init, nil, 405, ""},
		{"a registry that does not exist (aggregated URL)", "POST", u.rest + "/mcp/acme/prod", init, nil, 404, ""},
		{"too many segments", "POST", u.rest + "/mcp/acme/prod/echo/x", init, nil, 404, ""},
		{"bad ids in the URL", "POST", u.rest + "/mcp/ACME/p!/x", init, nil, 404, ""},
		{"no token", "POST", url, init, map[string]string{"Authorization": ""}, 401, ""},
		{"unknown protocol version", "POST", url, init, map[string]string{"MCP-Protocol-Version": "1999-01-01"}, 400, "MCP-Protocol-Version"},
		{"foreign origin", "POST", url, init, map[string]string{"Origin": "https://evil.example"}, 403, ""},
		{"Mcp-Method not matching", "POST", url, init, map[string]string{"Mcp-Method": "tools/call"}, 400, "Mcp-Method"},
		{"invalid UTF-8", "POST", url, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}", nil, 200, "-32700"},
		{"not JSON", "POST", url, "hello", nil, 200, "-32700"},
		{"deep JSON", "POST", url, `{"jsonrpc":"2.0","id":1,"method":"x","params":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, nil, 400, ""},
		{"huge body", "POST", url, `{"jsonrpc":"2.0","id":1,"method":"x","params":"` + strings.Repeat("x", 5<<20) + `"}`, nil, 413, ""},
		{"a call without a session", "POST", url, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, nil, 400, "Mcp-Session-Id"},
		{"GET without a session", "GET", url, "", nil, 400, "Mcp-Session-Id"},
		{"DELETE without a session", "DELETE", url, "", nil, 400, "Mcp-Session-Id"},
		{"a server that is not pinned", "POST", url, init, nil, 404, ""},
		{"another organization", "POST", u.rest + "/mcp/globex/prod/echo", init, nil, 404, ""},
		{"a forged session", "POST", url, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, map[string]string{"Mcp-Session-Id": strings.Repeat("A", 5000)}, 404, ""},
	} {
		code, body := send(c.method, c.url, c.body, c.h)
		if code != c.status && !(c.name == "deep JSON" && code == 200 && strings.Contains(body, "-32700")) {
			t.Errorf("%s: %d, want %d: %.200s", c.name, code, c.status, body)
		}
		if c.contains != "" && !strings.Contains(body, c.contains) {
			t.Errorf("%s: the answer does not say %q: %.200s", c.name, c.contains, body)
		}
		if code >= 500 {
			t.Errorf("%s: a server error %d: %.200s", c.name, code, body)
		}
	}

	// The aggregated endpoint of an (empty) registry: the same answers,
	// and its sessions bound to their caller and kind.
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=agg", u.token, `{}`, 200)
	agg := u.rest + "/mcp/acme/agg"
	initReq, _ := http.NewRequest("POST", agg, strings.NewReader(init))
	initReq.Header.Set("Authorization", "Bearer "+u.token)
	initReq.Header.Set("Content-Type", "application/json")
	initReq.Header.Set("Accept", "application/json, text/event-stream")
	initResp, err := hc.Do(initReq)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, initResp.Body)
	_ = initResp.Body.Close()
	sid := initResp.Header.Get("Mcp-Session-Id")
	if initResp.StatusCode != 200 || sid == "" {
		t.Fatalf("initialize on the aggregated endpoint: %d, session %q", initResp.StatusCode, sid)
	}
	other := u.saToken(t, "acme", "other", "roles/admin", "orgs/acme")
	withSession := map[string]string{"Mcp-Session-Id": sid}
	call := func(params string) string {
		return `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":` + params + `}`
	}
	for _, c := range []struct {
		name, method, body string
		h                  map[string]string
		status             int
		contains           string
	}{
		{"wrong method", "PATCH", init, nil, 405, ""},
		{"no token", "POST", init, map[string]string{"Authorization": ""}, 401, ""},
		{"invalid UTF-8", "POST", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}", nil, 200, "-32700"},
		{"deep JSON", "POST", `{"jsonrpc":"2.0","id":1,"method":"x","params":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, nil, 400, ""},
		{"huge body", "POST", `{"jsonrpc":"2.0","id":1,"method":"x","params":"` + strings.Repeat("x", 5<<20) + `"}`, nil, 413, ""},
		{"a call without a session", "POST", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, nil, 400, "Mcp-Session-Id"},
		{"GET without a session", "GET", "", nil, 400, "Mcp-Session-Id"},
		{"DELETE without a session", "DELETE", "", nil, 400, "Mcp-Session-Id"},
		{"a forged session", "POST", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, map[string]string{"Mcp-Session-Id": strings.Repeat("A", 40000)}, 404, ""},
		{"params that are not an object", "POST", call(`[1,2]`), withSession, 200, "-32602"},
		{"a call without a name", "POST", call(`{"arguments":{}}`), withSession, 200, "params.name"},
		{"a name of a wrong type", "POST", call(`{"name":{"x":1}}`), withSession, 200, "params.name"},
		{"an unknown tool", "POST", call(`{"name":"nope_nothing"}`), withSession, 200, "unknown tool"},
		{"a second initialize", "POST", init, withSession, 200, "already initialized"},
		{"an unknown method", "POST", `{"jsonrpc":"2.0","id":4,"method":"sampling/createMessage"}`, withSession, 200, "-32601"},
	} {
		code, body := send(c.method, agg, c.body, c.h)
		if code != c.status && !(c.name == "deep JSON" && code == 200 && strings.Contains(body, "-32700")) {
			t.Errorf("aggregated, %s: %d, want %d: %.200s", c.name, code, c.status, body)
		}
		if c.contains != "" && !strings.Contains(body, c.contains) {
			t.Errorf("aggregated, %s: the answer does not say %q: %.200s", c.name, c.contains, body)
		}
		if code >= 500 {
			t.Errorf("aggregated, %s: a server error %d: %.200s", c.name, code, body)
		}
	}
	// Another caller's session: 403; the session on another registry's or
	// a server's URL: 404; another organization's aggregated URL: 404.
	if code, _ := sendAs(hc, other, "POST", agg, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, withSession); code != 403 {
		t.Errorf("another caller's aggregated session: %d, want 403", code)
	}
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=agg2", u.token, `{}`, 200)
	if code, _ := send("POST", u.rest+"/mcp/acme/agg2", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, withSession); code != 404 {
		t.Errorf("an aggregated session on another registry: %d, want 404", code)
	}
	if code, _ := send("POST", u.rest+"/mcp/acme/agg/echo", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, withSession); code != 404 {
		t.Errorf("an aggregated session on a server's URL: %d, want 404", code)
	}
	if code, _ := send("POST", u.rest+"/mcp/globex/agg", init, nil); code != 404 {
		t.Errorf("another organization's aggregated URL: %d, want 404", code)
	}

	// 100,000 mutations of a valid token: none accepted.
	valid := u.token
	var accepted, served atomic.Int64
	var wg sync.WaitGroup
	const n, workers = 100000, 8
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 7))
			for i := 0; i < n/workers; i++ {
				tok := mutate(r, valid)
				if tok == valid {
					continue
				}
				req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(init)))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				served.Add(1)
				if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
					accepted.Add(1)
				}
			}
		}(uint64(w))
	}
	wg.Wait()
	if accepted.Load() != 0 || served.Load() < n*9/10 {
		t.Fatalf("%d of %d mutated tokens were not refused with 401", accepted.Load(), served.Load())
	}
}

// mutate changes a token the ways an attacker would: flip, drop, insert,
// truncate, extend, swap case.
func mutate(r *rand.Rand, s string) string {
	b := []byte(s)
	switch r.IntN(6) {
	case 0:
		i := r.IntN(len(b))
		b[i] ^= byte(1 << r.IntN(7))
	case 1:
		i := r.IntN(len(b))
		b = append(b[:i], b[i+1:]...)
	case 2:
		i := r.IntN(len(b))
		b = append(b[:i], append([]byte{byte(33 + r.IntN(90))}, b[i:]...)...)
	case 3:
		b = b[:r.IntN(len(b))]
	case 4:
		b = append(b, []byte(fmt.Sprint(r.IntN(1000)))...)
	case 5:
		i := r.IntN(len(b))
		if b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 32
		} else if b[i] >= 'A' && b[i] <= 'Z' {
			b[i] += 32
		} else {
			b[i] = 'x'
		}
	}
	if len(b) == 0 {
		return "x"
	}
	return string(b)
}

// sendAs sends one MCP request with token and headers h.
func sendAs(hc *http.Client, token, method, url, body string, h map[string]string) (int, string) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
