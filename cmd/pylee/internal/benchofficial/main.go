// Command benchofficial measures, with wrk, the official MCP Registry read
// API and the REST entries list of a real `pylee up` holding a registry of
// realistic servers, on SQLite and PostgreSQL, as the bootstrap admin and as a
// service account that sees one server in ten. `make bench-official` runs it.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	orgsv1 "github.com/pyleeai/pylee/gen/go/pylee/orgs/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
)

const (
	org       = "bench"
	registry  = "production"
	loaders   = 8  // goroutines importing servers
	seeEveryN = 10 // the service account is bound to every N-th server
)

type options struct {
	pylee    string
	backends []string
	servers  int
	duration time.Duration
	warmup   time.Duration
	postgres string
	conns    int
	profile  string // directory for CPU profiles of the measured runs, or ""
	only     *regexp.Regexp
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-official:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var o options
	var backends string
	quick := flag.Bool("quick", false, "a trial run: 50 servers, 3s runs")
	flag.StringVar(&o.pylee, "pylee", "", "pylee binary to run (default: go build ./cmd/pylee into a temporary directory)")
	flag.StringVar(&backends, "backends", "sqlite,postgres", "comma-separated backends: sqlite, postgres")
	flag.IntVar(&o.servers, "servers", 500, "servers in the registry")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each measured wrk run")
	flag.IntVar(&o.conns, "connections", 32, "wrk's open connections (-c)")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "length of the wrk run before each measured one")
	only := flag.String("only", "", "measure only the rows whose \"caller endpoint\" matches this regular expression")
	flag.StringVar(&o.profile, "profile", "", "write a CPU profile of pylee during each measured run into this directory (go tool pprof reads them)")
	flag.StringVar(&o.postgres, "postgres", envOr("PYLEE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
		"PostgreSQL server (admin URL) in which a scratch database is created and dropped")
	flag.Parse()
	if *quick {
		o.servers, o.duration = 50, 3*time.Second
	}
	o.backends = strings.Split(backends, ",")
	var err error
	if o.only, err = regexp.Compile(*only); err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("wrk not found: install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk` (macOS)")
	}

	var c cleanups
	defer c.run()
	if o.pylee == "" {
		dir, err := os.MkdirTemp("", "pylee-bench-bin-")
		if err != nil {
			return err
		}
		c.add(func() { os.RemoveAll(dir) })
		o.pylee = filepath.Join(dir, "pylee")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.pylee, "./cmd/pylee")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/pylee (run from the repository root): %w", err)
		}
	}

	fmt.Printf("bench-official: %d servers, wrk -t2 -c%d -d%s (after a %s warm-up)\n", o.servers, o.conns, o.duration, o.warmup)
	fmt.Printf("machine: %s/%s, %d CPUs; commit: %s\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), commit())
	fmt.Printf(rowFormat, "backend", "caller", "endpoint", "req/s", "p50", "p99", "bytes/resp", "errors")
	for _, b := range o.backends {
		if err := benchBackend(ctx, o, strings.TrimSpace(b)); err != nil {
			return fmt.Errorf("%s: %w", b, err)
		}
	}
	return nil
}

// rowFormat prints one row of the table; fixed widths, so that rows can be
// printed as they are measured.
const rowFormat = "%-9s %-16s %-16s %8v %10v %10v %11v %7v\n"

// benchBackend starts pylee on one backend, loads it, and prints its rows.
func benchBackend(ctx context.Context, o options, backend string) error {
	var c cleanups
	defer c.run()
	dataDir, err := os.MkdirTemp("", "pylee-bench-data-")
	if err != nil {
		return err
	}
	c.add(func() { os.RemoveAll(dataDir) })
	args := []string{"up", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--log-level", "warn"}
	switch backend {
	case "sqlite":
	case "postgres":
		dbURL, drop, err := createDatabase(ctx, o.postgres, fmt.Sprintf("pylee_bench_%d", os.Getpid()))
		if err != nil {
			return err
		}
		c.add(drop)
		args = append(args, "--database-url", dbURL)
	default:
		return fmt.Errorf("unknown backend %q (sqlite or postgres)", backend)
	}
	var env []string
	pprofAddr := ""
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			return err
		}
		if pprofAddr, err = freeLoopback(); err != nil {
			return err
		}
		env = append(env, "PYLEE_PPROF_ADDR="+pprofAddr)
	}
	p, err := startPylee(ctx, o.pylee, dataDir, args, env)
	if err != nil {
		return err
	}
	c.add(p.stop)

	start := time.Now()
	saToken, visible, err := load(ctx, p, o.servers)
	if err != nil {
		return fmt.Errorf("load: %w (pylee's log: %s)", err, p.logFile)
	}
	fmt.Fprintf(os.Stderr, "%s: loaded %d servers in %s\n", backend, o.servers, time.Since(start).Round(time.Millisecond))

	latest := "/registries/" + org + "/" + registry + "/v0.1/servers/" + url.PathEscape(visible) + "/versions/latest"
	endpoints := []struct{ name, path string }{
		{"official list", "/registries/" + org + "/" + registry + "/v0.1/servers?limit=100"},
		{"official latest", latest},
		{"REST list", "/v1/orgs/" + org + "/registries/" + registry + "/entries?page_size=100&view=ENTRY_VIEW_FULL"},
	}
	callers := []struct{ name, token string }{{"admin", p.token}, {"service account", saToken}}
	for _, cl := range callers {
		for _, e := range endpoints {
			if !o.only.MatchString(cl.name + " " + e.name) {
				continue
			}
			target := p.http + e.path
			size, err := getOnce(ctx, target, cl.token)
			if err != nil {
				return fmt.Errorf("%s, %s: %w", cl.name, e.name, err)
			}
			if _, err := runWrk(ctx, target, cl.token, o.conns, o.warmup); err != nil {
				return err
			}
			stopProfile := profile(ctx, pprofAddr, o.duration, filepath.Join(o.profile, profileName(backend, cl.name, e.name)))
			r, err := runWrk(ctx, target, cl.token, o.conns, o.duration)
			stopProfile()
			if err != nil {
				return err
			}
			report(backend, cl.name, e.name, r, size, p.logFile)
		}
		if !o.only.MatchString(cl.name + " gRPC ListEntries") {
			continue
		}
		// gRPC ListEntries, the same page as the REST list.
		req := &registryv1.ListEntriesRequest{Parent: "orgs/" + org + "/registries/" + registry, PageSize: 100,
			View: registryv1.EntryView_ENTRY_VIEW_FULL}
		if _, err := runGRPC(ctx, p.grpc, cl.token, req, o.conns, o.warmup); err != nil {
			return fmt.Errorf("%s, gRPC ListEntries: %w", cl.name, err)
		}
		stopProfile := profile(ctx, pprofAddr, o.duration, filepath.Join(o.profile, profileName(backend, cl.name, "grpc list")))
		r, err := runGRPC(ctx, p.grpc, cl.token, req, o.conns, o.duration)
		stopProfile()
		if err != nil {
			return fmt.Errorf("%s, gRPC ListEntries: %w", cl.name, err)
		}
		report(backend, cl.name, "gRPC ListEntries", r, r.size, p.logFile)
	}
	return nil
}

func report(backend, caller, endpoint string, r wrkResult, size int, logFile string) {
	fmt.Printf(rowFormat, backend, caller, endpoint, fmt.Sprintf("%.0f", r.rps), ms(r.p50), ms(r.p99), size, r.errors)
	if r.errors > 0 {
		fmt.Fprintf(os.Stderr, "warning: %s, %s, %s: %d failed requests (%s); the end of pylee's log:\n%s\n",
			backend, caller, endpoint, r.errors, strings.TrimSuffix(r.problems, "; "), tail(logFile, 10))
	}
}

// runGRPC calls ListEntries as wrk calls an HTTP endpoint: conns callers,
// each on its own connection, each sending its next request when the last
// is answered, for d. size is the bytes of one reply's message.
func runGRPC(ctx context.Context, addr, token string, req *registryv1.ListEntriesRequest, conns int, d time.Duration) (wrkResult, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	clients := make([]*grpc.ClientConn, conns)
	for i := range clients {
		// Replies are counted, not decoded, as wrk counts HTTP bodies: the
		// figures are the server's, not this client's decoder's.
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.ForceCodecV2(rawCodec{})))
		if err != nil {
			return wrkResult{}, err
		}
		defer conn.Close()
		clients[i] = conn
		// Decoded once, so a wrong answer fails here; connected before the clock starts.
		resp, err := registryv1.NewRegistryServiceClient(conn).ListEntries(ctx, req, grpc.ForceCodecV2(protoCodec{}))
		if err != nil {
			return wrkResult{}, err
		}
		if len(resp.GetEntries()) != int(req.GetPageSize()) && resp.GetNextPageToken() != "" {
			return wrkResult{}, fmt.Errorf("ListEntries gave %d entries and a next page, want %d", len(resp.GetEntries()), req.GetPageSize())
		}
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		r         wrkResult
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			failed, size := 0, 0
			for time.Now().Before(deadline) {
				t := time.Now()
				var reply rawReply
				err := c.Invoke(ctx, registryv1.RegistryService_ListEntries_FullMethodName, req, &reply)
				if err != nil {
					failed++
					continue
				}
				mine = append(mine, time.Since(t))
				size = reply.size
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			r.errors += failed
			r.size = max(r.size, size)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(latencies) == 0 {
		return r, errors.New("no call succeeded")
	}
	slices.Sort(latencies)
	r.rps = float64(len(latencies)) / elapsed.Seconds()
	r.p50, r.p99 = latencies[len(latencies)/2], latencies[len(latencies)*99/100]
	if r.errors > 0 {
		r.problems = fmt.Sprintf("%d failed calls", r.errors)
	}
	return r, nil
}

// rawCodec sends requests as protobuf and keeps replies as the bytes received.
type rawCodec struct{}

type rawReply struct{ size int }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	v.(*rawReply).size = data.Len()
	return nil
}

func (rawCodec) Name() string { return "proto" }

// protoCodec is protobuf both ways.
type protoCodec struct{}

func (protoCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (protoCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (protoCodec) Name() string { return "proto" }

// profile takes a CPU profile of pylee for d into file, from now; the
// function it returns waits for it. Nothing when addr is "".
func profile(ctx context.Context, addr string, d time.Duration, file string) func() {
	if addr == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		secs := max(1, int(d/time.Second)-1)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs))
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "profile:", err)
		}
	}()
	return func() {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

func profileName(parts ...string) string {
	return strings.ReplaceAll(strings.Join(parts, "-"), " ", "_") + ".pprof"
}

// freeLoopback returns a loopback address no listener holds now.
func freeLoopback() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// pylee is a running `pylee up`.
type pylee struct {
	cmd     *exec.Cmd
	done    chan error
	http    string // http://host:port
	grpc    string
	token   string
	logFile string
}

var (
	restRe = regexp.MustCompile(`REST API:\s+(http://\S+)/v1`)
	grpcRe = regexp.MustCompile(`gRPC:\s+(\S+)`)
)

// startPylee runs `pylee up`, reads its addresses from the banner and the
// bootstrap admin token from the data directory, and waits for /readyz.
func startPylee(ctx context.Context, bin, dataDir string, args, env []string) (*pylee, error) {
	p := &pylee{cmd: exec.Command(bin, args...), done: make(chan error, 1), logFile: filepath.Join(dataDir, "pylee.log")}
	p.cmd.Env = append(os.Environ(), env...)
	logs, err := os.Create(p.logFile)
	if err != nil {
		return nil, err
	}
	p.cmd.Stderr = logs
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	addrs := make(chan [2]string, 1)
	go func() {
		var rest string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := restRe.FindStringSubmatch(sc.Text()); m != nil {
				rest = m[1]
			} else if m := grpcRe.FindStringSubmatch(sc.Text()); m != nil && rest != "" {
				addrs <- [2]string{rest, m[1]}
			}
		}
		p.done <- p.cmd.Wait() // after stdout is drained, as Wait requires
		logs.Close()
	}()
	fail := func(err error) (*pylee, error) {
		p.stop()
		tail, _ := os.ReadFile(p.logFile)
		return nil, fmt.Errorf("pylee up: %w\n%s", err, tail)
	}
	select {
	case a := <-addrs:
		p.http, p.grpc = a[0], a[1]
	case err := <-p.done:
		p.done <- err
		return fail(fmt.Errorf("exited before starting: %v", err))
	case <-time.After(60 * time.Second):
		return fail(errors.New("no banner within 60s"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		return fail(err)
	}
	p.token = strings.TrimSpace(string(tok))
	probe := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := probe.Get(p.http + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return fail(errors.New("not ready within 30s"))
		}
	}
}

// stop sends SIGTERM and waits for the process, killing it after 30s.
func (p *pylee) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			fmt.Fprintf(os.Stderr, "pylee up exited: %v\n", err)
		}
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "pylee up did not stop within 30s; killing it")
		_ = p.cmd.Process.Kill()
		p.done <- <-p.done
	}
}

// load creates the organization, the registry and n pinned servers, and a
// service account bound as roles/user (which grants entries.get) to every
// tenth server. It returns the account's token and the name of a server
// both callers see.
func load(ctx context.Context, p *pylee, n int) (saToken, visible string, err error) {
	conn, err := grpc.NewClient(p.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+p.token)
	reg := registryv1.NewRegistryServiceClient(conn)
	access := orgsv1.NewAccessServiceClient(conn)
	if _, err := orgsv1.NewOrgsServiceClient(conn).CreateOrganization(ctx, &orgsv1.CreateOrganizationRequest{
		OrganizationId: org, Organization: &orgsv1.Organization{DisplayName: "Bench"}}); err != nil {
		return "", "", fmt.Errorf("create organization: %w", err)
	}
	if _, err := reg.CreateRegistry(ctx, &registryv1.CreateRegistryRequest{Parent: "orgs/" + org, RegistryId: registry,
		// The generated packages do not exist: with deployments on, the
		// deploy service would try to run each of them, in the background,
		// through every measured run. The read path is what is measured.
		Registry: &registryv1.Registry{Description: "What production agents use", DeploymentsEnabled: proto.Bool(false)}}); err != nil {
		return "", "", fmt.Errorf("create registry: %w", err)
	}
	const sa = "bench-reader"
	principal := "orgs/" + org + "/serviceAccounts/" + sa
	if _, err := access.CreateServiceAccount(ctx, &orgsv1.CreateServiceAccountRequest{Parent: "orgs/" + org, ServiceAccountId: sa,
		ServiceAccount: &orgsv1.ServiceAccount{DisplayName: "Bench reader"}}); err != nil {
		return "", "", fmt.Errorf("create service account: %w", err)
	}

	var wg sync.WaitGroup
	errc := make(chan error, loaders)
	for w := range loaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += loaders {
				if err := loadServer(ctx, reg, access, i, principal); err != nil {
					errc <- fmt.Errorf("server %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return "", "", err
	}

	tok, err := access.CreateToken(ctx, &orgsv1.CreateTokenRequest{Parent: principal, Token: &orgsv1.Token{DisplayName: "bench"}})
	if err != nil {
		return "", "", fmt.Errorf("create token: %w", err)
	}
	// A server in the middle of the list that the service account sees.
	_, name := serverID(n / 2 / seeEveryN * seeEveryN)
	return tok.GetSecret(), name, nil
}

// loadServer creates server i, imports its server.json, pins it and, for
// every tenth, binds the service account to it.
func loadServer(ctx context.Context, reg registryv1.RegistryServiceClient, access orgsv1.AccessServiceClient, i int, principal string) error {
	id, name := serverID(i)
	doc, version := serverJSON(i)
	parent := "orgs/" + org + "/servers/" + id
	if _, err := reg.CreateServer(ctx, &registryv1.CreateServerRequest{Parent: "orgs/" + org, ServerId: id,
		Server: &registryv1.Server{ServerName: name}}); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	if _, err := reg.ImportServerJson(ctx, &registryv1.ImportServerJsonRequest{Parent: parent, ServerJson: doc}); err != nil {
		return fmt.Errorf("import: %w\n%s", err, doc)
	}
	if _, err := reg.PinEntry(ctx, &registryv1.PinEntryRequest{Name: "orgs/" + org + "/registries/" + registry + "/entries/" + id,
		Version: version}); err != nil {
		return fmt.Errorf("pin: %w", err)
	}
	if i%seeEveryN == 0 {
		if _, err := access.CreateBinding(ctx, &orgsv1.CreateBindingRequest{Parent: parent,
			Binding: &orgsv1.Binding{Role: "roles/user", Principal: principal}}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
	}
	return nil
}

var topics = []string{"github", "gitlab", "jira", "linear", "slack", "notion", "postgres", "mysql", "redis", "s3",
	"stripe", "sentry", "datadog", "pagerduty", "confluence", "figma", "weather", "search", "calendar", "drive"}

// serverID returns the id and server.json name of server i.
func serverID(i int) (id, name string) {
	id = fmt.Sprintf("%s-%04d", topics[i%len(topics)], i)
	return id, "com.bench/" + id
}

// serverJSON returns a server.json for server i, and its version: in turn an
// npm, a PyPI and an OCI package, a streamable-http and an SSE remote, each
// with the fields real documents carry.
func serverJSON(i int) (doc, version string) {
	id, name := serverID(i)
	topic := topics[i%len(topics)]
	secret := strings.ToUpper(topic) + "_TOKEN"
	version = fmt.Sprintf("%d.%d.%d", 1+i%3, i%7, i%11)
	d := map[string]any{
		"$schema":     "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
		"name":        name,
		"title":       strings.ToUpper(topic[:1]) + topic[1:] + " " + strconv.Itoa(i),
		"description": fmt.Sprintf("Read and act on %s from your agents (bench server %d)", topic, i),
		"version":     version,
		"websiteUrl":  "https://bench.example/mcp/" + id,
		"repository":  map[string]any{"url": "https://github.com/bench/mcp-servers", "source": "github", "subfolder": "servers/" + id},
		"icons": []any{
			map[string]any{"src": "https://bench.example/icons/" + topic + ".png", "mimeType": "image/png", "sizes": []any{"48x48", "96x96"}, "theme": "light"},
			map[string]any{"src": "https://bench.example/icons/" + topic + ".svg", "mimeType": "image/svg+xml", "sizes": []any{"any"}, "theme": "dark"},
		},
	}
	env := []any{
		map[string]any{"name": secret, "description": "API token", "isRequired": true, "isSecret": true, "format": "string", "value": "${secret:" + secret + "}"},
		map[string]any{"name": "LOG_LEVEL", "format": "string", "choices": []any{"debug", "info", "warn"}, "default": "info"},
		map[string]any{"name": strings.ToUpper(topic) + "_HOST", "description": "host of a self-hosted instance", "placeholder": topic + ".example.com"},
	}
	pkgArgs := []any{
		map[string]any{"type": "named", "name": "--toolsets", "value": "{toolsets}", "isRepeated": true,
			"variables": map[string]any{"toolsets": map[string]any{"description": "toolsets to enable", "default": "read", "choices": []any{"read", "write", "admin"}}}},
		map[string]any{"type": "named", "name": "--read-only", "format": "boolean", "default": "true"},
	}
	switch i % 5 {
	case 0:
		d["packages"] = []any{map[string]any{
			"registryType": "npm", "registryBaseUrl": "https://registry.npmjs.org", "identifier": "@bench/" + id + "-mcp",
			"version": version, "runtimeHint": "npx", "transport": map[string]any{"type": "stdio"},
			"runtimeArguments":     []any{map[string]any{"type": "named", "name": "--yes", "description": "do not prompt"}},
			"packageArguments":     pkgArgs,
			"environmentVariables": env,
		}}
	case 1:
		d["packages"] = []any{map[string]any{
			"registryType": "pypi", "registryBaseUrl": "https://pypi.org", "identifier": "bench-" + id + "-mcp",
			"version": version, "runtimeHint": "uvx", "transport": map[string]any{"type": "stdio"},
			"runtimeArguments": []any{map[string]any{"type": "named", "name": "--python", "value": "3.12"}},
			"packageArguments": append(pkgArgs, map[string]any{"type": "positional", "valueHint": "config_file",
				"description": "path of the configuration", "format": "filepath", "isRequired": true}),
			"environmentVariables": env,
		}}
	case 2:
		d["packages"] = []any{map[string]any{
			"registryType": "oci", "registryBaseUrl": "https://docker.io", "identifier": "bench/" + id,
			"version": version, "runtimeHint": "docker",
			"transport": map[string]any{"type": "streamable-http", "url": "http://localhost:{port}/mcp"},
			"runtimeArguments": []any{
				map[string]any{"type": "named", "name": "-p", "value": "{port}:8080",
					"variables": map[string]any{"port": map[string]any{"description": "host port", "default": "8080", "format": "number"}}},
				map[string]any{"type": "positional", "value": "--rm"},
				map[string]any{"type": "named", "name": "-e", "value": "API_TOKEN={token}",
					"variables": map[string]any{"token": map[string]any{"isSecret": true, "isRequired": true, "value": "${secret:" + secret + "}"}}},
			},
			"packageArguments":     pkgArgs,
			"environmentVariables": env,
		}}
	default:
		kind, path := "streamable-http", "/mcp"
		if i%5 == 4 {
			kind, path = "sse", "/sse"
		}
		d["remotes"] = []any{map[string]any{
			"type": kind, "url": "https://{tenant}." + topic + ".bench.example" + path,
			"headers": []any{
				map[string]any{"name": "Authorization", "description": "bearer token", "isRequired": true, "isSecret": true, "value": "Bearer ${secret:" + secret + "}"},
				map[string]any{"name": "X-Client", "value": "pylee"},
			},
			"variables": map[string]any{"tenant": map[string]any{"description": "workspace slug", "isRequired": true, "placeholder": "acme"}},
		}}
	}
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // only maps, slices and strings: cannot fail
	}
	return string(b), version
}

// getOnce checks that target answers 200 to token and returns the size of
// the body, as wrk will receive it (no compression asked for).
func getOnce(ctx context.Context, target, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: status %d, want 200: %.500s", target, resp.StatusCode, body)
	}
	return len(body), nil
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	errors   int    // non-2xx/3xx responses and socket errors
	problems string // wrk's lines that count them
	size     int    // gRPC: bytes of a reply's message
}

var (
	rpsRe    = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	p50Re    = regexp.MustCompile(`(?m)^\s+50%\s+(\S+)`)
	p99Re    = regexp.MustCompile(`(?m)^\s+99%\s+(\S+)`)
	non2xxRe = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	socketRe = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func runWrk(ctx context.Context, target, token string, conns int, d time.Duration) (wrkResult, error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	cmd := exec.CommandContext(ctx, "wrk", "-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", secs), "--latency",
		"-H", "Authorization: Bearer "+token, target)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", target, err, out)
	}
	return parseWrk(string(out))
}

// parseWrk reads Requests/sec, the 50% and 99% latencies and the errors
// from wrk --latency's report.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := rpsRe.FindStringSubmatch(out)
	p50, p99 := p50Re.FindStringSubmatch(out), p99Re.FindStringSubmatch(out)
	if m == nil || p50 == nil || p99 == nil {
		return r, fmt.Errorf("cannot read wrk's report:\n%s", out)
	}
	var err error
	if r.rps, err = strconv.ParseFloat(m[1], 64); err != nil {
		return r, err
	}
	if r.p50, err = time.ParseDuration(p50[1]); err != nil {
		return r, err
	}
	if r.p99, err = time.ParseDuration(p99[1]); err != nil {
		return r, err
	}
	if m := non2xxRe.FindStringSubmatch(out); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.errors += n
		r.problems += m[0] + "; "
	}
	if m := socketRe.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.errors += n
		}
		r.problems += m[0]
	}
	return r, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// createDatabase creates database name on the PostgreSQL server of adminURL
// and returns its URL and a function that drops it.
func createDatabase(ctx context.Context, adminURL, name string) (string, func(), error) {
	admin, err := sql.Open("pgx", adminURL)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s: %w", redacted(adminURL), err)
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("PostgreSQL at %s: %w", redacted(adminURL), err)
	}
	drop := func() {
		// Not ctx: the drop must happen after an interrupt too.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := sql.Open("pgx", adminURL)
		if err == nil {
			_, err = admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			admin.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", name, err)
		}
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	return u.String(), drop, nil
}

func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(malformed url)"
	}
	return u.Redacted()
}

// commit is the short hash of HEAD, marked when the work tree has changes.
func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// cleanups run in reverse order of registration, on success and failure.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }

func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}
