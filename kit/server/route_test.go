package server_test

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"

	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
	"github.com/pyleeai/pylee/kit/errs"
	"github.com/pyleeai/pylee/kit/server"
	"github.com/pyleeai/pylee/kit/server/servertest"
)

// oneUser accepts pyl_good as users/u.
type oneUser struct{}

func (oneUser) Authenticate(_ context.Context, c config.Secret) (auth.Principal, error) {
	if c.Reveal() != "pyl_good" {
		return auth.Principal{}, errs.ErrUnauthenticated
	}
	return auth.Principal{Name: "users/u", Kind: auth.KindUser}, nil
}

// readsA allows x.read on orgs/a only.
type readsA struct{}

func (readsA) Authorize(_ context.Context, _ auth.Principal, permission, resource string) error {
	if permission == "x.read" && resource == "orgs/a" {
		return nil
	}
	return errs.ErrPermissionDenied
}

// TestHandleRoute: a plain HTTP route gets what an RPC gets from the gRPC
// chain: authentication, authorization, the method and body checks, the
// refusal recorded, recovery, and the same error body.
func TestHandleRoute(t *testing.T) {
	srv := server.New(servertest.Config(), zap.NewNop())
	srv.SetAuth(oneUser{}, readsA{})
	var mu sync.Mutex
	var denied []server.Denied
	srv.SetDeniedRecorder(func(_ context.Context, d server.Denied) {
		mu.Lock()
		defer mu.Unlock()
		denied = append(denied, d)
	})
	srv.HandleRoute("/r/{org}", server.HTTPRule{Name: "test.read", Methods: []string{"GET", "POST"}, Permission: "x.read",
		Resource: func(r *http.Request) string { return "orgs/" + r.PathValue("org") }, MaxBodyBytes: 10},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := auth.FromContext(r.Context())
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, "body", http.StatusRequestEntityTooLarge)
				return
			}
			if r.URL.Query().Get("panic") != "" {
				panic("boom")
			}
			_, _ = io.WriteString(w, "hello "+p.Name+" from "+server.CallMetaFrom(r.Context()).RequestID)
		}))
	servertest.Start(t, srv)
	base := "http://" + srv.HTTPAddr()

	do := func(method, path, body string, headers ...string) (*http.Response, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Add(headers[i], headers[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, c := range []struct {
		name, method, path, body string
		headers                  []string
		want                     int
		contains                 string
	}{
		{"allowed", "GET", "/r/a", "", []string{"Authorization", "Bearer pyl_good"}, 200, "hello users/u from "},
		{"no credential", "GET", "/r/a", "", nil, 401, `"code":16`},
		{"bad credential", "GET", "/r/a", "", []string{"Authorization", "Bearer pyl_bad"}, 401, `"code":16`},
		{"two credentials", "GET", "/r/a", "", []string{"Authorization", "Bearer pyl_good", "Authorization", "Bearer pyl_good"}, 401, ""},
		{"not a bearer", "GET", "/r/a", "", []string{"Authorization", "Basic eDp5"}, 401, ""},
		{"other org", "GET", "/r/b", "", []string{"Authorization", "Bearer pyl_good"}, 403, `"code":7`},
		{"wrong method", "DELETE", "/r/a", "", []string{"Authorization", "Bearer pyl_good"}, 405, "allowed: GET, POST"},
		{"body too large", "POST", "/r/a", strings.Repeat("x", 100), []string{"Authorization", "Bearer pyl_good"}, 413, ""},
		{"panic", "GET", "/r/a?panic=1", "", []string{"Authorization", "Bearer pyl_good"}, 500, "internal error"},
	} {
		resp, body := do(c.method, c.path, c.body, c.headers...)
		if resp.StatusCode != c.want || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %s, want %d containing %q", c.name, resp.StatusCode, body, c.want, c.contains)
		}
		if c.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without a challenge", c.name)
		}
		if c.want == 405 && resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("%s: Allow = %q", c.name, resp.Header.Get("Allow"))
		}
		if resp.Header.Get(server.RequestIDHeader) == "" {
			t.Errorf("%s: no request id", c.name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(denied) != 5 || denied[0].Method != "test.read" || denied[len(denied)-1].Resource != "orgs/b" {
		t.Errorf("refusals recorded: %+v", denied)
	}
	_, metrics := do("GET", "/metrics", "")
	if !strings.Contains(metrics, `pylee_http_route_duration_seconds_count{code="403",route="test.read"} 1`) {
		t.Error("the route's metrics are missing")
	}
}

func TestClientAddress(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		peer      string
		forwarded []string
		vouched   bool
		want      string
	}{
		{"203.0.113.7:5000", []string{"6.6.6.6"}, false, "203.0.113.7"},                        // untrusted peer: its header is ignored
		{"127.0.0.1:5000", []string{"6.6.6.6, 198.51.100.2"}, false, "198.51.100.2"},           // the hop the proxy appended
		{"127.0.0.1:5000", []string{"6.6.6.6, 198.51.100.2, 10.1.2.3"}, false, "198.51.100.2"}, // past trusted hops
		{"127.0.0.1:5000", nil, false, "127.0.0.1"},
		{"192.0.2.9:5000", []string{"198.51.100.2"}, true, "198.51.100.2"},      // the gateway's certificate vouches
		{"[::1]:5000", []string{"garbage"}, false, "garbage"},                   // (bounded by the caller)
		{"127.0.0.1:5000", []string{"10.0.0.1", "10.0.0.2"}, false, "10.0.0.1"}, // every hop trusted: the leftmost
	} {
		trusted := lb
		if c.peer == "[::1]:5000" {
			trusted = append(trusted, netip.MustParsePrefix("::1/128"))
		}
		if got := server.ClientAddress(c.peer, c.forwarded, c.vouched, trusted); got != c.want {
			t.Errorf("ClientAddress(%s, %v, %v) = %s, want %s", c.peer, c.forwarded, c.vouched, got, c.want)
		}
	}
}
