// Package ocitest gives tests a Docker engine and an image of the deploy
// service's Go SDK test server, imported from a static build (these
// machines reach no image registry). Without an engine a test is skipped
// outside CI and fails in CI, whose script starts one.
package ocitest

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Engine returns a client of the local Docker engine (DOCKER_HOST or the
// default socket).
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs a Docker engine (.ci/run starts one): %v", err)
		}
		t.Skipf("SKIPPED outside CI: no Docker engine answers (%v); .ci/run installs and starts one", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

// TestServerImage builds the test server static and imports it as the
// image ref, its entrypoint the server.
func TestServerImage(t testing.TB, cli *client.Client, ref string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "testserver")
	build := exec.Command("go", "build", "-o", bin, "github.com/pyleeai/pylee/services/deploy/internal/testserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the test server: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "testserver", Mode: 0o755, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(data)
	_ = tw.Close()
	rc, err := cli.ImageImport(context.Background(), image.ImportSource{Source: &buf, SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{`ENTRYPOINT ["/testserver"]`}})
	if err != nil {
		t.Fatalf("import the test image: %v", err)
	}
	_, _ = io.Copy(io.Discard, rc)
	_ = rc.Close()
}
