package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/pyleeai/pylee/kit/auth"
)

// TLSFiles are the PEM files of a process's TLS: its certificate and key
// (for its listeners, and as its client certificate towards other
// targets), and the CA that signs the installation's certificates.
type TLSFiles struct {
	Cert, Key, CA string
}

// Enabled reports whether the process serves TLS.
func (f TLSFiles) Enabled() bool { return f.Cert != "" || f.Key != "" }

// Mutual reports whether targets authenticate each other by certificate.
func (f TLSFiles) Mutual() bool { return f.CA != "" }

// Load checks the files and returns the configurations of the gRPC
// listener (client certificates verified against the CA when one is
// given), the HTTP listener (no client certificates: users send bearer
// tokens), and calls to other targets (the CA verifies them; this process
// presents its certificate).
func (f TLSFiles) Load() (grpcServer, httpServer, client *tls.Config, err error) {
	if !f.Enabled() {
		if f.Mutual() {
			return nil, nil, nil, errors.New("--tls-ca needs --tls-cert and --tls-key")
		}
		return nil, nil, nil, nil
	}
	if f.Cert == "" || f.Key == "" {
		return nil, nil, nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
	}
	grpcServer = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	httpServer = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	client = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f.Mutual() {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read --tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", f.CA)
		}
		// Users may call the gRPC API with a bearer token and no
		// certificate; a certificate that is presented must verify.
		grpcServer.ClientCAs, grpcServer.ClientAuth = pool, tls.VerifyClientCertIfGiven
		client.RootCAs = pool
	} else {
		// TLS without a CA: peers are trusted by the system's roots, and
		// this process's own certificate (self-signed, or its own
		// listener in `pylee up`).
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if pem, err := os.ReadFile(f.Cert); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		client.RootCAs = pool
	}
	return grpcServer, httpServer, client, nil
}

// ServiceURIPath starts the path of the URI SAN that names a service
// identity in a certificate: spiffe://<trust domain>/services/<target>.
// A process running several targets has one URI per target.
const ServiceURIPath = "/services/"

// ServiceIdentityOf returns the service identity of the peer of ctx: the
// targets named by the URI SANs of a client certificate that the server
// verified against its CA. None for a peer without one.
func ServiceIdentityOf(ctx context.Context) (auth.Principal, bool) {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return auth.Principal{}, false
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return auth.Principal{}, false
	}
	var targets []string
	for _, u := range info.State.VerifiedChains[0][0].URIs {
		if t, ok := strings.CutPrefix(u.Path, ServiceURIPath); ok && t != "" && !strings.Contains(t, "/") {
			targets = append(targets, t)
		}
	}
	if len(targets) == 0 {
		return auth.Principal{}, false
	}
	return auth.ServiceIdentity(targets...), true
}
