package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeAPI answers every call with {} and records the DELETEs.
type fakeAPI struct {
	mu      sync.Mutex
	deletes []string
}

func (f *fakeAPI) start(t *testing.T) string {
	t.Helper()
	t.Setenv("PYLEE_CONFIG_DIR", t.TempDir()) // no saved context
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			f.mu.Lock()
			f.deletes = append(f.deletes, r.URL.Path)
			f.mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (f *fakeAPI) deleted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.deletes
	f.deletes = nil
	return out
}

func TestDeletesOfContainersAskFirst(t *testing.T) {
	for _, c := range []struct {
		args []string
		id   string // what to type
		path string // what is deleted
		gone string // what the success prints
	}{
		{[]string{"org", "delete", "acme"}, "acme", "/v1/orgs/acme", "deleted orgs/acme"},
		{[]string{"--org", "acme", "server", "delete", "github"}, "github", "/v1/orgs/acme/servers/github", "deleted orgs/acme/servers/github"},
		{[]string{"registry", "delete", "orgs/acme/registries/staging"}, "staging", "/v1/orgs/acme/registries/staging", "deleted orgs/acme/registries/staging"},
	} {
		t.Run(c.args[len(c.args)-2]+" "+c.id, func(t *testing.T) {
			api := &fakeAPI{}
			base := append([]string{"--api-url", api.start(t), "--token", "pyl_x"}, c.args...)
			run := func(stdin string, terminal bool, extra ...string) (string, string, int) {
				var out, errOut strings.Builder
				code := ExecuteStreams(context.Background(), append(append([]string{}, base...), extra...),
					Streams{In: strings.NewReader(stdin), InTerminal: terminal, Out: &out, ErrOut: &errOut})
				return out.String(), errOut.String(), code
			}

			// A script (no terminal) without --yes: refused, nothing sent,
			// and the message says what to do. Input it might pipe in does
			// not count as an answer.
			for _, stdin := range []string{"", c.id + "\n", "y\n"} {
				out, errOut, code := run(stdin, false)
				if code != 1 || out != "" || !strings.Contains(errOut, "--yes") || !strings.Contains(errOut, "not a terminal") {
					t.Fatalf("no terminal, no --yes: exit %d, out %q, err %q", code, out, errOut)
				}
				if d := api.deleted(); len(d) != 0 {
					t.Fatalf("deleted without confirmation: %v", d)
				}
			}
			// --yes and -y delete without asking.
			for _, yes := range []string{"--yes", "-y"} {
				out, errOut, code := run("", false, yes)
				if code != 0 || !strings.Contains(out, c.gone) || strings.Contains(errOut, "Type the") {
					t.Fatalf("%s: exit %d, out %q, err %q", yes, code, out, errOut)
				}
				if d := api.deleted(); len(d) != 1 || d[0] != c.path {
					t.Fatalf("%s deleted %v, want %s", yes, d, c.path)
				}
			}
			// At a terminal: the id typed deletes; anything else, or
			// nothing (Ctrl-D), does not.
			out, errOut, code := run(c.id+"\n", true)
			if code != 0 || !strings.Contains(errOut, "cannot be undone") || !strings.Contains(errOut, `Type the`) || !strings.Contains(out, c.gone) {
				t.Fatalf("confirmed: exit %d, out %q, err %q", code, out, errOut)
			}
			if d := api.deleted(); len(d) != 1 || d[0] != c.path {
				t.Fatalf("confirmed deletion deleted %v", d)
			}
			for _, answer := range []string{"y\n", "yes\n", "\n", "", strings.ToUpper(c.id) + "\n"} {
				out, errOut, code := run(answer, true)
				if code != 1 || out != "" || !strings.Contains(errOut, "was not deleted") {
					t.Fatalf("answer %q: exit %d, out %q, err %q", answer, code, out, errOut)
				}
				if d := api.deleted(); len(d) != 0 {
					t.Fatalf("answer %q deleted %v", answer, d)
				}
			}
		})
	}
}

// Error messages carry what the server says; they are escaped too.
func TestErrorsAreEscaped(t *testing.T) {
	t.Setenv("PYLEE_CONFIG_DIR", t.TempDir())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code": 5, "message": "organization \"\u001b]0;pwned\u0007\u202eacme\" not found"}`))
	}))
	defer srv.Close()
	var out, errOut strings.Builder
	code := ExecuteStreams(context.Background(), []string{"--api-url", srv.URL, "--token", "pyl_x", "org", "get", "acme"},
		Streams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	if code != 1 || !strings.Contains(errOut.String(), `NOT_FOUND: organization "\x1b]0;pwned\x07\u202eacme" not found`) {
		t.Fatalf("exit %d, err %q", code, errOut.String())
	}
	assertSafe(t, "stderr", errOut.String(), "\n")
}
