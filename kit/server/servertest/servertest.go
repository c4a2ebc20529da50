// Package servertest runs a kit server on loopback ports for a test and
// returns a client connection to it.
package servertest

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/pyleeai/pylee/kit/server"
)

// Start serves srv (built with ":0"-style or empty addresses) until the
// test ends, and returns a connection to its gRPC listener. The server's
// shutdown, cleanups included, must succeed.
func Start(t testing.TB, srv *server.Server) *grpc.ClientConn {
	t.Helper()
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return conn
}

// Config is a server configuration on free loopback ports.
func Config() server.Config {
	return server.Config{GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
}
