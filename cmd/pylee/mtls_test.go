package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/pyleeai/pylee/gen/go/pylee/audit/v1"
	registryv1 "github.com/pyleeai/pylee/gen/go/pylee/registry/v1"
	"github.com/pyleeai/pylee/kit/auth"
	"github.com/pyleeai/pylee/kit/config"
)

// testCA issues the certificates of an installation for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pylee test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes a certificate and key for a process running targets to dir
// and returns their paths: URI SANs spiffe://pylee.test/services/<target>,
// 127.0.0.1, usable as server and client certificate.
func (ca *testCA) issue(t *testing.T, dir, name string, targets ...string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var uris []*url.URL
	for _, target := range targets {
		uris = append(uris, &url.URL{Scheme: "spiffe", Host: "pylee.test", Path: "/services/" + target})
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: uris,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestSplitOverMTLS: orgs, registry, audit and gateway as four processes
// that authenticate each other by client certificate. The registry flow
// runs end to end through the gateway over HTTPS with its audit trail; a
// process without a valid client certificate, or with a token instead, is
// refused; a valid certificate is allowed only what its targets' rules
// list.
func TestSplitOverMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	httpsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	addr := map[string][2]string{} // target: grpc, http
	for _, target := range []string{"orgs", "registry", "audit", "gateway"} {
		addr[target] = [2]string{freeAddr(t), freeAddr(t)}
	}
	common := []string{"--migrate", "--page-token-key", "mtls-test-page-token-key-0123456789", "--log-format", "json", "--log-level", "warn",
		"--relay-poll", "50ms", "--tls-ca", caFile, "--orgs-addr", addr["orgs"][0], "--registry-addr", addr["registry"][0],
		"--audit-addr", addr["audit"][0], "--trusted-proxies", "192.0.2.1/32"}
	for _, target := range []string{"audit", "orgs", "registry", "gateway"} {
		cert, key := ca.issue(t, dir, target, target)
		args := append([]string{"serve", "--target=" + target, "--grpc-addr", addr[target][0], "--http-addr", addr[target][1],
			"--data-dir", filepath.Join(dir, target), "--tls-cert", cert, "--tls-key", key}, common...)
		p := &proc{t: t, args: args, httpAddr: addr[target][1], logFile: filepath.Join(dir, target+".log"), https: true, client: httpsClient}
		p.start()
		t.Cleanup(p.kill)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "orgs", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(tok))

	// The registry flow through the gateway, over HTTPS.
	u := &upInstance{rest: "https://" + addr["gateway"][1], token: admin}
	saved := http.DefaultClient
	http.DefaultClient = httpsClient
	t.Cleanup(func() { http.DefaultClient = saved })
	u.expect(t, "POST", "/v1/orgs?organization_id=acme", admin, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/teams?team_id=platform", admin, `{}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers?server_id=github", admin, `{"serverName":"com.acme/github"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/github/versions:import", admin,
		`{"serverJson":"{\"name\":\"com.acme/github\",\"description\":\"d\",\"version\":\"1.0.0\"}"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/registries?registry_id=staging", admin, `{"ownerTeams":["platform"]}`, 200) // registry asks orgs
	u.expect(t, "PUT", "/v1/orgs/acme/registries/staging/entries/github", admin, `{"version":"1.0.0"}`, 200)
	u.expect(t, "POST", "/v1/orgs/acme/servers/github/bindings", admin, `{"role":"roles/user","principal":"users/kim"}`, 200) // orgs asks registry
	if r := u.officialGet(t, "/registries/acme/staging/v0.1/servers", admin, 200); len(asList(r["servers"])) != 1 {
		t.Fatalf("official API: %v", r)
	}
	u.waitEvent(t, "acme", func(ev map[string]any) bool { return ev["action"] == "registry.entry.pin" })
	u.waitEvent(t, "acme", func(ev map[string]any) bool { return ev["action"] == "orgs.binding.create" })

	// A request without a credential through the gateway stays anonymous:
	// the gateway calls on a client's behalf without its certificate.
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/events:append", `{"events":[{"id":"01890000-0000-7000-8000-0000000000aa","organization":"acme","action":"x.y.z","outcome":"ok","eventTime":"2026-01-01T00:00:00Z"}]}`},
		{"POST", "/v1/access:check", `{"principal":"users/admin","permission":"orgs.get","resource":"orgs/acme"}`},
		{"POST", "/v1/tokens:verify", `{"token":"pyl_x"}`},
		{"GET", "/v1/orgs/acme/servers/github", ""},
		{"POST", "/v1/orgs/acme:purgeRegistry", `{}`},
		{"GET", "/registries/acme/staging/v0.1/servers", ""},
		{"GET", "/v1/orgs/acme/events:export", ""},
	} {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		if r := u.do(t, c.method, c.path, "", body); r.status != 401 {
			t.Errorf("%s %s without a credential through the mTLS gateway: %d %v", c.method, c.path, r.status, r.body)
		}
	}

	// Straight to the audit service's gRPC port.
	dialAudit := func(cfg *tls.Config) auditv1.AuditServiceClient {
		conn, err := grpc.NewClient(addr["audit"][0], grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return auditv1.NewAuditServiceClient(conn)
	}
	appendOne := func(c auditv1.AuditServiceClient, ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := c.AppendEvents(ctx, &auditv1.AppendEventsRequest{Events: []*auditv1.Event{{Id: "01890000-0000-7000-8000-000000000001",
			Organization: "acme", Action: "test.event.append", Outcome: "ok", EventTime: timestamppb.Now()}}})
		return err
	}
	// No client certificate, no credential: unauthenticated.
	noCert := dialAudit(&tls.Config{RootCAs: pool})
	if err := appendOne(noCert, context.Background()); status.Code(err) != codes.Unauthenticated {
		t.Errorf("append without a certificate: %v", err)
	}
	// A service token instead of a certificate: refused under mTLS.
	forged := auth.ServiceTokenFor(config.NewSecret("any-secret-at-all-0123456789abcdef"), "orgs")
	if err := appendOne(noCert, auth.Outgoing(context.Background(), forged)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("append with a service token under mTLS: %v", err)
	}
	// A certificate of another CA: the handshake fails.
	other := newTestCA(t)
	oc, ok := other.issue(t, dir, "intruder", "orgs")
	intruder, err := tls.LoadX509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendOne(dialAudit(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{intruder}}), context.Background()); err == nil {
		t.Error("a certificate of another CA was accepted")
	}
	// A valid certificate of the gateway: it may append (every target may)
	// but not purge an organization's registry data (orgs only).
	gc, gk := ca.issue(t, dir, "gateway-client", "gateway")
	gw, err := tls.LoadX509KeyPair(gc, gk)
	if err != nil {
		t.Fatal(err)
	}
	gwCfg := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{gw}}
	if err := appendOne(dialAudit(gwCfg), metadata.NewOutgoingContext(context.Background(), metadata.MD{})); err != nil {
		t.Errorf("append as services/gateway: %v", err)
	}
	conn, err := grpc.NewClient(addr["registry"][0], grpc.WithTransportCredentials(credentials.NewTLS(gwCfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = registryv1.NewRegistryServiceClient(conn).PurgeOrganization(context.Background(), &registryv1.PurgeOrganizationRequest{Name: "orgs/acme"})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("purge as services/gateway: %v", err)
	}
	u.expect(t, "GET", "/v1/orgs/acme/registries/staging/entries/github", admin, "", 200)

	// x-forwarded-for: believed from the gateway (its certificate vouches
	// for it), not from a direct client.
	direct, err := grpc.NewClient(addr["registry"][0], grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	spoof := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+admin, "x-forwarded-for", "6.6.6.6")
	if _, err := registryv1.NewRegistryServiceClient(direct).CreateServer(spoof, &registryv1.CreateServerRequest{Parent: "orgs/acme",
		ServerId: "spoofed", Server: &registryv1.Server{ServerName: "com.acme/spoofed"}}); err != nil {
		t.Fatal(err)
	}
	ev := u.waitEvent(t, "acme", func(ev map[string]any) bool {
		return ev["action"] == "registry.server.create" && ev["resource"] == "orgs/acme/servers/spoofed"
	})
	if ev["clientAddress"] != "127.0.0.1" {
		t.Errorf("a direct client chose its audited address: %v", ev["clientAddress"])
	}
	ev = u.waitEvent(t, "acme", func(ev map[string]any) bool { return ev["action"] == "registry.entry.pin" })
	if ev["clientAddress"] != "127.0.0.1" {
		t.Errorf("the REST client's address through the gateway: %v", ev["clientAddress"])
	}
}
