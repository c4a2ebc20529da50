package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the driver kit/db uses, to read the outboxes

	"github.com/pyleeai/pylee/cmd/pylee/internal/actions"
	"github.com/pyleeai/pylee/kit/outbox"
)

// fuzzWorkers send requests in parallel; the machine has few cores.
const fuzzWorkers = 4

// fuzzCorpus holds past failures, one request a file (README.txt there).
const fuzzCorpus = "testdata/apifuzz"

// TestAPIFuzz sends generated requests to a real `pylee up`: every operation
// of the merged OpenAPI document (gen/openapi/pylee.swagger.json) and the
// hand-written routes (official registry API, audit export, /healthz,
// /readyz, /metrics), as the installation admin, as an admin service account
// of each of two seeded organizations (fuzz-a, fuzz-b), and without a
// credential; valid requests and requests with one thing wrong (a path
// segment, a query value, the body, the method or a header).
//
// It fails on:
//   - a 5xx answer, or no answer at all;
//   - one organization's data reaching the other's identity or an
//     anonymous caller: the marker strings seeded into the organization's
//     resources, or a token, in an answer's body or headers (unless the
//     request itself sent it); a 2xx to a request naming the other
//     organization in its path, or in its body (except access checks, which
//     fail instead when they grant anything there); a 2xx to a service
//     account under another user (users/{not me}); a 2xx without a
//     credential under an organization. Nothing under orgs/{org} or
//     /registries/{org} is public, so every 2xx of these is a leak or a
//     cross-tenant write;
//   - the process not answering /healthz afterwards, or `pylee up` not
//     exiting 0 (startUp's cleanup checks that);
//   - an audit event still undelivered in an outbox 10s after the run.
//
// Requests in testdata/apifuzz are replayed first. PYLEE_APIFUZZ_SEED and
// PYLEE_APIFUZZ_N choose the run (defaults: a fixed seed, 10,000 requests;
// 1,000 with -short); PYLEE_APIFUZZ_RECORD=1 writes failing requests there.
func TestAPIFuzz(t *testing.T) {
	seed := fuzzEnv(t, "PYLEE_APIFUZZ_SEED", 20250601)
	n := int(fuzzEnv(t, "PYLEE_APIFUZZ_N", 10000))
	if testing.Short() && os.Getenv("PYLEE_APIFUZZ_N") == "" {
		n = 1000
	}
	ops, defs, err := loadAPIOps(filepath.Join("..", "..", "gen", "openapi", "pylee.swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	u := startUp(t)
	start := time.Now()
	transport := &http.Transport{MaxIdleConnsPerHost: fuzzWorkers, DisableCompression: true}
	defer transport.CloseIdleConnections() // goleak runs after the tests
	f := &fuzzRun{t: t, u: u, seed: seedFuzzOrgs(t, u, rng), record: os.Getenv("PYLEE_APIFUZZ_RECORD") == "1",
		client: &http.Client{Transport: transport, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		status: map[int]int{}, byFamily: map[string]map[string]int{}, byMutation: map[string]map[string]int{},
		ok: map[string]bool{}, failures: map[string]int{}}
	t.Logf("seed %d, %d requests, %d operations; seeded in %v", seed, n, len(ops), time.Since(start).Round(time.Millisecond))

	corpus, _ := filepath.Glob(filepath.Join(fuzzCorpus, "*.json"))
	for _, file := range corpus {
		raw, err := os.ReadFile(file)
		var r fuzzReq
		if err == nil {
			err = json.Unmarshal(raw, &r)
		}
		if err != nil {
			t.Fatalf("corpus %s: %v", file, err)
		}
		r.file = filepath.Base(file)
		f.run(r)
	}

	gen := &fuzzGen{rng: rng, ops: ops, defs: defs, seed: f.seed}
	reqs := make(chan fuzzReq, 64)
	go func() {
		defer close(reqs)
		for range n {
			reqs <- gen.next()
		}
	}()
	var wg sync.WaitGroup
	for range fuzzWorkers {
		wg.Go(func() {
			for r := range reqs {
				if !f.hopeless() {
					f.run(r)
				}
			}
		})
	}
	wg.Wait()
	sent := time.Since(start)

	// Still alive, and every audit event delivered.
	if a := f.send(fuzzReq{Method: "GET", Path: "/healthz"}); a.err != nil || a.status != 200 || string(a.body) != "ok\n" {
		t.Errorf("/healthz after the run: %d %q %v", a.status, a.body, a.err)
	}
	waitOutboxes(t, u.dataDir, 10*time.Second)
	checkActions(t, u, "fuzz-a", "fuzz-b", "-")
	f.report(ops, len(corpus), n, sent)
}

// checkActions fails for an event in the logs of orgs whose action is not
// in the catalog (docs/audit-actions.md): successes and refusals of every
// RPC carry the action its rule gives.
func checkActions(t *testing.T, u *upInstance, orgs ...string) {
	t.Helper()
	for _, org := range orgs {
		seen, token := map[string]int{}, ""
		for page := 0; page < 100; page++ {
			r := u.do(t, "GET", "/v1/orgs/"+org+"/events?page_size=1000&page_token="+url.QueryEscape(token), u.token, nil)
			if r.status != 200 {
				t.Fatalf("list the events of %s: %d %v", org, r.status, r.body)
			}
			for _, e := range asList(r.body["events"]) {
				seen[e.(map[string]any)["action"].(string)]++
			}
			if token, _ = r.body["nextPageToken"].(string); token == "" {
				break
			}
		}
		for action, n := range seen {
			if !actions.Known(action) {
				t.Errorf("%d events of %s carry %q, which is no action of the catalog", n, org, action)
			}
		}
		t.Logf("%s: %d distinct actions, all in the catalog", org, len(seen))
	}
}

// fuzzSeed is what the generator and the checks know of the seeded data.
type fuzzSeed struct {
	orgs       [2]string                      // the organizations of identities a and b
	spare      string                         // an organization without an identity, that may be deleted
	markers    map[string]string              // org -> marker in its resources' texts
	tokens     map[string]string              // identity (a, b, admin) -> token
	ids        map[string]map[string][]string // org -> collection -> ids
	disposable map[string]map[string][]string // org -> collection -> ids its own identity may delete
	expander   *strings.Replacer              // placeholders -> values
	abstracter *strings.Replacer              // values -> placeholders
}

// seedFuzzOrgs creates fuzz-a and fuzz-b, each with an admin service
// account and a little of everything, every text carrying its marker.
func seedFuzzOrgs(t *testing.T, u *upInstance, rng *rand.Rand) *fuzzSeed {
	s := &fuzzSeed{orgs: [2]string{"fuzz-a", "fuzz-b"}, spare: "fuzz-c", markers: map[string]string{}, tokens: map[string]string{"admin": u.token},
		ids: map[string]map[string][]string{}, disposable: map[string]map[string][]string{}}
	var pairs []string // placeholder, value
	for i, org := range s.orgs {
		m := fmt.Sprintf("SECRETMARKER-%c-%016x", 'A'+i, rng.Uint64())
		s.markers[org] = m
		base := "/v1/orgs/" + org
		post := func(method, path string, body map[string]any) map[string]any {
			b, _ := json.Marshal(body)
			return u.expect(t, method, path, u.token, string(b), 200).body
		}
		text := map[string]any{"displayName": m, "description": m}
		post("POST", "/v1/orgs?organization_id="+org, text)
		s.tokens[s.identityFor(org)] = u.saToken(t, org, "fuzzer", "roles/admin", "orgs/"+org)
		post("POST", base+"/serviceAccounts?service_account_id=keeper", text)
		for _, sv := range []string{"s1", "s2"} {
			post("POST", base+"/servers?server_id="+sv, map[string]any{"serverName": "com." + org + "/" + sv, "title": m, "description": m})
			doc, _ := json.Marshal(map[string]any{"name": "com." + org + "/" + sv, "description": m, "version": "1.0.0"})
			post("POST", base+"/servers/"+sv+"/versions:import", map[string]any{"serverJson": string(doc), "releaseNotes": m})
		}
		for _, r := range []string{"r1", "r2"} {
			post("POST", base+"/registries?registry_id="+r, map[string]any{"description": m})
		}
		post("POST", base+"/registries?registry_id=rappr", map[string]any{"description": m, "approvalRequired": true, "minApprovals": 1})
		for _, e := range []string{"r1/entries/s1", "r1/entries/s2", "r2/entries/s1"} {
			post("PUT", base+"/registries/"+e, map[string]any{"version": "1.0.0", "reason": m})
		}
		approval, _ := post("PUT", base+"/registries/rappr/entries/s1", map[string]any{"version": "1.0.0", "reason": m})["approval"].(map[string]any)
		for _, tm := range []string{"t1", "t2"} {
			post("POST", base+"/teams?team_id="+tm, map[string]any{"displayName": m})
		}
		post("POST", base+"/teams/t1:addMember", map[string]any{"member": "orgs/" + org + "/serviceAccounts/keeper"})
		for _, r := range []string{"role1", "role2"} {
			post("POST", base+"/roles?role_id="+r, map[string]any{"title": m, "description": m, "permissions": []string{"orgs.get"}})
		}
		post("POST", base+"/serviceAccounts?service_account_id=temp", text)
		// Resources with server-made ids, by collection.
		made := map[string]any{
			"invitations": post("POST", base+"/invitations", map[string]any{"email": "inv@" + org + ".test", "role": "roles/user"})["name"],
			"approvals":   approval["name"],
			"events":      u.waitEvents(t, org, 1)[0]["name"],
			"tokens":      post("POST", base+"/serviceAccounts/temp/tokens", map[string]any{"displayName": m})["name"],
			"bindings": post("POST", base+"/registries/r2/bindings",
				map[string]any{"role": "roles/user", "principal": "orgs/" + org + "/serviceAccounts/temp"})["name"],
		}
		s.ids[org] = map[string][]string{"servers": {"s1", "s2"}, "entries": {"s1", "s2"}, "registries": {"r1", "r2", "rappr"},
			"teams": {"t1", "t2"}, "roles": {"role1", "role2"}, "serviceAccounts": {"fuzzer", "keeper", "temp"},
			"members": {"admin", "nobody@fuzz.test"}}
		s.disposable[org] = map[string][]string{"servers": {"s2"}, "entries": {"s2"}, "registries": {"r2"}, "teams": {"t2"},
			"roles": {"role2"}, "members": {"nobody@fuzz.test"}, "serviceAccounts": {"temp"}}
		pairs = append(pairs, "{marker:"+org+"}", m)
		for _, coll := range fuzzKeys(made) {
			name, _ := made[coll].(string)
			id := name[strings.LastIndex(name, "/")+1:]
			if id == "" {
				t.Fatalf("seed %s: no %s id in %q", org, coll, name)
			}
			s.ids[org][coll] = []string{id}
			if coll != "events" {
				s.disposable[org][coll] = []string{id}
			}
			pairs = append(pairs, "{id:"+org+":"+coll+"}", id)
		}
	}
	// An organization the admin may delete.
	u.expect(t, "POST", "/v1/orgs?organization_id="+s.spare, u.token, `{}`, 200)
	for _, id := range []string{"a", "b", "admin"} {
		pairs = append(pairs, "{token:"+id+"}", s.tokens[id])
	}
	s.expander = strings.NewReplacer(pairs...)
	inverse := slices.Clone(pairs)
	for i := 0; i < len(inverse); i += 2 {
		inverse[i], inverse[i+1] = inverse[i+1], inverse[i]
	}
	s.abstracter = strings.NewReplacer(inverse...)
	return s
}

func (s *fuzzSeed) expand(v string) string   { return s.expander.Replace(v) }
func (s *fuzzSeed) abstract(v string) string { return s.abstracter.Replace(v) }

func (s *fuzzSeed) isSeeded(org string) bool { return org == s.orgs[0] || org == s.orgs[1] }

// identityOrg is the organization of an identity's service account.
func (s *fuzzSeed) identityOrg(identity string) string {
	switch identity {
	case "a":
		return s.orgs[0]
	case "b":
		return s.orgs[1]
	}
	return ""
}

func (s *fuzzSeed) identityFor(org string) string {
	if org == s.orgs[0] {
		return "a"
	}
	return "b"
}

// markerFor is the marker a request's texts carry: its identity's
// organization's, or for the admin the organization written to, so every
// text in an organization carries that organization's marker.
func (s *fuzzSeed) markerFor(identity, org string) string {
	if o := s.identityOrg(identity); o != "" {
		return s.markers[o]
	}
	if identity == "admin" && s.isSeeded(org) {
		return s.markers[org]
	}
	return "FUZZ-NEUTRAL"
}

// id picks an id of coll in org: a seeded one mostly, else a fresh one.
func (s *fuzzSeed) id(g *fuzzGen, coll, org string, disposable bool) string {
	switch coll {
	case "orgs":
		return org
	case "serverNames":
		return "com." + org + "/" + g.pick("s1", "s2")
	case "versions":
		return g.pick("1.0.0", "1.0.1", "latest")
	case "tools":
		return g.pick("tool1", "read")
	case "users":
		return g.pick("me", "me", "admin", "nobody")
	}
	if disposable {
		if ids := s.disposable[org][coll]; len(ids) > 0 && g.rng.IntN(4) != 0 {
			return g.pick(ids...)
		}
		return g.fresh("gone")
	}
	if ids := s.ids[org][coll]; len(ids) > 0 && g.rng.IntN(10) != 0 {
		return g.pick(ids...)
	}
	return g.fresh("x")
}

// fuzzSecret is something an identity must never be shown.
type fuzzSecret struct{ what, value string }

// hiddenFrom lists what identity must not see: the other organization's
// marker and every other token (the admin sees everything).
func (s *fuzzSeed) hiddenFrom(identity string) []fuzzSecret {
	var out []fuzzSecret
	for _, org := range s.orgs {
		if s.identityOrg(identity) != org && identity != "admin" {
			out = append(out, fuzzSecret{org + "'s marker", s.markers[org]})
		}
	}
	for _, id := range []string{"a", "b", "admin"} {
		if id != identity && identity != "admin" {
			out = append(out, fuzzSecret{"the token of " + id, s.tokens[id]})
		}
	}
	return out
}

// fuzzRun sends requests and judges the answers; safe for the workers.
type fuzzRun struct {
	t      *testing.T
	u      *upInstance
	seed   *fuzzSeed
	client *http.Client
	record bool

	mu         sync.Mutex
	status     map[int]int               // 0: no answer
	byFamily   map[string]map[string]int // family -> status class -> n
	byMutation map[string]map[string]int // mutation -> status class -> n
	ok         map[string]bool           // operations answered 2xx at least once
	failures   map[string]int            // kind|op|status|corpus file -> n
	unanswered int
}

// hopeless reports a server that stopped answering: the rest of the run
// would only wait for timeouts.
func (f *fuzzRun) hopeless() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unanswered > 50
}

type fuzzAnswer struct {
	status   int
	header   http.Header
	body     []byte
	err      error
	timedOut bool // a stream cut by our deadline, as intended
}

func (f *fuzzRun) run(r fuzzReq) {
	a := f.send(r)
	class := "no answer"
	switch {
	case a.status != 0:
		class = strconv.Itoa(a.status/100) + "xx"
	case a.timedOut:
		class = "stream open"
	}
	f.mu.Lock()
	if a.err != nil {
		f.unanswered++
	}
	if !a.timedOut {
		f.status[a.status]++ // 0: no answer; open streams are counted by family
	}
	fuzzCount(f.byFamily, r.Family, class)
	fuzzCount(f.byMutation, r.Mutation, class)
	if a.status/100 == 2 {
		f.ok[r.Op] = true
	}
	f.mu.Unlock()
	for _, p := range f.judge(r, a) {
		f.fail(r, a, p)
	}
}

func (f *fuzzRun) send(r fuzzReq) fuzzAnswer {
	body := r.BodyB64
	if body == nil {
		body = []byte(r.Body)
	}
	body = []byte(f.seed.expand(string(body)))
	timeout := 20 * time.Second
	if r.Stream {
		timeout = 500 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.Method, f.u.rest+"/", bytes.NewReader(body))
	if err != nil {
		return fuzzAnswer{err: err}
	}
	// Sent verbatim, so malformed escapes ("%", "%zz") reach the server.
	req.URL.Opaque, req.URL.RawQuery, _ = strings.Cut(f.seed.expand(r.Path), "?")
	for k, vs := range r.Header {
		for _, v := range vs {
			if b64, ok := strings.CutPrefix(v, "b64:"); ok { // a value that is not UTF-8, from the corpus
				raw, _ := base64.StdEncoding.DecodeString(b64)
				v = string(raw)
			}
			req.Header.Add(k, f.seed.expand(v))
		}
	}
	resp, err := f.client.Do(req)
	if err != nil && r.Stream && ctx.Err() != nil {
		return fuzzAnswer{timedOut: true} // a watch with nothing to send yet
	}
	if err != nil {
		return fuzzAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	a := fuzzAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	if err != nil {
		a.timedOut = r.Stream && ctx.Err() != nil
		if !a.timedOut {
			a.err = err
		}
	}
	return a
}

// fuzzProblem is one reason a request fails the test; kind groups repeats.
type fuzzProblem struct{ kind, detail string }

func (f *fuzzRun) judge(r fuzzReq, a fuzzAnswer) []fuzzProblem {
	var out []fuzzProblem
	if a.err != nil {
		out = append(out, fuzzProblem{"no answer", a.err.Error()})
	}
	if a.status >= 500 {
		out = append(out, fuzzProblem{"5xx", fmt.Sprintf("status %d", a.status)})
	}
	sent := f.seed.expand(r.Path + "\n" + r.Body + string(r.BodyB64) + fmt.Sprint(r.Header))
	for _, s := range f.seed.hiddenFrom(r.Identity) {
		if strings.Contains(sent, s.value) {
			continue // an echo of the request is no leak
		}
		if i := bytes.Index(a.body, []byte(s.value)); i >= 0 {
			out = append(out, fuzzProblem{"leak", fmt.Sprintf("the answer to %s shows %s: …%s…", r.Identity, s.what,
				a.body[max(0, i-200):min(len(a.body), i+len(s.value)+50)])})
		} else if strings.Contains(fmt.Sprint(a.header), s.value) {
			out = append(out, fuzzProblem{"leak", fmt.Sprintf("the answer to %s shows %s in a header", r.Identity, s.what)})
		}
	}
	// A watch the server keeps open without a word counts as accepted.
	if a.status/100 != 2 && !a.timedOut {
		return out
	}
	pathOnly, _, _ := strings.Cut(f.seed.expand(r.Path), "?")
	path, err := url.PathUnescape(pathOnly)
	if err != nil {
		path = pathOnly
	}
	// The body counts where the route reads one, without resource names:
	// the path names the resource and a body's name is ignored.
	body := ""
	if slices.Contains([]string{"POST", "PUT", "PATCH"}, r.Method) {
		body = fuzzNameField.ReplaceAllString(f.seed.expand(r.Body), "")
	}
	own := f.seed.identityOrg(r.Identity)
	if r.Identity == "admin" {
		return out
	}
	for _, other := range []string{f.seed.orgs[0], f.seed.orgs[1], f.seed.spare} {
		switch {
		case other == own:
		case own == "":
			if fuzzNamesOrg(path, other) {
				out = append(out, fuzzProblem{"anonymous 2xx", "a 2xx without a credential under " + other})
			}
		case fuzzNamesOrg(path, other):
			out = append(out, fuzzProblem{"cross-tenant 2xx", fmt.Sprintf("a 2xx to %s's identity on a path naming %s", own, other)})
		case slices.Contains([]string{"AccessService_Check", "AccessService_BatchCheck", "AccessService_ListAllowed"}, r.Op):
			if fuzzAccessGrants(r.Op, body, a.body, other) {
				out = append(out, fuzzProblem{"cross-tenant grant", fmt.Sprintf("an access check grants %s's identity something in %s", own, other)})
			}
		case fuzzNamesOrg(body, other):
			out = append(out, fuzzProblem{"cross-tenant 2xx", fmt.Sprintf("a 2xx to %s's identity for a body naming %s", own, other)})
		}
	}
	if m := fuzzUsersPath.FindStringSubmatch(path); own != "" && m != nil && m[1] != "me" {
		out = append(out, fuzzProblem{"other user 2xx", "a 2xx to a service account under users/" + m[1]})
	}
	return out
}

var (
	fuzzUsersPath = regexp.MustCompile(`/users/([^/:?]+)`)
	fuzzNameField = regexp.MustCompile(`"name":"[^"]*"`)
)

// fuzzNamesOrg reports text naming org as a resource: orgs/{org} or the
// official API's /registries/{org}.
func fuzzNamesOrg(text, org string) bool {
	for _, prefix := range []string{"orgs/" + org, "/registries/" + org} {
		for rest := text; ; {
			i := strings.Index(rest, prefix)
			if i < 0 {
				break
			}
			rest = rest[i+len(prefix):]
			if rest == "" || strings.ContainsRune("/:?\"&,; ", rune(rest[0])) {
				return true
			}
		}
	}
	return false
}

// fuzzAccessGrants reports an access check answering allowed (or member) for
// a resource of other. A caller may only ask about itself.
func fuzzAccessGrants(op, reqBody string, answer []byte, other string) bool {
	type check struct{ Resource string }
	type result struct{ Allowed, Member bool }
	var q struct {
		check
		Checks    []check
		Resources []string
	}
	var a struct {
		result
		Results   []result
		Resources []string
	}
	_ = json.Unmarshal([]byte(reqBody), &q)
	_ = json.Unmarshal(answer, &a)
	switch op {
	case "AccessService_Check":
		return fuzzNamesOrg(q.Resource, other) && (a.Allowed || a.Member)
	case "AccessService_BatchCheck":
		for i, c := range q.Checks {
			if i < len(a.Results) && fuzzNamesOrg(c.Resource, other) && (a.Results[i].Allowed || a.Results[i].Member) {
				return true
			}
		}
	default:
		return slices.ContainsFunc(a.Resources, func(r string) bool { return fuzzNamesOrg(r, other) })
	}
	return false
}

// fail reports a problem with a reproducible description, once per kind,
// operation and status, and counts the repeats.
func (f *fuzzRun) fail(r fuzzReq, a fuzzAnswer, p fuzzProblem) {
	key := fmt.Sprintf("%s|%s|%d|%s", p.kind, r.Op, a.status, r.file) // every corpus file on its own
	f.mu.Lock()
	f.failures[key]++
	first := f.failures[key] == 1
	f.mu.Unlock()
	if !first {
		return
	}
	f.t.Errorf("%s: %s\n%s", p.kind, p.detail, f.describe(r, a))
	if f.record && r.file == "" {
		r.Path, r.Body = f.seed.abstract(r.Path), f.seed.abstract(r.Body)
		if r.BodyB64 != nil {
			r.BodyB64 = []byte(f.seed.abstract(string(r.BodyB64)))
		}
		for k, vs := range r.Header {
			for i := range vs {
				if vs[i] = f.seed.abstract(vs[i]); !utf8.ValidString(vs[i]) {
					vs[i] = "b64:" + base64.StdEncoding.EncodeToString([]byte(vs[i])) // JSON would replace the bytes
				}
			}
			r.Header[k] = vs
		}
		raw, _ := json.MarshalIndent(r, "", "  ")
		sum := sha256.Sum256(raw)
		name := fmt.Sprintf("%s-%s-%x.json", r.Op, strings.ReplaceAll(p.kind, " ", "-"), sum[:6])
		if err := os.WriteFile(filepath.Join(fuzzCorpus, name), append(raw, '\n'), 0o644); err != nil {
			f.t.Errorf("record: %v", err)
		}
	}
}

// describe is a request and its answer, cut to a readable size, with
// placeholders instead of tokens.
func (f *fuzzRun) describe(r fuzzReq, a fuzzAnswer) string {
	var b strings.Builder
	if r.file != "" {
		fmt.Fprintf(&b, "  corpus file %s\n", filepath.Join(fuzzCorpus, r.file))
	}
	fmt.Fprintf(&b, "  op %s (family %s, %s mutation, identity %s)\n  %s %s\n", r.Op, r.Family, r.Mutation, r.Identity, r.Method, fuzzClip(f.seed.abstract(r.Path)))
	for _, k := range fuzzKeys(r.Header) {
		for _, v := range r.Header[k] {
			fmt.Fprintf(&b, "  %s: %s\n", k, fuzzClip(f.seed.abstract(v)))
		}
	}
	body := r.Body
	if r.BodyB64 != nil {
		body = string(r.BodyB64)
	}
	fmt.Fprintf(&b, "  body (%d bytes): %s\n  answer: %d %s", len(body), fuzzClip(body), a.status, fuzzClip(string(a.body)))
	if a.err != nil {
		fmt.Fprintf(&b, " (error: %v)", a.err)
	}
	return b.String()
}

// fuzzClip quotes s, at most 300 bytes of it.
func fuzzClip(s string) string {
	if len(s) <= 300 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:300], len(s))
}

func (f *fuzzRun) report(ops []apiOp, corpus, n int, took time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var codes []string
	for _, c := range fuzzInts(f.status) {
		codes = append(codes, fmt.Sprintf("%d: %d", c, f.status[c]))
	}
	f.t.Logf("%d corpus + %d generated requests in %v (%.0f/s); status %s", corpus, n, took.Round(time.Millisecond),
		float64(corpus+n)/took.Seconds(), strings.Join(codes, ", "))
	for _, group := range []struct {
		name string
		m    map[string]map[string]int
	}{{"family", f.byFamily}, {"mutation", f.byMutation}} {
		for _, k := range fuzzKeys(group.m) {
			var parts []string
			for _, c := range fuzzKeys(group.m[k]) {
				parts = append(parts, fmt.Sprintf("%s %d", c, group.m[k][c]))
			}
			f.t.Logf("  %s %-16s %s", group.name, k, strings.Join(parts, ", "))
		}
	}
	var never []string
	for _, op := range ops {
		if !f.ok[op.id] && !slices.Contains(never, op.id) {
			never = append(never, op.id)
		}
	}
	f.t.Logf("  never answered 2xx (refused to everyone, or a gap of the generator): %s", strings.Join(never, " "))
	for _, k := range fuzzKeys(f.failures) {
		f.t.Logf("  failure %s: %d requests", k, f.failures[k])
	}
}

func fuzzCount(m map[string]map[string]int, key, class string) {
	if m[key] == nil {
		m[key] = map[string]int{}
	}
	m[key][class]++
}

func fuzzInts(m map[int]int) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// waitOutboxes waits until no SQLite outbox in dataDir holds an undelivered
// audit event (kit/outbox: delivered_time IS NULL), and fails after limit.
func waitOutboxes(t *testing.T, dataDir string, limit time.Duration) {
	files, _ := filepath.Glob(filepath.Join(dataDir, "*.db"))
	deadline := time.Now().Add(limit)
	found := 0
	for _, file := range files {
		db, err := sql.Open("sqlite", "file:"+file+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		var tables int
		if err := db.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", outbox.Table).Scan(&tables); err != nil || tables == 0 {
			db.Close()
			continue
		}
		found++
		var total int
		_ = db.QueryRow("SELECT COUNT(*) FROM " + outbox.Table).Scan(&total)
		for {
			var pending int
			err := db.QueryRow("SELECT COUNT(*) FROM " + outbox.Table + " WHERE delivered_time IS NULL").Scan(&pending)
			if err == nil && pending == 0 {
				t.Logf("%s: %d audit events in the outbox, all delivered", filepath.Base(file), total)
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: %d audit events still undelivered %v after the run (err %v)", filepath.Base(file), pending, limit, err)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		db.Close()
	}
	if found < 2 {
		t.Errorf("found %d outboxes in %s (%v), want orgs.db and registry.db at least", found, dataDir, files)
	}
}

func fuzzEnv(t *testing.T, name string, def uint64) uint64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}
